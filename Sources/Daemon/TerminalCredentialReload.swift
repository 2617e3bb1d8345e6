import IKEv2

/// What a reload (SIGHUP, or the API's reload) takes from the configuration file for the terminals'
/// certificates and private keys: a renewed certificate, with its key (sealed keys opened again with the
/// store's sealer), signs from the next negotiation in that terminal's name; SAs already made keep what
/// they agreed. A terminal whose certificate is gone from the file keeps the one in use until a restart.
public enum TerminalCredentialReload {
    public static func apply(fresh: [UInt64: CertificateCredential], to current: [UInt64: CertificateCredential])
        -> (updated: [UInt64: CertificateCredential], lines: [String])
    {
        var updated = current
        var lines: [String] = []
        for (id, credential) in fresh.sorted(by: { $0.key < $1.key }) {
            let leaf = credential.chain[0]
            let what = "certificate \(leaf.subject) (serial \(leaf.serialNumber), valid until \(leaf.notValidAfter))"
            guard let old = current[id] else {
                updated[id] = credential
                lines.append("reload: terminal \(id): \(what), new")
                continue
            }
            if old.chain == credential.chain {  // the key matches the certificate (checked when read)
                lines.append("reload: terminal \(id): \(what), unchanged")
            } else {
                updated[id] = credential
                lines.append(
                    "reload: terminal \(id): \(what) replaces \(old.chain[0].subject) (serial \(old.chain[0].serialNumber)) from the next negotiation"
                )
            }
        }
        for id in current.keys.sorted() where fresh[id] == nil {
            lines.append("reload: terminal \(id)'s certificate is gone from the file; it keeps the one in use until a restart")
        }
        return (updated, lines)
    }
}
