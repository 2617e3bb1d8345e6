import Crypto

/// PRF transforms (RFC 7296 section 3.3.2, RFC 4868): HMAC-SHA2-256/384/512, and prf+ (section 2.13).
/// HMAC-SHA1 is kept for peers that still offer it (RFC 8247 lists it MUST-) and because the
/// published NIST CAVS IKEv2 KDF vectors are for it; it is never in our default proposals.
public enum PseudoRandomFunction: UInt16, CaseIterable, Sendable {
    case hmacSHA1 = 2
    case hmacSHA256 = 5
    case hmacSHA384 = 6
    case hmacSHA512 = 7

    public var name: String {
        switch self {
        case .hmacSHA1: return "PRF_HMAC_SHA1"
        case .hmacSHA256: return "PRF_HMAC_SHA2_256"
        case .hmacSHA384: return "PRF_HMAC_SHA2_384"
        case .hmacSHA512: return "PRF_HMAC_SHA2_512"
        }
    }

    /// Output size, which is also the preferred key size (RFC 4868 section 2.2).
    public var outputLength: Int {
        switch self {
        case .hmacSHA1: return 20
        case .hmacSHA256: return 32
        case .hmacSHA384: return 48
        case .hmacSHA512: return 64
        }
    }

    public var transform: Transform { Transform(type: .pseudoRandomFunction, identifier: rawValue) }

    public func compute(key: [UInt8], data: [UInt8]) -> [UInt8] {
        let symmetricKey = SymmetricKey(data: key)
        switch self {
        case .hmacSHA1: return Array(HMAC<Insecure.SHA1>.authenticationCode(for: data, using: symmetricKey))
        case .hmacSHA256: return Array(HMAC<SHA256>.authenticationCode(for: data, using: symmetricKey))
        case .hmacSHA384: return Array(HMAC<SHA384>.authenticationCode(for: data, using: symmetricKey))
        case .hmacSHA512: return Array(HMAC<SHA512>.authenticationCode(for: data, using: symmetricKey))
        }
    }

    /// prf+ (section 2.13): T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n), concatenated to `length`.
    public func expand(key: [UInt8], seed: [UInt8], length: Int) -> [UInt8] {
        precondition(length <= 255 * outputLength, "prf+ cannot produce more than 255 blocks")
        switch self {
        case .hmacSHA1: return Self.expand(Insecure.SHA1.self, key: key, seed: seed, length: length)
        case .hmacSHA256: return Self.expand(SHA256.self, key: key, seed: seed, length: length)
        case .hmacSHA384: return Self.expand(SHA384.self, key: key, seed: seed, length: length)
        case .hmacSHA512: return Self.expand(SHA512.self, key: key, seed: seed, length: length)
        }
    }

    /// prf+ with the key set into HMAC once: each block continues from a copy of the keyed state instead of
    /// hashing the key pads again (a negotiation derives seven keys this way).
    static func expand<H: HashFunction>(_: H.Type, key: [UInt8], seed: [UInt8], length: Int) -> [UInt8] {
        let keyed = HMAC<H>(key: SymmetricKey(data: key))
        var output: [UInt8] = []
        output.reserveCapacity(length + H.Digest.byteCount)
        var previous: [UInt8] = []
        var counter: UInt8 = 1
        while output.count < length {
            var block = keyed
            block.update(data: previous)
            block.update(data: seed)
            block.update(data: [counter])
            previous = Array(block.finalize())
            output += previous
            counter &+= 1
        }
        return Array(output.prefix(length))
    }
}
