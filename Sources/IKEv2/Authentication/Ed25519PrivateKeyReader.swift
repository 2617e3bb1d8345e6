import Crypto
import SwiftASN1

/// Reads an Ed25519 private key from a PEM "PRIVATE KEY" document (PKCS#8, RFC 5958; the key layout of
/// RFC 8410 section 7), the form `openssl genpkey -algorithm ed25519` and strongSwan's `pki --gen --type
/// ed25519` write. swift-crypto has no PEM reader for Curve25519 keys, and swift-certificates keeps its
/// own internal, so the few ASN.1 fields are read here with SwiftASN1.
enum Ed25519PrivateKeyReader {
    /// id-Ed25519 and id-Ed448 (RFC 8410 section 3).
    static let ed25519 = try! ASN1ObjectIdentifier(elements: [1, 3, 101, 112])
    static let ed448 = try! ASN1ObjectIdentifier(elements: [1, 3, 101, 113])

    enum Outcome {
        case ed25519(Curve25519.Signing.PrivateKey)
        /// A PKCS#8 key of an EdDSA curve swift-crypto cannot sign with.
        case ed448
        /// Not a PKCS#8 EdDSA key (an ECDSA or RSA key, say, or no key at all).
        case other
    }

    static func read(pem: String) -> Outcome {
        guard let documents = try? PEMDocument.parseMultiple(pemString: pem),
            let document = documents.first(where: { $0.discriminator == "PRIVATE KEY" }),
            let root = try? DER.parse(document.derBytes)
        else { return .other }
        do {
            return try DER.sequence(root, identifier: .sequence) { nodes -> Outcome in
                _ = try Int(derEncoded: &nodes)
                let algorithm = try DER.sequence(of: ASN1ObjectIdentifier.self, identifier: .sequence, nodes: &nodes)
                let wrapped = try ASN1OctetString(derEncoded: &nodes)
                // Attributes [0] and the public key [1] of a version 2 key are not needed.
                while nodes.next() != nil {}
                guard algorithm.count == 1 else { return .other }
                if algorithm[0] == ed448 { return .ed448 }
                guard algorithm[0] == ed25519 else { return .other }
                // CurvePrivateKey ::= OCTET STRING, inside the PrivateKeyInfo's privateKey OCTET STRING.
                let inner = try ASN1OctetString(derEncoded: wrapped.bytes)
                return .ed25519(try Curve25519.Signing.PrivateKey(rawRepresentation: inner.bytes))
            }
        } catch {
            return .other
        }
    }
}
