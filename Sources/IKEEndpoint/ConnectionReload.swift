import ConfigurationFiles
import IKEv2

/// What a reload (SIGHUP) of `ikeproxy endpoint` takes from its configuration file, as strongSwan's
/// `swanctl --load-all` does: every connection as the file has it now (addresses, identities, keys,
/// proposals, children, credentials), used from the next negotiation; a connection new in the file is
/// added, one gone from it removed. IKE SAs already up keep what they agreed until they are deleted.
public enum ConnectionReload {
    public struct Plan {
        /// Connections to remove first (gone from the file, or moved to another local address), then to set.
        public var remove: [String] = []
        public var set: [ConnectionConfiguration] = []
        public var lines: [String] = []
    }

    public static func plan(fresh: [ConnectionConfiguration], current: [ConnectionConfiguration]) -> Plan {
        var plan = Plan()
        for new in fresh {
            let credentials = "\(CredentialReload.describe(new.localAuthentication)); \(CredentialReload.describe(new.remoteAuthentication))"
            guard let old = current.first(where: { $0.name == new.name }) else {
                plan.set.append(new)
                plan.lines.append("reload: connection '\(new.name)' is new: \(credentials)")
                continue
            }
            plan.lines.append("reload: connection '\(new.name)': \(credentials)")
            let changed = changes(from: old, to: new)
            if !changed.isEmpty {
                plan.lines.append(
                    "reload: connection '\(new.name)': \(changed.joined(separator: ", ")) changed; used from the next negotiation "
                        + "(IKE SAs up keep what they agreed)")
            }
            if old.localAddress != new.localAddress { plan.remove.append(old.name) }
            plan.set.append(new)
        }
        for old in current where !fresh.contains(where: { $0.name == old.name }) {
            plan.remove.append(old.name)
            plan.lines.append("reload: connection '\(old.name)' is gone from the file: removed (IKE SAs up with it stay until deleted)")
        }
        return plan
    }

    /// What differs between two readings of a connection, by name (never a secret's value).
    static func changes(from old: ConnectionConfiguration, to new: ConnectionConfiguration) -> [String] {
        var changed: [String] = []
        if old.localAddress != new.localAddress || old.localPort != new.localPort { changed.append("local address") }
        if old.remoteAddress != new.remoteAddress || old.remotePort != new.remotePort { changed.append("remote address") }
        if old.localIdentity != new.localIdentity || old.remoteIdentity != new.remoteIdentity { changed.append("identities") }
        if old.preSharedKey != new.preSharedKey { changed.append("pre-shared key") }
        if old.proposals != new.proposals { changed.append("IKE proposals") }
        if childText(old.children) != childText(new.children) { changed.append("children") }
        if old.rekeyTime != new.rekeyTime || old.rekeyJitter != new.rekeyJitter || old.livenessInterval != new.livenessInterval {
            changed.append("rekey and liveness times")
        }
        if old.forceEncapsulation != new.forceEncapsulation { changed.append("UDP encapsulation") }
        if old.childless != new.childless { changed.append("childless") }
        return changed
    }

    static func childText(_ children: [ChildConfiguration]) -> [String] {
        children.map { child in
            [
                child.name, child.localTrafficSelectors.map(\.description).joined(separator: ","),
                child.remoteTrafficSelectors.map(\.description).joined(separator: ","), child.mode.rawValue,
                child.proposals.map(\.text).joined(separator: ","), "\(child.rekeyTime ?? -1)", "\(child.rekeyJitter)", "\(child.lifetime ?? -1)"
            ].joined(separator: "|")
        }
    }
}
