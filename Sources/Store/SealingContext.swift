/// What a sealed secret is for. Its text (`description`) is the box's additional data, so that a box
/// moved to another place does not open; it is also what `ikeproxy seal --context` takes (docs/daemon.md).
public enum SealingContext: Hashable, Sendable, CustomStringConvertible {
    /// `profile:NAME`: a protection profile's pre-shared key.
    case profilePreSharedKey(profile: String)
    /// `profile-ppk:NAME`: a protection profile's post-quantum preshared key (RFC 8784).
    case profilePostQuantumPresharedKey(profile: String)
    /// `terminal:ID`: a terminal's key-delivery enrollment key.
    case terminalEnrollmentKey(terminalID: UInt64)
    /// `terminal-key:ID`: the private key of a terminal's certificate.
    case terminalPrivateKey(terminalID: UInt64)
    /// `management:tls-key`: the management API's TLS private key.
    case managementTLSKey
    /// `ike_sa:KEY`: a saved IKE SA with its CHILD SAs.
    case savedIKESA(key: String)
    /// `data-key`: the data key the token wraps (EnvelopeSealer).
    case dataKey

    /// The contexts an operator seals secrets for, as `ikeproxy seal --context` takes them; nil otherwise.
    public init?(operatorText text: String) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        switch (parts.first, parts.count == 2 ? parts[1] : nil) {
        case ("profile", let name?) where !name.isEmpty: self = .profilePreSharedKey(profile: name)
        case ("profile-ppk", let name?) where !name.isEmpty: self = .profilePostQuantumPresharedKey(profile: name)
        case ("terminal", let id?):
            guard let id = UInt64(id) else { return nil }
            self = .terminalEnrollmentKey(terminalID: id)
        case ("terminal-key", let id?):
            guard let id = UInt64(id) else { return nil }
            self = .terminalPrivateKey(terminalID: id)
        case ("management", "tls-key"): self = .managementTLSKey
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .profilePreSharedKey(let name): "profile:" + name
        case .profilePostQuantumPresharedKey(let name): "profile-ppk:" + name
        case .terminalEnrollmentKey(let id): "terminal:\(id)"
        case .terminalPrivateKey(let id): "terminal-key:\(id)"
        case .managementTLSKey: "management:tls-key"
        case .savedIKESA(let key): "ike_sa:" + key
        case .dataKey: "data-key"
        }
    }

    /// The additional data of the box.
    var authenticatedData: [UInt8] { Array(description.utf8) }
}
