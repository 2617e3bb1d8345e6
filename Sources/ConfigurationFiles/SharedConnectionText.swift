import IKEv2

/// The keys an endpoint connection and a daemon profile share, decoded once so that both files accept and
/// refuse the same values with the same words (docs/endpoint.md, docs/daemon.md). Each function takes the
/// place in the file (`at`) to put in front of its message.
public enum SharedConnectionText {
    /// The IKE proposal used when a file gives none.
    public static let defaultIKEProposal = "aes256gcm16-prfsha256-x25519"
    /// The ESP proposal used when a file gives none.
    public static let defaultESPProposal = "aes256gcm16"
    /// Shorter pre-shared keys are refused: RFC 7296 section 2.15 asks for keys as strong as the PRF's, and
    /// strongSwan warns below this.
    public static let minimumPreSharedKeyOctets = 8

    /// `psk` (text) or `psk_hex`; nil when the file gives neither (whether one is needed depends on the
    /// authentication, which the caller knows).
    public static func preSharedKey(text: String?, hex: String?, at: String) throws(ConfigurationError) -> KeyMaterial? {
        guard let bytes = try secret(text: text, hex: hex, key: "psk", at: at) else { return nil }
        guard bytes.count >= minimumPreSharedKeyOctets else {
            throw ConfigurationError("\(at): the pre-shared key is shorter than \(minimumPreSharedKeyOctets) octets")
        }
        return KeyMaterial(bytes)
    }

    /// `mode`: "tunnel" (the default) or "transport".
    public static func mode(_ text: String?, at: String) throws(ConfigurationError) -> ChildMode {
        switch text ?? "tunnel" {
        case "tunnel": return .tunnel
        case "transport": return .transport
        default: throw ConfigurationError("\(at): mode must be 'tunnel' or 'transport'")
        }
    }

    /// `proposals` (IKE) with its default, in strongSwan's notation.
    public static func ikeProposals(_ texts: [String]?, at: String) throws(ConfigurationError) -> [ProposalSpec] {
        try proposals(texts ?? [defaultIKEProposal], forIKE: true, at: "\(at): proposals")
    }

    /// A secret given as `<key>` (text) or `<key>_hex`; nil when neither is there.
    static func secret(text: String?, hex: String?, key: String, at: String) throws(ConfigurationError) -> [UInt8]? {
        if let hex {
            guard let decoded = [UInt8](hexString: hex) else { throw ConfigurationError("\(at): \(key)_hex is not hexadecimal") }
            return decoded
        }
        return text.map { Array($0.utf8) }
    }

    /// A post-quantum preshared key is refused below 256 bits: RFC 8784 section 6 asks for at least that much
    /// entropy, since a quantum computer halves a symmetric key's strength.
    public static let minimumPostQuantumPresharedKeyOctets = 32

    /// `ppk_id` with `ppk` (text) or `ppk_hex`, and `ppk_required` (default false, as strongSwan's): RFC 8784.
    public static func postQuantumPresharedKey(
        id: String?, text: String?, hex: String?, required: Bool?, at: String
    ) throws(ConfigurationError) -> PostQuantumPresharedKey? {
        guard let bytes = try secret(text: text, hex: hex, key: "ppk", at: at) else {
            guard id == nil, required == nil else { throw ConfigurationError("\(at): ppk_id and ppk_required need ppk or ppk_hex") }
            return nil
        }
        guard let id, !id.isEmpty else { throw ConfigurationError("\(at): ppk or ppk_hex needs ppk_id, the name both ends know the PPK by") }
        guard bytes.count >= minimumPostQuantumPresharedKeyOctets else {
            throw ConfigurationError(
                "\(at): the post-quantum preshared key is shorter than \(minimumPostQuantumPresharedKeyOctets) octets (RFC 8784 asks for 256 bits)")
        }
        return PostQuantumPresharedKey(identity: Array(id.utf8), key: KeyMaterial(bytes), required: required ?? false)
    }

    /// `esp_proposals` with its default, in strongSwan's notation.
    public static func espProposals(_ texts: [String]?, at: String) throws(ConfigurationError) -> [ProposalSpec] {
        try proposals(texts ?? [defaultESPProposal], forIKE: false, at: "\(at): esp_proposals")
    }

    private static func proposals(_ texts: [String], forIKE: Bool, at: String) throws(ConfigurationError) -> [ProposalSpec] {
        let specs: [ProposalSpec]
        do { specs = try texts.map { try ProposalSpec($0, forIKE: forIKE) } } catch { throw ConfigurationError("\(at): \(error)") }
        // Additional key exchanges of a CHILD SA follow the KE of its CREATE_CHILD_SA (RFC 9370 section 2.2.4):
        // without a PFS group there is none to follow, and the CHILD SA would never run them.
        if !forIKE, let spec = specs.first(where: { $0.groups.isEmpty && $0.additionalKeyExchanges.values.contains { $0.contains { $0 != nil } } }) {
            throw ConfigurationError(
                "\(at): '\(spec.text)' asks for additional key exchanges (ke1_ to ke7_) without a key exchange group: "
                    + "they follow the PFS key exchange of CREATE_CHILD_SA (RFC 9370), so name one first, e.g. x25519-ke1_mlkem768")
        }
        return specs
    }

    /// How this side proves who it is (`local_auth`).
    public enum LocalAuthenticationMode: Equatable, Sendable {
        case preSharedKey
        /// A certificate and its key; `rsaPSS` signs with RSASSA-PSS (RFC 7427) instead of PKCS#1 v1.5.
        case certificate(rsaPSS: Bool)
    }

    /// `local_auth`: "psk" (the default), "pubkey" or "rsa/pss".
    public static func localAuthentication(_ text: String?, at: String) throws(ConfigurationError) -> LocalAuthenticationMode {
        switch text ?? "psk" {
        case "psk": return .preSharedKey
        case "pubkey": return .certificate(rsaPSS: false)
        case "rsa/pss": return .certificate(rsaPSS: true)
        case let other: throw ConfigurationError("\(at): local_auth '\(other)' is not psk, pubkey or rsa/pss")
        }
    }

    /// `childless` (RFC 6023): nil when not given.
    public static func childless(_ text: String?, at: String) throws(ConfigurationError) -> ChildlessMode? {
        guard let text else { return nil }
        guard let mode = ChildlessMode(rawValue: text) else { throw ConfigurationError("\(at): childless '\(text)' is not \(ChildlessMode.choices)") }
        return mode
    }

    /// `remote_auth` with the CA certificates, CRLs and revocation policy it names, read now.
    public static func remoteAuthentication(
        _ mode: String?, caCertificates: [String]?, crls: [String]?, revocation: String?, at: String
    ) throws(ConfigurationError) -> RemoteAuthentication {
        do { return try AuthenticationFiles.remote(mode: mode, caCertificates: caCertificates, crls: crls, revocation: revocation) } catch {
            throw ConfigurationError("\(at): \(error)")
        }
    }
}
