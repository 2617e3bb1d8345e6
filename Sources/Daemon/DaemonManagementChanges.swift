import ConfigurationFiles
import Foundation
import IKEv2
import LinuxIO
import Management
import Packets
import Proxy
import Store

/// The management API's changes: the policy replaced or reverted to the file, terminals added, each saved to
/// the store before it takes effect and audited.
extension DaemonRunner {
    /// The whole policy at once (what automation sends): every rule checked first; one bad rule changes nothing.
    func replacePolicy(_ request: ManagementRequest, now: Double, wall: Double) -> ManagementResponse {
        struct Body: Decodable {
            var rules: [DaemonConfiguration.RuleText]
            var `default`: String?
        }
        let body: Body
        do { body = try JSONDecoder().decode(Body.self, from: request.body) } catch {
            return .error(
                400,
                "the body must be {\"rules\": [{\"source\", \"destination\", \"protocol\", \"source_ports\", \"destination_ports\", "
                    + "\"action\", \"profile\"}, ...], \"default\": \"bypass\" or \"discard\"}: \((error as? DecodingError)?.readableDescription ?? "\(error)")"
            )
        }
        guard body.rules.count <= 100_000 else { return .error(400, "at most 100000 rules") }
        let rules: [PolicyRule]
        do {
            let profiles = Set(bridge.proxy.profiles.keys)
            rules = try body.rules.enumerated().map { try DaemonConfiguration.parseRule($0.element, at: "rules[\($0.offset)]", profiles: profiles) }
        } catch {
            return .error(400, "\(error); nothing changed")
        }
        let defaultAction: PolicyAction
        switch body.default {
        case nil: defaultAction = bridge.proxy.policy.defaultAction
        case "bypass"?: defaultAction = .bypass
        case "discard"?: defaultAction = .discard
        case let other?: return .error(400, "default: '\(other)' is not bypass or discard; nothing changed")
        }
        guard persistPolicy(rules, request, defaultAction: defaultAction) else {
            return .error(503, "the policy could not be saved; nothing changed")
        }
        bridge.proxy.policy = PolicyTable(rules: rules, defaultAction: defaultAction)
        applyPolicy(at: ClockReading(monotonic: now, wall: wall))
        audit(request, "policy.replace", "\(rules.count) rule(s), default \(defaultAction)")
        return .json(["rules": rules.count, "default": defaultAction.description])
    }

    /// Hands the policy back to the configuration file: its rules as the file has them now, and from then on
    /// at every start and reload, as before any change over the API.
    func revertPolicy(_ request: ManagementRequest, now: Double, wall: Double) -> ManagementResponse {
        guard let path = configurationPath else { return .error(422, "the configuration file is not known; nothing changed") }
        let file: DaemonConfiguration
        do { file = try DaemonConfiguration.load(path: path) } catch {
            return .error(422, "\(path) does not load (\(error)); nothing changed")
        }
        if let unknown = file.policy.profileNames.sorted().first(where: { bridge.proxy.profiles[$0] == nil }) {
            return .error(422, "the file's policy names profile '\(unknown)', which the daemon does not have (reload first); nothing changed")
        }
        if let state {
            do { try state.database.revertPolicy(toFileRules: file.policy.rules.map(Self.json(of:))) } catch {
                return .error(503, "the policy could not be saved (\(error)); nothing changed")
            }
        }
        bridge.proxy.policy = file.policy
        applyPolicy(at: ClockReading(monotonic: now, wall: wall))
        audit(request, "policy.revert", "the configuration file's \(file.policy.rules.count) rule(s), default \(file.policy.defaultAction)")
        return .json(["rules": file.policy.rules.count, "default": file.policy.defaultAction.description, "source": "configuration file"])
    }

    static let enrollmentKeyRule = "enrollment_key_hex must be at least 16 octets of hexadecimal"

    /// A terminal's enrollment key as an administrator sends it (approval or addition); nil when too short or not hexadecimal.
    static func enrollmentKey(hex: String) -> [UInt8]? {
        guard let key = [UInt8](hexString: hex), key.count >= 16 else { return nil }
        return key
    }

    /// An administrator enrols a terminal by its addresses (no discovery needed): saved first, then acted for.
    func addTerminal(_ request: ManagementRequest, wall: Double) -> ManagementResponse {
        struct Body: Decodable {
            var terminal_id: UInt64
            var addresses: [String]
            var enrollment_key_hex: String
            var key_delivery_port: UInt16?
        }
        let body: Body
        do { body = try JSONDecoder().decode(Body.self, from: request.body) } catch {
            return .error(
                400,
                "the body must be {\"terminal_id\": n, \"addresses\": [\"...\"], \"enrollment_key_hex\": \"...\", \"key_delivery_port\": n}: "
                    + ((error as? DecodingError)?.readableDescription ?? "\(error)"))
        }
        guard !body.addresses.isEmpty, body.addresses.count <= 8 else { return .error(400, "addresses must list one to eight addresses") }
        var addresses: [IPAddress] = []
        for text in body.addresses {
            guard let address = IPAddress(text) else { return .error(400, "'\(text)' is not an IPv4 or IPv6 address") }
            guard !address.isLinkLocal, !address.isMulticast, !address.isUnspecified else {
                return .error(400, "\(text) cannot be a terminal's address (link-local, multicast or unspecified)")
            }
            guard !addresses.contains(address) else { return .error(400, "\(text) is listed twice") }
            addresses.append(address)
        }
        guard let key = Self.enrollmentKey(hex: body.enrollment_key_hex) else { return .error(400, Self.enrollmentKeyRule) }
        guard body.key_delivery_port != 0 else { return .error(400, "key_delivery_port must be 1 to 65535") }
        let registry = bridge.proxy.registry
        if registry.terminalIDs.contains(body.terminal_id) || bridge.enrollments.values.contains(where: { $0.terminalID == body.terminal_id }) {
            return .error(409, "terminal \(body.terminal_id) is enrolled already; remove it first (DELETE /v1/terminals/\(body.terminal_id))")
        }
        if let taken = addresses.first(where: { registry.entries[$0] != nil }) {
            return .error(409, "\(taken) is terminal \(registry.entries[taken]!.terminalID)'s address")
        }
        let port = body.key_delivery_port ?? WellKnownPort.keyDelivery
        if let state {
            do {
                let row = StateDatabase.TerminalRow(
                    terminalID: body.terminal_id, mac: nil, addresses: addresses.map(\.description),
                    sealedEnrollmentKey: try state.sealer.seal(key, context: .terminalEnrollmentKey(terminalID: body.terminal_id)),
                    keyDeliveryPort: port)
                try state.database.saveApprovedTerminal(row, now: wall)
            } catch {
                return .error(503, "the terminal could not be saved (\(error)); nothing changed")
            }
        }
        bridge.add(terminalID: body.terminal_id, addresses: addresses, enrollmentKey: KeyMaterial(key), keyDeliveryPort: port)
        audit(request, "terminal.add", "terminal \(body.terminal_id) at \(addresses.map(\.description).joined(separator: ", "))")
        return .json(["terminal_id": NSNumber(value: body.terminal_id), "addresses": addresses.map(\.description)], status: 201)
    }

    /// Saves the policy first: a change that cannot be saved is not made.
    func persistPolicy(_ rules: [PolicyRule], _ request: ManagementRequest, defaultAction: PolicyAction? = nil) -> Bool {
        let defaultAction = defaultAction ?? bridge.proxy.policy.defaultAction
        guard let state else { return true }
        do {
            try state.database.replacePolicy(
                rules: rules.map(Self.json(of:)), defaultAction: defaultAction.description,
                who: request.administrator.name, now: Date().timeIntervalSince1970)
            return true
        } catch {
            log("saving the policy failed: \(error)")
            return false
        }
    }

    /// Terminals approved over the API before a restart, enrolled again.
    func restoreApprovedTerminals(_ state: ProxyStateStore) {
        do {
            for row in try state.database.approvedTerminals() {
                // The API's version of a terminal supersedes the configuration file's under the same ID.
                if bridge.forget(terminalID: row.terminalID) {
                    log("terminal \(row.terminalID): the configuration file's entry is superseded by the one an administrator made over the API")
                }
                guard let text = row.mac, let mac = MACAddress(text: text) else {
                    let addresses = row.addresses.compactMap(IPAddress.init)
                    guard !addresses.isEmpty else {
                        log("terminal \(row.terminalID): its saved addresses do not parse; not enrolled")
                        continue
                    }
                    do {
                        let key = try state.sealer.unseal(row.sealedEnrollmentKey, context: .terminalEnrollmentKey(terminalID: row.terminalID))
                        bridge.add(
                            terminalID: row.terminalID, addresses: addresses, enrollmentKey: KeyMaterial(key), keyDeliveryPort: row.keyDeliveryPort)
                        log(
                            "terminal \(row.terminalID) at \(addresses.map(\.description).joined(separator: ", ")), added over the API, enrolled again"
                        )
                    } catch {
                        log("terminal \(row.terminalID): its key does not open (\(error)); not enrolled")
                    }
                    continue
                }
                do {
                    let key = try state.sealer.unseal(row.sealedEnrollmentKey, context: .terminalEnrollmentKey(terminalID: row.terminalID))
                    _ = bridge.approve(
                        mac: mac,
                        enrollment: MACEnrollment(
                            terminalID: row.terminalID, enrollmentKey: KeyMaterial(key),
                            keyDeliveryPort: row.keyDeliveryPort))
                    log("terminal \(row.terminalID) at \(mac), approved over the API, enrolled again")
                } catch {
                    log("terminal \(row.terminalID) at \(mac): its key does not open (\(error)); not enrolled")
                }
            }
        } catch {
            log("cannot read approved terminals: \(error)")
        }
        do {
            for removed in try state.database.removedTerminals() where bridge.forget(terminalID: removed.terminalID) {
                log(
                    "terminal \(removed.terminalID) of the configuration file was removed over the API by \(removed.who) at "
                        + "\(Date(timeIntervalSince1970: removed.at)); not enrolled (add or approve it over the API to enrol it again)")
            }
        } catch {
            log("cannot read removed terminals: \(error)")
        }
    }
}
