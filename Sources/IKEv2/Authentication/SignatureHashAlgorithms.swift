/// The hash algorithms a SIGNATURE_HASH_ALGORITHMS notify lists (RFC 7427 section 4, numbers from IANA's
/// "IKEv2 Hash Algorithms"): what the sender can verify in RFC 7427's Digital Signature method. Identity
/// (RFC 8420) means "no hash", the one EdDSA needs since it hashes the signed octets itself.
public struct SignatureHashAlgorithms: Equatable, Sendable, CustomStringConvertible {
    public struct Algorithm: Hashable, Sendable {
        public var rawValue: UInt16
        public static let sha1 = Algorithm(rawValue: 1)
        public static let sha256 = Algorithm(rawValue: 2)
        public static let sha384 = Algorithm(rawValue: 3)
        public static let sha512 = Algorithm(rawValue: 4)
        public static let identity = Algorithm(rawValue: 5)

        var name: String {
            switch rawValue {
            case 1: return "SHA1"
            case 2: return "SHA2_256"
            case 3: return "SHA2_384"
            case 4: return "SHA2_512"
            case 5: return "Identity"
            default: return "hash \(rawValue)"
            }
        }
    }

    public private(set) var algorithms: [Algorithm]

    public init(_ algorithms: [Algorithm]) { self.algorithms = algorithms }

    /// The notify's data: two octets per algorithm; an odd trailing octet is ignored.
    public init(notifyData data: [UInt8]) {
        algorithms = stride(from: 0, to: data.count - 1, by: 2).map { Algorithm(rawValue: UInt16(data[$0]) << 8 | UInt16(data[$0 + 1])) }
    }

    /// What we verify and list: SHA-2 for ECDSA and RSA, Identity for Ed25519.
    public static let ours = SignatureHashAlgorithms([.sha256, .sha384, .sha512, .identity])

    public var notifyData: [UInt8] { algorithms.flatMap { [UInt8($0.rawValue >> 8), UInt8($0.rawValue & 0xff)] } }

    public func contains(_ algorithm: Algorithm) -> Bool { algorithms.contains(algorithm) }

    /// A SHA-2 hash we sign ECDSA and RSA with is among them.
    public var containsSHA2: Bool { algorithms.contains { (2...4).contains($0.rawValue) } }

    public var isEmpty: Bool { algorithms.isEmpty }

    public var description: String { algorithms.map(\.name).joined(separator: ", ") }
}
