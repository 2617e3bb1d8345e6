import Crypto
import Foundation
import X509
import XCTest

@testable import IKEv2

/// Ed25519 in IKEv2 (RFC 8420): RFC 7427's Digital Signature method with id-Ed25519, signed only for a
/// peer that listed the Identity hash; Ed25519 CAs; keys read from the PKCS#8 PEM OpenSSL writes.
final class Ed25519AuthenticationTests: XCTestCase {
    typealias Authority = CertificateFixtures.Authority

    /// `openssl genpkey -algorithm ed25519` (a key made for this test only).
    static let ed25519PEM = """
        -----BEGIN PRIVATE KEY-----
        MC4CAQAwBQYDK2VwBCIEIGVhqkWkSuGYEzAM0xh7wuVas07skuMO/OyuwMsnoMEY
        -----END PRIVATE KEY-----
        """
    /// Its public key, from `openssl pkey -pubout`.
    static let ed25519PublicHex = "19600b1adfea9154775a396016d127cc25241792a244a70eb061b7ebb49d39e5"
    /// `openssl req -x509 -key` that key, subjectAltName IP:192.0.2.9, valid to 2126.
    static let ed25519CertificatePEM = """
        -----BEGIN CERTIFICATE-----
        MIIBXDCCAQ6gAwIBAgIURIma7O2IM/aEFPRdIun/JOyAgCgwBQYDK2VwMBoxGDAW
        BgNVBAMMD2VkMjU1MTkgZml4dHVyZTAgFw0yNjExMjcwNDE5MzdaGA8yMTI2MTEw
        MzA0MTkzN1owGjEYMBYGA1UEAwwPZWQyNTUxOSBmaXh0dXJlMCowBQYDK2VwAyEA
        GWALGt/qkVR3WjlgFtEnzCUkF5KiRKcOsGG367SdOeWjZDBiMB0GA1UdDgQWBBRv
        /MscdC+d1BU7Iv9X/NpOi6QaTDAfBgNVHSMEGDAWgBRv/MscdC+d1BU7Iv9X/NpO
        i6QaTDAPBgNVHRMBAf8EBTADAQH/MA8GA1UdEQQIMAaHBMAAAgkwBQYDK2VwA0EA
        hLi0jXp9SwjF5/6VdxyBLBe2D3KbZT52+DbO/Q1IL0+Pnld/kHa45wDGwJTPjOfK
        mqzsGcdOM7qRhoI7hOMKAA==
        -----END CERTIFICATE-----
        """
    /// `openssl genpkey -algorithm ed448`.
    static let ed448PEM = """
        -----BEGIN PRIVATE KEY-----
        MEcCAQAwBQYDK2VxBDsEOSMUsliNtkOuhuKhO38+No8FQ3JNdnpAPOGaqLB/N6y0
        N4YqGRDTBfrEBAg+gDTVOKYdfa1RbwsWYw==
        -----END PRIVATE KEY-----
        """

    func testBothSidesAuthenticateWithEd25519CertificatesFromAnEd25519CA() throws {
        let ca = try Authority(name: "Ed25519 CA", ed25519: true)
        let pair = try CertificateFixtures.pair(
            initiator: try ca.issue(address: "192.0.2.1", subjectKey: .ed25519(Curve25519.Signing.PrivateKey())),
            responder: try ca.issue(address: "192.0.2.2", subjectKey: .ed25519(Curve25519.Signing.PrivateKey())),
            initiatorTrusts: [ca.certificate], responderTrusts: [ca.certificate])
        XCTAssertTrue(CertificateFixtures.established(pair), CertificateFixtures.failure(pair))
        // Both listed Identity next to SHA-2, and each verified the other's Ed25519 AUTH (method 14).
        let initRequest = try IKEMessage.decode(pair.wire[0].payload)
        XCTAssertEqual(
            SignatureHashAlgorithms(notifyData: initRequest.payloads.notify(.signatureHashAlgorithms)?.data ?? []).description,
            "SHA2_256, SHA2_384, SHA2_512, Identity")
        for side in ["initiator", "responder"] {
            let lines = pair.logs.filter { $0.side == side }.map(\.line)
            XCTAssertTrue(lines.contains { $0.contains("(RFC 7427 digital signature, Ed25519)") }, "\(side): \(lines)")
        }
    }

    func testEd25519AndECDSAKeysMeetUnderOneCA() throws {
        // An ECDSA CA certifies an Ed25519 key, and an Ed25519 CA an ECDSA one: the key and the CA's
        // signature are judged separately.
        let ecdsaCA = try Authority(name: "ECDSA CA")
        let edCA = try Authority(name: "Ed25519 CA", ed25519: true)
        let pair = try CertificateFixtures.pair(
            initiator: try ecdsaCA.issue(address: "192.0.2.1", subjectKey: .ed25519(Curve25519.Signing.PrivateKey())),
            responder: try edCA.issue(address: "192.0.2.2", p384: true),
            initiatorTrusts: [edCA.certificate], responderTrusts: [ecdsaCA.certificate])
        XCTAssertTrue(CertificateFixtures.established(pair), CertificateFixtures.failure(pair))
    }

    func testAnEd25519SignatureIsRefusedWithAnotherKeyOrTampered() throws {
        let key = Curve25519.Signing.PrivateKey()
        let other = Curve25519.Signing.PrivateKey()
        let octets = Array("InitiatorSignedOctets".utf8)
        let auth = try SigningKey.ed25519(key).authentication(octets, peerHashes: .ours)
        XCTAssertEqual(auth.method, .digitalSignature)
        // Length 7, then id-Ed25519 with no parameters (RFC 8420 section 2), then the 64-octet signature.
        XCTAssertEqual(Array(auth.data.prefix(8)).hexString, "07300506032b6570")
        XCTAssertEqual(auth.data.count, 8 + 64)
        XCTAssertEqual(SignatureAuthentication.scheme(of: auth), "RFC 7427 digital signature, Ed25519")
        XCTAssertTrue(SignatureAuthentication.signatureIsValid(auth, publicKey: SigningKey.ed25519(key).publicKey, octets: octets))
        XCTAssertFalse(SignatureAuthentication.signatureIsValid(auth, publicKey: SigningKey.ed25519(other).publicKey, octets: octets))
        XCTAssertFalse(SignatureAuthentication.signatureIsValid(auth, publicKey: SigningKey.ed25519(key).publicKey, octets: octets + [0]))
        var garbled = auth
        garbled.data[40] ^= 0x01
        XCTAssertFalse(SignatureAuthentication.signatureIsValid(garbled, publicKey: SigningKey.ed25519(key).publicKey, octets: octets))
        // An ECDSA key does not verify an Ed25519 signature, nor the reverse.
        let ecdsa = SigningKey.p256(P256.Signing.PrivateKey())
        XCTAssertFalse(SignatureAuthentication.signatureIsValid(auth, publicKey: ecdsa.publicKey, octets: octets))
        let ecdsaAuth = try ecdsa.authentication(octets, peerHashes: .ours)
        XCTAssertFalse(SignatureAuthentication.signatureIsValid(ecdsaAuth, publicKey: SigningKey.ed25519(key).publicKey, octets: octets))
    }

    func testAnEd25519KeySignsOnlyForAPeerThatListedTheIdentityHash() throws {
        let key = SigningKey.ed25519(Curve25519.Signing.PrivateKey())
        let octets = Array("ResponderSignedOctets".utf8)
        for (hashes, said) in [
            (SignatureHashAlgorithms([.sha256, .sha384, .sha512]), "it listed SHA2_256, SHA2_384, SHA2_512"),
            (SignatureHashAlgorithms([]), "it sent none")
        ] {
            XCTAssertThrowsError(try key.authentication(octets, peerHashes: hashes)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("did not list the Identity hash (RFC 8420)") && text.contains(said), text)
            }
        }
    }

    func testAnEd448SignatureIsRefusedWithTheReason() {
        let reason = SignatureAlgorithmIdentifier.unsupported(SignatureAlgorithmIdentifier.ed448)
        XCTAssertEqual(reason, "signature algorithm Ed448 is not supported (swift-crypto has no Ed448)")
        XCTAssertNil(SignatureAlgorithmIdentifier(der: SignatureAlgorithmIdentifier.ed448))
    }

    func testOpenSSLEd25519KeysAndCertificatesAreRead() throws {
        guard case .ed25519(let key) = Ed25519PrivateKeyReader.read(pem: Self.ed25519PEM) else { return XCTFail("not read as Ed25519") }
        XCTAssertEqual(Array(key.publicKey.rawRepresentation).hexString, Self.ed25519PublicHex)
        let credential = try CertificateCredential(certificatePEM: Self.ed25519CertificatePEM, privateKeyPEM: Self.ed25519PEM)
        guard case .ed25519 = credential.key else { return XCTFail("credential key is \(credential.key.name)") }
        // The certificate is self-signed with Ed25519: its own key verifies it.
        XCTAssertTrue(credential.chain[0].publicKey.isValidSignature(credential.chain[0].signature, for: credential.chain[0]))
        // The key must be the certificate's.
        let otherPEM = Self.ed25519PEM.replacingOccurrences(of: "MC4CAQAwBQYDK2VwBCIEIGVh", with: "MC4CAQAwBQYDK2VwBCIEIGVi")
        XCTAssertThrowsError(try CertificateCredential(certificatePEM: Self.ed25519CertificatePEM, privateKeyPEM: otherPEM)) { error in
            XCTAssertTrue("\(error)".contains("does not belong to the certificate"), "\(error)")
        }
    }

    func testEd448AndGarbageKeysAreRefusedWithTheReason() {
        XCTAssertThrowsError(try CertificateCredential(certificatePEM: Self.ed25519CertificatePEM, privateKeyPEM: Self.ed448PEM)) { error in
            XCTAssertTrue("\(error)".contains("Ed448 key, which swift-crypto cannot sign with"), "\(error)")
        }
        for garbage in [
            "", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nMAUCAQAwAA==\n-----END PRIVATE KEY-----"
        ] {
            guard case .other = Ed25519PrivateKeyReader.read(pem: garbage) else { return XCTFail("read garbage \(garbage)") }
            XCTAssertThrowsError(try CertificateCredential(certificatePEM: Self.ed25519CertificatePEM, privateKeyPEM: garbage)) { error in
                XCTAssertTrue("\(error)".contains("not a PEM ECDSA (P-256, P-384, P-521), RSA or Ed25519 key"), "\(error)")
            }
        }
    }
}
