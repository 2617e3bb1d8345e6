import Crypto
import Foundation
import SwiftASN1
import X509
import _CryptoExtras

/// How this side proves who it is in IKE_AUTH (RFC 7296 section 2.15).
public enum LocalAuthentication: Sendable {
    /// The connection's pre-shared key.
    case preSharedKey
    /// A signature with the private key of a certificate sent along in CERT payloads.
    case certificate(CertificateCredential)
}

/// How the peer must prove who it is.
public enum RemoteAuthentication: Sendable {
    case preSharedKey
    /// A signature by the key of a certificate that chains to one of these CA certificates, is revoked by
    /// none of the CRLs nor by the OCSP responders the chain names (a missing answer judged by `revocation`),
    /// and names the peer's identity in its subjectAltName (or as its subject, for a DN).
    case certificate(trustAnchors: [Certificate], revocationLists: [CertificateRevocationList] = [], revocation: RevocationPolicy = .relaxed)
}

/// A certificate chain (end entity first) and the end entity's private key.
public struct CertificateCredential: Sendable {
    public var chain: [Certificate]
    public var key: SigningKey
    /// An RSA key signs with RSASSA-PSS (RFC 8017; MGF1, salt as long as the hash) instead of PKCS#1 v1.5.
    /// PSS exists only under RFC 7427, so a peer that does not announce SIGNATURE_HASH_ALGORITHMS still
    /// gets RFC 7296's PKCS#1 v1.5 method. ECDSA keys are not affected.
    public var rsaPSS = false

    public init(chain: [Certificate], key: SigningKey) {
        self.chain = chain
        self.key = key
    }

    /// Reads a PEM file of certificates (end entity first) and a PEM private key; throws what is wrong.
    public init(certificatePEM: String, privateKeyPEM: String) throws(CredentialError) {
        let chain = CertificateCredential.certificates(pem: certificatePEM)
        guard let leaf = chain.first else { throw CredentialError("no certificate in the PEM text") }
        let key: SigningKey
        if let k = try? P256.Signing.PrivateKey(pemRepresentation: privateKeyPEM) {
            key = .p256(k)
        } else if let k = try? P384.Signing.PrivateKey(pemRepresentation: privateKeyPEM) {
            key = .p384(k)
        } else if let k = try? P521.Signing.PrivateKey(pemRepresentation: privateKeyPEM) {
            key = .p521(k)
        } else if let k = try? _RSA.Signing.PrivateKey(pemRepresentation: privateKeyPEM) {
            key = .rsa(k)
        } else {
            switch Ed25519PrivateKeyReader.read(pem: privateKeyPEM) {
            case .ed25519(let k): key = .ed25519(k)
            case .ed448: throw CredentialError("the private key is an Ed448 key, which swift-crypto cannot sign with; use Ed25519, ECDSA or RSA")
            case .other: throw CredentialError("the private key is not a PEM ECDSA (P-256, P-384, P-521), RSA or Ed25519 key")
            }
        }
        guard key.publicKey == leaf.publicKey else { throw CredentialError("the private key does not belong to the certificate's public key") }
        self.init(chain: chain, key: key)
    }

    /// Every certificate in a PEM text, in order.
    public static func certificates(pem: String) -> [Certificate] {
        (try? PEMDocument.parseMultiple(pemString: pem))?.filter { $0.discriminator == "CERTIFICATE" }
            .compactMap { try? Certificate(derEncoded: $0.derBytes) } ?? []
    }
}

public struct CredentialError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A private key that signs IKEv2 AUTH payloads: ECDSA (RFC 4754), RSA, or Ed25519 (RFC 8420).
public enum SigningKey: Sendable {
    case p256(P256.Signing.PrivateKey)
    case p384(P384.Signing.PrivateKey)
    case p521(P521.Signing.PrivateKey)
    case rsa(_RSA.Signing.PrivateKey)
    case ed25519(Curve25519.Signing.PrivateKey)

    var publicKey: Certificate.PublicKey {
        switch self {
        case .p256(let k): return Certificate.PublicKey(k.publicKey)
        case .p384(let k): return Certificate.PublicKey(k.publicKey)
        case .p521(let k): return Certificate.PublicKey(k.publicKey)
        case .rsa(let k): return Certificate.PublicKey(k.publicKey)
        case .ed25519(let k): return Certificate.PublicKey(k.publicKey)
        }
    }

    /// The key's type, for the log.
    public var name: String {
        switch self {
        case .p256: return "ECDSA P-256"
        case .p384: return "ECDSA P-384"
        case .p521: return "ECDSA P-521"
        case .rsa(let k): return "RSA-\(k.keySizeInBits)"
        case .ed25519: return "Ed25519"
        }
    }

    /// The AUTH payload over the signed octets, given the hashes the peer listed in
    /// SIGNATURE_HASH_ALGORITHMS. With a SHA-2 hash among them, RFC 7427's Digital Signature method (14)
    /// with a SHA-2 algorithm the payload names; else the classic method of the key type: ECDSA 9/10/11
    /// (r | s), RSA 1 (PKCS#1 v1.5 with SHA-1, which RFC 7296 fixes for that method). Ed25519 has no
    /// classic method and hashes nothing itself: it signs with method 14 only when the peer listed the
    /// Identity "hash" (RFC 8420 section 2), else there is no signature the peer has said it can check.
    func authentication(_ octets: [UInt8], peerHashes: SignatureHashAlgorithms, rsaPSS: Bool = false) throws(SigningFailure) -> AuthenticationPayload
    {
        if case .ed25519(let k) = self {
            guard peerHashes.contains(.identity) else {
                throw SigningFailure(
                    "our key is Ed25519, and the peer did not list the Identity hash (RFC 8420) in SIGNATURE_HASH_ALGORITHMS"
                        + (peerHashes.isEmpty ? " (it sent none)" : " (it listed \(peerHashes))"))
            }
            let algorithm = SignatureAlgorithmIdentifier.ed25519
            do {
                let signature = Array(try k.signature(for: octets))
                return AuthenticationPayload(method: .digitalSignature, data: [UInt8(algorithm.der.count)] + algorithm.der + signature)
            } catch { throw SigningFailure("Ed25519 signing failed: \(error)") }
        }
        do { return try classicOrSHA2(octets, digitalSignature: peerHashes.containsSHA2, rsaPSS: rsaPSS) } catch {
            throw SigningFailure("signing with our \(name) key failed: \(error)")
        }
    }

    private func classicOrSHA2(_ octets: [UInt8], digitalSignature: Bool, rsaPSS: Bool) throws -> AuthenticationPayload {
        if digitalSignature {
            let (algorithm, signature): (SignatureAlgorithmIdentifier, [UInt8])
            switch self {
            case .ed25519: throw SigningFailure("Ed25519 signs only with RFC 8420's method")
            case .p256(let k): (algorithm, signature) = (.ecdsaSHA256, Array(try k.signature(for: octets).derRepresentation))
            case .p384(let k): (algorithm, signature) = (.ecdsaSHA384, Array(try k.signature(for: octets).derRepresentation))
            case .p521(let k): (algorithm, signature) = (.ecdsaSHA512, Array(try k.signature(for: octets).derRepresentation))
            case .rsa(let k) where rsaPSS:
                (algorithm, signature) = (.rsaPSSSHA256, Array(try k.signature(for: SHA256.hash(data: octets), padding: .PSS).rawRepresentation))
            case .rsa(let k):
                (algorithm, signature) = (
                    .rsaSHA256, Array(try k.signature(for: SHA256.hash(data: octets), padding: .insecurePKCS1v1_5).rawRepresentation)
                )
            }
            return AuthenticationPayload(method: .digitalSignature, data: [UInt8(algorithm.der.count)] + algorithm.der + signature)
        }
        switch self {
        case .p256(let k): return AuthenticationPayload(method: .ecdsaSHA256P256, data: Array(try k.signature(for: octets).rawRepresentation))
        case .p384(let k): return AuthenticationPayload(method: .ecdsaSHA384P384, data: Array(try k.signature(for: octets).rawRepresentation))
        case .p521(let k): return AuthenticationPayload(method: .ecdsaSHA512P521, data: Array(try k.signature(for: octets).rawRepresentation))
        case .rsa(let k):
            return AuthenticationPayload(
                method: .rsaDigitalSignature,
                data: Array(try k.signature(for: Insecure.SHA1.hash(data: octets), padding: .insecurePKCS1v1_5).rawRepresentation))
        case .ed25519: throw SigningFailure("Ed25519 has no classic AUTH method")
        }
    }
}

/// Why our AUTH payload could not be made, for the log and the failure event.
public struct SigningFailure: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// The signature algorithms of RFC 7427's Digital Signature method, by their AlgorithmIdentifier DER
/// (RFC 7427 appendix A); RSA with or without the NULL parameters some encoders leave out, and RSASSA-PSS
/// (RFC 4055 section 3.1) with MGF1 over the same hash and a salt as long as the hash, the one form
/// swift-crypto verifies (and the one strongSwan, OpenSSL and most others use).
enum SignatureAlgorithmIdentifier: CaseIterable {
    case ecdsaSHA256, ecdsaSHA384, ecdsaSHA512, rsaSHA256, rsaSHA384, rsaSHA512, rsaPSSSHA256, rsaPSSSHA384, rsaPSSSHA512
    /// PureEdDSA over the signed octets (RFC 8420; AlgorithmIdentifier of RFC 8410, no parameters).
    case ed25519

    var der: [UInt8] {
        switch self {
        case .ecdsaSHA256: return [0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]
        case .ecdsaSHA384: return [0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]
        case .ecdsaSHA512: return [0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04]
        case .rsaSHA256: return [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00]
        case .rsaSHA384: return [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00]
        case .rsaSHA512: return [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00]
        case .rsaPSSSHA256: return RSAPSSParameters(hash: .sha256).algorithmIdentifier
        case .rsaPSSSHA384: return RSAPSSParameters(hash: .sha384).algorithmIdentifier
        case .rsaPSSSHA512: return RSAPSSParameters(hash: .sha512).algorithmIdentifier
        case .ed25519: return [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70]
        }
    }

    /// id-Ed448's AlgorithmIdentifier: recognised to say why it is refused.
    static let ed448 = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x71] as [UInt8]

    init?(der: [UInt8]) {
        for algorithm in Self.allCases {
            let known = algorithm.der
            let withoutNull = known.count == 15 ? [0x30, 0x0b] + Array(known[2..<13]) : known
            if der == known || der == withoutNull {
                self = algorithm
                return
            }
        }
        guard case .success(let pss)? = RSAPSSParameters.parse(algorithmIdentifier: der) else { return nil }
        switch pss.hash {
        case .sha256: self = .rsaPSSSHA256
        case .sha384: self = .rsaPSSSHA384
        case .sha512: self = .rsaPSSSHA512
        }
    }

    var name: String {
        switch self {
        case .ecdsaSHA256: return "ECDSA with SHA-256"
        case .ecdsaSHA384: return "ECDSA with SHA-384"
        case .ecdsaSHA512: return "ECDSA with SHA-512"
        case .rsaSHA256: return "RSA PKCS#1 v1.5 with SHA-256"
        case .rsaSHA384: return "RSA PKCS#1 v1.5 with SHA-384"
        case .rsaSHA512: return "RSA PKCS#1 v1.5 with SHA-512"
        case .rsaPSSSHA256: return "RSASSA-PSS with SHA-256"
        case .rsaPSSSHA384: return "RSASSA-PSS with SHA-384"
        case .rsaPSSSHA512: return "RSASSA-PSS with SHA-512"
        case .ed25519: return "Ed25519"
        }
    }

    /// Why an AlgorithmIdentifier is not one of ours, for the log.
    static func unsupported(_ der: [UInt8]) -> String {
        if case .failure(let reason)? = RSAPSSParameters.parse(algorithmIdentifier: der) { return reason.description }
        if der == ed448 { return "signature algorithm Ed448 is not supported (swift-crypto has no Ed448)" }
        return "signature algorithm \(der.hexString) is not supported (ECDSA or RSA PKCS#1 v1.5 with SHA-2, RSASSA-PSS, or Ed25519)"
    }
}

/// Why a peer's signature authentication was not accepted, said plainly for the log.
public struct AuthenticationFailure: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Certificate-based authentication of the peer: chain to a trust anchor, identity in the certificate,
/// and the AUTH signature over the signed octets (RFC 7296 sections 2.15 and 3.6, RFC 4754, RFC 5280).
enum SignatureAuthentication {
    /// X.509 Certificate - Signature, the CERT and CERTREQ encoding used here (section 3.6).
    static let x509Encoding: UInt8 = 4

    /// InitiatorSignedOctets / ResponderSignedOctets: the sender's first message, the other side's nonce,
    /// and prf(SK_p, the sender's ID payload body).
    static func signedOctets(
        prf: PseudoRandomFunction, firstMessage: [UInt8], peerNonce: Nonce, authenticationKey: KeyMaterial,
        identification: IdentificationPayload, intAuth: [UInt8] = []
    ) -> [UInt8] {
        // RFC 9242 section 3.3.2: after IKE_INTERMEDIATE exchanges the signed octets end with IntAuth.
        firstMessage + peerNonce.octets + prf.compute(key: authenticationKey.bytes, data: identification.authenticatedBody) + intAuth
    }

    /// CERT payloads for a chain, end entity first.
    static func certificatePayloads(_ chain: [Certificate]) -> [Payload] {
        chain.compactMap { certificate in
            var serializer = DER.Serializer()
            guard (try? serializer.serialize(certificate)) != nil else { return nil }
            return .certificate(CertificatePayload(encoding: x509Encoding, data: serializer.serializedBytes))
        }
    }

    /// CERTREQ naming the trust anchors by the SHA-1 of their SubjectPublicKeyInfo (section 3.7); SHA-1 is
    /// what the format fixes, used as an identifier, not for security.
    static func certificateRequest(_ anchors: [Certificate]) -> Payload? {
        let hashes = anchors.flatMap { anchor -> [UInt8] in
            var serializer = DER.Serializer()
            guard (try? serializer.serialize(anchor.publicKey)) != nil else { return [] }
            return Array(Insecure.SHA1.hash(data: serializer.serializedBytes))
        }
        return hashes.isEmpty ? nil : .certificateRequest(CertificatePayload(encoding: x509Encoding, data: hashes))
    }

    /// SIGNATURE_HASH_ALGORITHMS (RFC 7427 section 4): SHA2-256, SHA2-384, SHA2-512, and Identity for Ed25519 (RFC 8420).
    static let hashAlgorithmsNotify = NotifyPayload(type: .signatureHashAlgorithms, data: SignatureHashAlgorithms.ours.notifyData)

    /// Checks the peer's certificate path (with its identity, `CertificatePath`) and signature; returns the
    /// path, end entity first and trust anchor last.
    static func verify(
        auth: AuthenticationPayload, certificates: [CertificatePayload], identity: IdentificationPayload,
        octets: [UInt8], trustAnchors: [Certificate], revocationLists: [CertificateRevocationList] = [],
        now: Date
    ) -> Result<[Certificate], AuthenticationFailure> {
        let x509 = certificates.filter { $0.encoding == x509Encoding }
        guard let first = x509.first else {
            return .failure(AuthenticationFailure("no X.509 certificate in the peer's CERT payloads"))
        }
        let leaf: Certificate
        // An unreadable end entity (a public key that does not parse, bad DER) refuses the peer by name;
        // an unreadable intermediate is left out, and the path is judged without it.
        do { leaf = try Certificate(derEncoded: first.data) } catch {
            return .failure(AuthenticationFailure("the peer's certificate (first CERT payload, \(first.data.count) octets) is unreadable: \(error)"))
        }
        let presented = [leaf] + x509.dropFirst().compactMap { try? Certificate(derEncoded: $0.data) }
        let path: [Certificate]
        switch CertificatePath.validate(
            leaf: leaf, intermediates: Array(presented.dropFirst()), anchors: trustAnchors, revocationLists: revocationLists,
            identity: identity, now: now)
        {
        case .failure(let failure): return .failure(failure)
        case .success(let verified): path = verified
        }
        if let parts = digitalSignatureParts(auth), SignatureAlgorithmIdentifier(der: parts.algorithmIdentifier) == nil {
            return .failure(AuthenticationFailure("the AUTH payload's \(SignatureAlgorithmIdentifier.unsupported(parts.algorithmIdentifier))"))
        }
        guard signatureIsValid(auth, publicKey: leaf.publicKey, octets: octets) else {
            return .failure(
                AuthenticationFailure("the AUTH signature (method \(auth.method.rawValue)) does not verify with the key of \(leaf.subject)"))
        }
        return .success(path)
    }

    /// The AUTH data of RFC 7427's method 14 split: the AlgorithmIdentifier (after its length octet) and
    /// the signature; nil for other methods or data too short for the length it states.
    static func digitalSignatureParts(_ auth: AuthenticationPayload) -> (algorithmIdentifier: [UInt8], signature: [UInt8])? {
        guard auth.method == .digitalSignature, let length = auth.data.first, auth.data.count > 1 + Int(length) else { return nil }
        return (Array(auth.data[1...Int(length)]), Array(auth.data[(1 + Int(length))...]))
    }

    /// The AUTH method, and for RFC 7427 the signature algorithm it names, for the log.
    static func scheme(of auth: AuthenticationPayload) -> String {
        guard let parts = digitalSignatureParts(auth), let algorithm = SignatureAlgorithmIdentifier(der: parts.algorithmIdentifier) else {
            return auth.method.name
        }
        return "\(auth.method.name), \(algorithm.name)"
    }

    static func signatureIsValid(_ auth: AuthenticationPayload, publicKey: Certificate.PublicKey, octets: [UInt8]) -> Bool {
        switch auth.method {
        case .digitalSignature:
            guard let parts = digitalSignatureParts(auth), let algorithm = SignatureAlgorithmIdentifier(der: parts.algorithmIdentifier) else {
                return false
            }
            return digitalSignatureIsValid(algorithm, signature: parts.signature, publicKey: publicKey, octets: octets)
        case .rsaDigitalSignature:
            // PKCS#1 v1.5 with SHA-1: what RFC 7296 fixes for method 1; accepted from peers that do not speak RFC 7427.
            guard let key = _RSA.Signing.PublicKey(publicKey) else { return false }
            return key.isValidSignature(
                _RSA.Signing.RSASignature(rawRepresentation: auth.data), for: Insecure.SHA1.hash(data: octets),
                padding: .insecurePKCS1v1_5)
        case .ecdsaSHA256P256:
            guard let key = P256.Signing.PublicKey(publicKey), let signature = try? P256.Signing.ECDSASignature(rawRepresentation: auth.data) else {
                return false
            }
            return key.isValidSignature(signature, for: octets)
        case .ecdsaSHA384P384:
            guard let key = P384.Signing.PublicKey(publicKey), let signature = try? P384.Signing.ECDSASignature(rawRepresentation: auth.data) else {
                return false
            }
            return key.isValidSignature(signature, for: octets)
        case .ecdsaSHA512P521:
            guard let key = P521.Signing.PublicKey(publicKey), let signature = try? P521.Signing.ECDSASignature(rawRepresentation: auth.data) else {
                return false
            }
            return key.isValidSignature(signature, for: octets)
        default:
            return false
        }
    }

    static func digitalSignatureIsValid(
        _ algorithm: SignatureAlgorithmIdentifier, signature: [UInt8], publicKey: Certificate.PublicKey,
        octets: [UInt8]
    ) -> Bool {
        func ecdsa<D: Digest>(_ digest: D) -> Bool {
            if let key = P256.Signing.PublicKey(publicKey), let s = try? P256.Signing.ECDSASignature(derRepresentation: signature) {
                return key.isValidSignature(s, for: digest)
            }
            if let key = P384.Signing.PublicKey(publicKey), let s = try? P384.Signing.ECDSASignature(derRepresentation: signature) {
                return key.isValidSignature(s, for: digest)
            }
            if let key = P521.Signing.PublicKey(publicKey), let s = try? P521.Signing.ECDSASignature(derRepresentation: signature) {
                return key.isValidSignature(s, for: digest)
            }
            return false
        }
        func rsa<D: Digest>(_ digest: D, padding: _RSA.Signing.Padding = .insecurePKCS1v1_5) -> Bool {
            guard let key = _RSA.Signing.PublicKey(publicKey) else { return false }
            return key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: digest, padding: padding)
        }
        switch algorithm {
        case .ecdsaSHA256: return ecdsa(SHA256.hash(data: octets))
        case .ecdsaSHA384: return ecdsa(SHA384.hash(data: octets))
        case .ecdsaSHA512: return ecdsa(SHA512.hash(data: octets))
        case .rsaSHA256: return rsa(SHA256.hash(data: octets))
        case .rsaSHA384: return rsa(SHA384.hash(data: octets))
        case .rsaSHA512: return rsa(SHA512.hash(data: octets))
        case .rsaPSSSHA256: return rsa(SHA256.hash(data: octets), padding: .PSS)
        case .rsaPSSSHA384: return rsa(SHA384.hash(data: octets), padding: .PSS)
        case .rsaPSSSHA512: return rsa(SHA512.hash(data: octets), padding: .PSS)
        case .ed25519:
            guard let key = Curve25519.Signing.PublicKey(publicKey) else { return false }
            return key.isValidSignature(signature, for: octets)
        }
    }
}
