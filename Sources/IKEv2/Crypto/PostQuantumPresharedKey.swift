/// A post-quantum preshared key (RFC 8784): a secret both ends hold beside their credentials, named by a PPK_ID,
/// mixed into SK_d, SK_pi and SK_pr once the key exchanges ran. The CHILD SAs' keys (from SK_d) and the proof of
/// IKE_AUTH (from SK_pi and SK_pr) then stay safe from an attacker who can later break the Diffie-Hellman; the
/// IKE SA's own SK_e and SK_a, and so the identities, do not (RFC 8784 section 5).
public struct PostQuantumPresharedKey: Sendable, Equatable {
    /// The PPK_ID, without its type octet.
    public var identity: [UInt8]
    public var key: KeyMaterial
    /// Whether an IKE SA without this PPK is refused (strongSwan's `ppk_required`); otherwise a peer without it
    /// is accepted through NO_PPK_AUTH, and its IKE SA has no post-quantum protection.
    public var required: Bool

    public init(identity: [UInt8], key: KeyMaterial, required: Bool) {
        self.identity = identity
        self.key = key
        self.required = required
    }

    /// RFC 8784 section 3 (IANA "IKEv2 PPK_ID Types"): PPK_ID_OPAQUE is 1, PPK_ID_FIXED 2. strongSwan and libreswan
    /// send PPK_ID_FIXED, the ID being configured octets mapped to one PPK.
    public static let opaqueType: UInt8 = 1
    public static let fixedType: UInt8 = 2

    /// The PPK_IDENTITY notify data the initiator sends: the type octet (PPK_ID_FIXED), then the ID.
    public var notifyData: [UInt8] { [Self.fixedType] + identity }

    /// Whether a PPK_IDENTITY notify names this PPK, with either type octet.
    public func isNamed(by data: [UInt8]) -> Bool {
        guard let type = data.first, type == Self.opaqueType || type == Self.fixedType else { return false }
        return data.dropFirst().elementsEqual(identity)
    }

    /// The PPK_ID for a log line: its octets as text where they are printable, else in hex.
    public var identityDescription: String { Self.describe(identity: identity) }

    /// A PPK_ID (ours, or one a peer named) for a log line.
    public static func describe(identity: [UInt8]) -> String {
        guard !identity.isEmpty else { return "(empty)" }
        let printable = identity.allSatisfy { (0x21...0x7e).contains($0) }
        return printable ? String(decoding: identity, as: UTF8.self) : "0x" + identity.hexString
    }
}

extension KeyDerivation {
    /// RFC 8784 section 3: SK_d = prf+(PPK, SK_d'), SK_pi = prf+(PPK, SK_pi'), SK_pr = prf+(PPK, SK_pr'), each as long
    /// as the key it replaces (the PRF's preferred key size); SK_e and SK_a stay as they were.
    public static func mixing(_ ppk: KeyMaterial, into keys: IKESAKeys, prf: PseudoRandomFunction) -> IKESAKeys {
        func mixed(_ key: KeyMaterial) -> KeyMaterial { KeyMaterial(prf.expand(key: ppk.bytes, seed: key.bytes, length: key.bytes.count)) }
        var result = keys
        result.deriving = mixed(keys.deriving)
        result.authenticationInitiator = mixed(keys.authenticationInitiator)
        result.authenticationResponder = mixed(keys.authenticationResponder)
        return result
    }
}
