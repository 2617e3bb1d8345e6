/// Ni or Nr (RFC 7296 section 2.10): the fresh randomness each key-making exchange carries, fed to SKEYSEED
/// and KEYMAT, and compared to settle simultaneous rekeys (sections 2.8.1, 2.8.2).
public struct Nonce: Hashable, Sendable, Comparable {
    public let octets: [UInt8]
    public init(_ octets: [UInt8]) { self.octets = octets }

    /// Octet by octet; a nonce that is a prefix of another is the lower.
    public static func < (a: Nonce, b: Nonce) -> Bool { a.octets.lexicographicallyPrecedes(b.octets) }
}

extension NoncePayload {
    public init(_ nonce: Nonce) { self.init(data: nonce.octets) }
    public var nonce: Nonce { Nonce(data) }
}
