import IKEv2

/// How a connection's credentials read: our certificate and key, the peer's CAs and CRLs, in the lines a
/// reload (SIGHUP) logs for each connection and profile.
public enum CredentialReload {
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
