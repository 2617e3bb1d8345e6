import Proxy

extension DaemonConfiguration {
    /// What `ikeproxy daemon --check` says of a file that loads: what the daemon would run with, so an operator
    /// can compare it with what they meant before a start or a reload (no secret, only whether they are sealed).
    public var summary: [String] {
        let byAddress = Set(terminals.map(\.terminalID))
        let terminalIDs = byAddress.union(enrollments.values.map(\.terminalID))
        let prefixes = terminalPrefixes.isEmpty ? "none" : terminalPrefixes.map(\.text).joined(separator: ", ")
        var lines: [String] = []
        lines.append("interfaces: \(internetInterface) (Internet side), \(terminalInterfaces.joined(separator: ", ")) (terminal side)")
        lines.append("terminal prefixes: \(prefixes)")
        lines.append("terminals: \(terminalIDs.count) (\(byAddress.count) by address, \(enrollments.count) by MAC)")
        lines.append("profiles: " + profiles.map(Self.describe).joined(separator: ", "))
        lines.append("policy: \(policy.rules.count) rule(s), default \(policy.defaultAction.description)")
        lines.append("store: " + (store.map(Self.describe) ?? "none (state in memory only)"))
        let api: String = management.map { "\($0.host):\($0.port), \($0.administrators.count) administrator(s)" } ?? "none"
        lines.append("management API: " + api)
        lines.append("secrets: \(sealedSecrets.count) sealed (opened with the store's sealer at start), \(clearSecrets.count) in the clear")
        if !clearSecrets.isEmpty {
            lines.append(
                "note: secrets in the clear in the file: \(clearSecrets.map(\.description).sorted().joined(separator: ", ")) (see `ikeproxy seal`)")
        }
        return lines
    }

    static func describe(_ profile: ProtectionProfile) -> String {
        var parts = [
            profile.ikeProposals.map(\.text).joined(separator: ","),
            profile.espProposals.map(\.text).joined(separator: ",") + " " + profile.mode.rawValue
        ]
        if let rekey = profile.childRekeyTime { parts.append("rekey \(Int(rekey)) s") }
        if let hard = profile.hardLifetime { parts.append("hard lifetime \(hard) s") }
        return "\(profile.name) (\(parts.joined(separator: "; ")))"
    }

    static func describe(_ store: StoreConfiguration) -> String {
        switch store.sealing {
        case .token(_, let label, _, _): return "\(store.location), sealed by PKCS#11 token '\(label)'"
        case .keyFile(let path, _): return "\(store.location), sealed by key file \(path)"
        }
    }
}
