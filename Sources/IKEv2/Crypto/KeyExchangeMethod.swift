import Crypto
import Foundation

/// A key exchange method as IKEv2 negotiates it in Transform Type 4 (Key Exchange Method) and in the
/// ADDITIONAL_KEY_EXCHANGE_1..7 transform types (RFC 9370 section 2.2.1): a Diffie-Hellman group, or ML-KEM
/// (draft-ietf-ipsecme-ikev2-mlkem section 4: Transform IDs 36 and 37 of the "Transform Type 4 - Key Exchange
/// Method Transform IDs" registry).
///
/// Both kinds are used the same way by the two roles: the initiator sends its share (a Diffie-Hellman public
/// value, or an ML-KEM encapsulation key), the responder answers with its own (a public value, or the ML-KEM
/// ciphertext encapsulated to that key), and both arrive at the same shared secret. A KEM's responder has no
/// share before it has the initiator's, which is why the responder's side is one step, `respond(to:random:)`.
public enum KeyExchangeMethod: Hashable, Sendable, CustomStringConvertible {
    case group(KeyExchangeGroup)
    /// ML-KEM-768 (FIPS 203): 1184-octet encapsulation key, 1088-octet ciphertext, 32-octet shared secret.
    case mlkem768
    /// ML-KEM-1024 (FIPS 203): 1568-octet encapsulation key, 1568-octet ciphertext, 32-octet shared secret.
    case mlkem1024

    /// The transform identifier (IANA "Transform Type 4 - Key Exchange Method Transform IDs"; ML-KEM-768 is 36
    /// and ML-KEM-1024 is 37 in draft-ietf-ipsecme-ikev2-mlkem section 4).
    public var identifier: UInt16 {
        switch self {
        case .group(let group): return group.rawValue
        case .mlkem768: return 36
        case .mlkem1024: return 37
        }
    }

    public init?(identifier: UInt16) {
        switch identifier {
        case 36: self = .mlkem768
        case 37: self = .mlkem1024
        default:
            guard let group = KeyExchangeGroup(rawValue: identifier) else { return nil }
            self = .group(group)
        }
    }

    /// The registry's name ("CURVE_25519", "ML-KEM-768").
    public var name: String {
        switch self {
        case .group(let group): return group.name
        case .mlkem768: return "ML-KEM-768"
        case .mlkem1024: return "ML-KEM-1024"
        }
    }

    public var description: String { name }

    /// The token in strongSwan's proposal notation ("x25519", "mlkem768").
    public var proposalToken: String {
        switch self {
        case .group(let group): return ProposalSpec.name(of: group)
        case .mlkem768: return "mlkem768"
        case .mlkem1024: return "mlkem1024"
        }
    }

    /// Octets of the initiator's share in its KE payload (the encapsulation key for ML-KEM, FIPS 203 table 3).
    public var initiatorShareLength: Int {
        switch self {
        case .group(let group): return group.publicValueLength
        case .mlkem768: return 1184
        case .mlkem1024: return 1568
        }
    }

    /// Octets of the responder's share in its KE payload (the ciphertext for ML-KEM, FIPS 203 table 3).
    public var responderShareLength: Int {
        switch self {
        case .group(let group): return group.publicValueLength
        case .mlkem768: return 1088
        case .mlkem1024: return 1568
        }
    }

    public var transform: Transform { Transform(type: .keyExchange, identifier: identifier) }

    /// The initiator's side: a fresh secret and the share that goes in its KE payload.
    public func initiate(random: RandomSource = SystemRandom()) -> KeyExchangeInitiation {
        switch self {
        case .group(let group): return KeyExchangeInitiation(method: self, state: .group(group.generatePrivateKey(random: random)))
        case .mlkem768:
            // The 64-octet seed d||z of FIPS 203 ML-KEM.KeyGen_internal, from the injected source (so that a
            // seeded source makes tests reproducible); swift-crypto expands it.
            let key = try! MLKEM768.PrivateKey(seedRepresentation: random.bytes(64), publicKey: nil)
            return KeyExchangeInitiation(method: self, state: .mlkem768(key))
        case .mlkem1024:
            let key = try! MLKEM1024.PrivateKey(seedRepresentation: random.bytes(64), publicKey: nil)
            return KeyExchangeInitiation(method: self, state: .mlkem1024(key))
        }
    }

    /// The responder's side in one step: its share for the KE payload and the shared secret, from the
    /// initiator's share. For ML-KEM the share is the ciphertext encapsulated to the initiator's key, which is
    /// refused if it is not a valid encapsulation key (FIPS 203 section 7.2, the modulus check).
    public func respond(to initiatorShare: [UInt8], random: RandomSource = SystemRandom()) throws(KeyExchangeError) -> (
        share: [UInt8], secret: KeyMaterial
    ) {
        let refused = KeyExchangeError.invalidPublicValue(group: identifier)
        guard initiatorShare.count == initiatorShareLength else { throw refused }
        switch self {
        case .group(let group):
            let key = group.generatePrivateKey(random: random)
            return (key.publicValue, try key.sharedSecret(peerPublicValue: initiatorShare))
        case .mlkem768:
            do {
                let result = try MLKEM768.PublicKey(rawRepresentation: initiatorShare).encapsulate()
                return (Array(result.encapsulated), KeyMaterial(result.sharedSecret.withUnsafeBytes { Array($0) }))
            } catch { throw refused }
        case .mlkem1024:
            do {
                let result = try MLKEM1024.PublicKey(rawRepresentation: initiatorShare).encapsulate()
                return (Array(result.encapsulated), KeyMaterial(result.sharedSecret.withUnsafeBytes { Array($0) }))
            } catch { throw refused }
        }
    }
}

/// The initiator's secret of one key exchange, kept until the responder's share arrives.
public struct KeyExchangeInitiation: Sendable {
    enum State: Sendable {
        case group(KeyExchangePrivateKey)
        case mlkem768(MLKEM768.PrivateKey)
        case mlkem1024(MLKEM1024.PrivateKey)
    }

    public let method: KeyExchangeMethod
    let state: State

    /// What goes in the initiator's KE payload.
    public var share: [UInt8] {
        switch state {
        case .group(let key): return key.publicValue
        case .mlkem768(let key): return Array(key.publicKey.rawRepresentation)
        case .mlkem1024(let key): return Array(key.publicKey.rawRepresentation)
        }
    }

    /// The shared secret from the responder's share. An ML-KEM ciphertext of the right length always
    /// decapsulates (FIPS 203 implicit rejection: a wrong one gives a secret the responder does not have, so the
    /// exchange fails at the next integrity check); one of the wrong length is refused here.
    public func complete(responderShare: [UInt8]) throws(KeyExchangeError) -> KeyMaterial {
        let refused = KeyExchangeError.invalidPublicValue(group: method.identifier)
        guard responderShare.count == method.responderShareLength else { throw refused }
        switch state {
        case .group(let key): return try key.sharedSecret(peerPublicValue: responderShare)
        case .mlkem768(let key):
            do { return KeyMaterial(try key.decapsulate(responderShare).withUnsafeBytes { Array($0) }) } catch { throw refused }
        case .mlkem1024(let key):
            do { return KeyMaterial(try key.decapsulate(responderShare).withUnsafeBytes { Array($0) }) } catch { throw refused }
        }
    }
}
