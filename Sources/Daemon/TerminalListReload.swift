import IKEv2
import Packets
import Proxy

/// What a reload (SIGHUP, or the API's reload) takes from the configuration file for the list of terminals:
/// a terminal new in the file is enrolled, one gone from it is removed (its SAs deleted with the peers and in
/// the terminal), one whose key, addresses, MAC or port changed is removed and enrolled anew. Terminals an
/// administrator added, approved or removed over the management API keep what the API said.
public enum TerminalListReload {
    /// Everything the file says about one terminal, comparable between two readings.
    public struct Definition: Equatable {
        struct ByAddress: Equatable {
            var address: String
            var key: [UInt8]
            var port: UInt16
            var keyDeliveryAddress: String
        }
        struct ByMAC: Equatable {
            var mac: String
            var key: [UInt8]
            var port: UInt16
        }
        var addresses: [ByAddress] = []
        var macs: [ByMAC] = []

        /// Addresses and MACs, for log lines (never the key).
        var summary: String {
            (addresses.map(\.address) + macs.map { "MAC \($0.mac)" }).joined(separator: ", ")
        }
    }

    public static func definitions(terminals: [TerminalEntry], enrollments: [MACAddress: MACEnrollment]) -> [UInt64: Definition] {
        var found: [UInt64: Definition] = [:]
        for entry in terminals {
            found[entry.terminalID, default: Definition()].addresses.append(
                .init(
                    address: entry.address.description, key: entry.enrollmentKey.bytes, port: entry.keyDeliveryPort,
                    keyDeliveryAddress: entry.keyDeliveryAddress.description))
        }
        for (mac, enrollment) in enrollments {
            found[enrollment.terminalID, default: Definition()].macs.append(
                .init(mac: mac.description, key: enrollment.enrollmentKey.bytes, port: enrollment.keyDeliveryPort))
        }
        for id in found.keys {
            found[id]!.addresses.sort { $0.address < $1.address }
            found[id]!.macs.sort { $0.mac < $1.mac }
        }
        return found
    }

    public struct Plan: Equatable {
        /// Terminals to remove first (gone from the file, or changed), then to enrol (new, or changed).
        public var remove: [UInt64] = []
        public var enroll: [UInt64] = []
        public var lines: [String] = []
    }

    /// The changes from the file as read before to the file as read now; `managedOverAPI` are the IDs the
    /// management API decided (added, approved or removed there), left alone.
    public static func plan(old: [UInt64: Definition], new: [UInt64: Definition], managedOverAPI: Set<UInt64>) -> Plan {
        var plan = Plan()
        var unchanged = 0
        for id in Set(old.keys).union(new.keys).sorted() {
            let before = old[id]
            let after = new[id]
            if before == after {
                unchanged += 1
                continue
            }
            if managedOverAPI.contains(id) {
                plan.lines.append(
                    "reload: terminal \(id) changed in the file, but it was added, approved or removed over the management API, which stays")
                continue
            }
            switch (before, after) {
            case (nil, let after?):
                plan.enroll.append(id)
                plan.lines.append("reload: terminal \(id) (\(after.summary)) is new: enrolled")
            case (let before?, nil):
                plan.remove.append(id)
                plan.lines.append("reload: terminal \(id) (\(before.summary)) is gone from the file: removed, its SAs deleted")
            case (let before?, let after?):
                plan.remove.append(id)
                plan.enroll.append(id)
                let what =
                    before.addresses.map(\.address) != after.addresses.map(\.address) || before.macs.map(\.mac) != after.macs.map(\.mac)
                    ? "its addresses changed (\(before.summary) -> \(after.summary))"
                    : before.addresses.map(\.key) + before.macs.map(\.key) != after.addresses.map(\.key) + after.macs.map(\.key)
                        ? "its enrollment key changed" : "its key-delivery port changed"
                plan.lines.append("reload: terminal \(id): \(what): its SAs deleted, enrolled anew")
            case (nil, nil):
                break
            }
        }
        plan.lines.append(
            "reload: terminals: \(plan.enroll.count - plan.remove.filter(plan.enroll.contains).count) new, "
                + "\(plan.remove.count - plan.remove.filter(plan.enroll.contains).count) removed, "
                + "\(plan.remove.filter(plan.enroll.contains).count) changed, \(unchanged) unchanged")
        return plan
    }
}
