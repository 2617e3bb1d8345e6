import IKEEndpoint
import IKEv2
import Proxy

/// What a reload (SIGHUP) of the daemon takes from its configuration file again: each protection
/// profile's CAs, CRLs and revocation policy, applied from the next negotiation (terminals' certificates:
/// TerminalCredentialReload). Profiles are not added or removed.
public enum ProfileCredentialReload {
    public static func apply(fresh: [ProtectionProfile], to current: [String: ProtectionProfile])
        -> (updated: [String: ProtectionProfile], lines: [String]) {
        var updated = current, lines: [String] = []
        for (name, profile) in current.sorted(by: { $0.key < $1.key }) {
            guard let new = fresh.first(where: { $0.name == name }) else {
                lines.append("reload: profile '\(name)' is gone from the file; it keeps its CAs and CRLs until a restart")
                continue
            }
            var changed = profile
            changed.peerTrustAnchors = new.peerTrustAnchors
            changed.peerRevocationLists = new.peerRevocationLists
            changed.peerRevocationPolicy = new.peerRevocationPolicy
            updated[name] = changed
            let remote: RemoteAuthentication = new.peerTrustAnchors.map {
                .certificate(trustAnchors: $0, revocationLists: new.peerRevocationLists, revocation: new.peerRevocationPolicy)
            } ?? .preSharedKey
            lines.append("reload: profile '\(name)': \(CredentialReload.describe(remote))")
        }
        for new in fresh where current[new.name] == nil {
            lines.append("reload: profile '\(new.name)' is new in the file; it needs a restart")
        }
        return (updated, lines)
    }
}
