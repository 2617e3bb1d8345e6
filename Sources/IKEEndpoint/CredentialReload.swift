import IKEv2

/// What a reload (SIGHUP) takes from the configuration file again: the certificate material of each
/// connection, our certificate and key and the peer's CAs and CRLs, so that a renewed certificate or a
/// new CRL applies from the next authentication without a restart (strongSwan's `swanctl --load-creds`).
/// IKE SAs already authenticated keep going; connections added or removed need a restart.
public enum CredentialReload {
    /// The connections with the fresh credentials set, and one log line per connection. Connections of
    /// the file that are not running, and running ones the file no longer has, are named and left alone.
    public static func apply(fresh: [ConnectionConfiguration], to current: [ConnectionConfiguration])
        -> (updated: [ConnectionConfiguration], lines: [String]) {
        var updated: [ConnectionConfiguration] = [], lines: [String] = []
        for var connection in current {
            guard let new = fresh.first(where: { $0.name == connection.name }) else {
                lines.append("reload: connection '\(connection.name)' is gone from the file; it keeps its credentials until a restart")
                continue
            }
            connection.localAuthentication = new.localAuthentication
            connection.remoteAuthentication = new.remoteAuthentication
            updated.append(connection)
            lines.append("reload: connection '\(connection.name)': \(describe(new.localAuthentication)); \(describe(new.remoteAuthentication))")
        }
        for new in fresh where !current.contains(where: { $0.name == new.name }) {
            lines.append("reload: connection '\(new.name)' is new in the file; it needs a restart")
        }
        return (updated, lines)
    }

    public static func describe(_ local: LocalAuthentication) -> String {
        switch local {
        case .preSharedKey: return "we prove ourselves with the pre-shared key"
        case .certificate(let credential):
            return "our certificate \(credential.chain[0].subject) (\(credential.key.name), valid until \(credential.chain[0].notValidAfter))"
        }
    }

    public static func describe(_ remote: RemoteAuthentication) -> String {
        switch remote {
        case .preSharedKey: return "the peer proves itself with the pre-shared key"
        case .certificate(let anchors, let lists, let policy):
            let revoked = lists.reduce(0) { $0 + $1.revokedSerialNumbers.count }
            return "\(anchors.count) CA certificate(s), \(lists.count) CRL(s) revoking \(revoked) certificate(s), revocation \(policy.rawValue)"
        }
    }
}
