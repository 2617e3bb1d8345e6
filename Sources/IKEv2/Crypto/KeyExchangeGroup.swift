import BigInt
import Crypto
import Foundation

/// Key exchange (Diffie-Hellman) groups, RFC 7296 / RFC 3526 (MODP), RFC 5903 (ECP), RFC 8031 (Curve25519).
public enum KeyExchangeGroup: UInt16, CaseIterable, Sendable {
    case modp2048 = 14
    case ecp256 = 19
    case ecp384 = 20
    case ecp521 = 21
    case curve25519 = 31

    public var name: String {
        switch self {
        case .modp2048: return "MODP_2048"
        case .ecp256: return "ECP_256"
        case .ecp384: return "ECP_384"
        case .ecp521: return "ECP_521"
        case .curve25519: return "CURVE_25519"
        }
    }

    public var transform: Transform { Transform(type: .keyExchange, identifier: rawValue) }

    /// Length of the public value carried in KE.
    public var publicValueLength: Int {
        switch self {
        case .modp2048: return 256
        case .ecp256: return 64
        case .ecp384: return 96
        case .ecp521: return 132
        case .curve25519: return 32
        }
    }

    public func generatePrivateKey(random: RandomSource = SystemRandom()) -> KeyExchangePrivateKey {
        switch self {
        case .modp2048: return .modp2048(ModularExponentiationGroup.generate(random: random))
        case .ecp256: return .ecp256(P256.KeyAgreement.PrivateKey())
        case .ecp384: return .ecp384(P384.KeyAgreement.PrivateKey())
        case .ecp521: return .ecp521(P521.KeyAgreement.PrivateKey())
        case .curve25519:
            // Any 32 octets are a valid X25519 key; a seeded source (tests, fuzzing) makes it reproducible,
            // the system's source leaves generation to the library.
            if random is SystemRandom { return .curve25519(Curve25519.KeyAgreement.PrivateKey()) }
            return .curve25519(try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: random.bytes(32)))
        }
    }
}

/// Why a peer's public value was refused.
public enum KeyExchangeError: Error, Equatable, Sendable {
    case invalidPublicValue(group: UInt16)
}

/// One side's ephemeral secret for a key exchange.
public enum KeyExchangePrivateKey: Sendable {
    case modp2048(ModularExponentiationGroup.PrivateKey)
    case ecp256(P256.KeyAgreement.PrivateKey)
    case ecp384(P384.KeyAgreement.PrivateKey)
    case ecp521(P521.KeyAgreement.PrivateKey)
    case curve25519(Curve25519.KeyAgreement.PrivateKey)

    public var group: KeyExchangeGroup {
        switch self {
        case .modp2048: return .modp2048
        case .ecp256: return .ecp256
        case .ecp384: return .ecp384
        case .ecp521: return .ecp521
        case .curve25519: return .curve25519
        }
    }

    /// The value sent in KE: g^x for MODP, x|y for ECP (RFC 5903 section 7), the u-coordinate for Curve25519.
    public var publicValue: [UInt8] {
        switch self {
        case .modp2048(let key): return key.publicValue
        case .ecp256(let key): return Array(key.publicKey.rawRepresentation)
        case .ecp384(let key): return Array(key.publicKey.rawRepresentation)
        case .ecp521(let key): return Array(key.publicKey.rawRepresentation)
        case .curve25519(let key): return Array(key.publicKey.rawRepresentation)
        }
    }

    /// g^ir: the shared secret (x coordinate only for ECP, RFC 5903 section 7).
    public func sharedSecret(peerPublicValue: [UInt8]) throws(KeyExchangeError) -> KeyMaterial {
        let error = KeyExchangeError.invalidPublicValue(group: group.rawValue)
        guard peerPublicValue.count == group.publicValueLength else { throw error }
        do {
            let secret: SharedSecret
            switch self {
            case .modp2048(let key): return KeyMaterial(try key.sharedSecret(peerPublicValue))
            case .ecp256(let key): secret = try key.sharedSecretFromKeyAgreement(with: .init(rawRepresentation: peerPublicValue))
            case .ecp384(let key): secret = try key.sharedSecretFromKeyAgreement(with: .init(rawRepresentation: peerPublicValue))
            case .ecp521(let key): secret = try key.sharedSecretFromKeyAgreement(with: .init(rawRepresentation: peerPublicValue))
            case .curve25519(let key):
                secret = try key.sharedSecretFromKeyAgreement(with: .init(rawRepresentation: peerPublicValue))
            }
            let bytes = secret.withUnsafeBytes { Array($0) }
            // RFC 8031 section 2: an all-zero Curve25519 result means a small-order point.
            guard !bytes.allSatisfy({ $0 == 0 }) else { throw error }
            return KeyMaterial(bytes)
        } catch {
            throw KeyExchangeError.invalidPublicValue(group: group.rawValue)
        }
    }
}

/// The 2048-bit MODP group of RFC 3526 section 3. swift-crypto offers no finite-field Diffie-Hellman, so
/// the modular exponentiation uses BigInt; this is the only hand-assembled primitive in the project.
public enum ModularExponentiationGroup {
    static let primeHex = """
        FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD\
        EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED\
        EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F\
        83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B\
        E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510\
        15728E5A8AACAA68FFFFFFFFFFFFFFFF
        """
    static let prime = BigUInt(primeHex, radix: 16)!
    static let generator = BigUInt(2)

    public struct PrivateKey: Sendable {
        let exponent: BigUInt
        public let publicValue: [UInt8]

        func sharedSecret(_ peer: [UInt8]) throws -> [UInt8] {
            let y = BigUInt(Data(peer))
            // RFC 6989 section 2.1: reject 0, 1, p-1 and anything not below p.
            guard y > 1, y < ModularExponentiationGroup.prime - 1 else {
                throw KeyExchangeError.invalidPublicValue(group: 14)
            }
            return ModularExponentiationGroup.pad(y.power(exponent, modulus: ModularExponentiationGroup.prime))
        }
    }

    static func pad(_ value: BigUInt) -> [UInt8] {
        let bytes = Array(value.serialize())
        return Array(repeating: 0, count: max(0, 256 - bytes.count)) + bytes
    }

    /// A 512-bit private exponent: twice the group's ~112-bit strength with a wide margin (RFC 3526 section 8).
    static func generate(random: RandomSource) -> PrivateKey {
        let exponent = BigUInt(Data(random.bytes(64))) | (BigUInt(1) << 511)
        return PrivateKey(exponent: exponent, publicValue: pad(generator.power(exponent, modulus: prime)))
    }
}
