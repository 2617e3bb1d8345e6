import Crypto
import Foundation

/// Integrity transforms (RFC 4868): HMAC-SHA2 truncated to half the hash length.
public enum IntegrityAlgorithm: UInt16, CaseIterable, Sendable {
    case hmacSHA256_128 = 12
    case hmacSHA384_192 = 13
    case hmacSHA512_256 = 14

    public var name: String {
        switch self {
        case .hmacSHA256_128: return "AUTH_HMAC_SHA2_256_128"
        case .hmacSHA384_192: return "AUTH_HMAC_SHA2_384_192"
        case .hmacSHA512_256: return "AUTH_HMAC_SHA2_512_256"
        }
    }

    public var keyLength: Int {
        switch self {
        case .hmacSHA256_128: return 32
        case .hmacSHA384_192: return 48
        case .hmacSHA512_256: return 64
        }
    }
    public var outputLength: Int { keyLength / 2 }
    public var transform: Transform { Transform(type: .integrity, identifier: rawValue) }

    public func checksum<D: DataProtocol>(key: [UInt8], data: D) -> [UInt8] {
        let symmetricKey = SymmetricKey(data: key)
        let full: [UInt8]
        switch self {
        case .hmacSHA256_128: full = Array(HMAC<SHA256>.authenticationCode(for: data, using: symmetricKey))
        case .hmacSHA384_192: full = Array(HMAC<SHA384>.authenticationCode(for: data, using: symmetricKey))
        case .hmacSHA512_256: full = Array(HMAC<SHA512>.authenticationCode(for: data, using: symmetricKey))
        }
        return Array(full.prefix(outputLength))
    }
}
