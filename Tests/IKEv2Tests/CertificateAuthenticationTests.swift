import Crypto
import Foundation
import SwiftASN1
import X509
import XCTest
import _CryptoExtras

@testable import IKEv2

/// IKE_AUTH with certificates (RFC 7296 section 2.15, RFC 4754) between two engines in memory: a CA made
/// here issues both ends' certificates; wrong CAs, names, dates and signatures are refused with a reason.
final class CertificateAuthenticationTests: XCTestCase {
    typealias Authority = CertificateFixtures.Authority
    func pair(
        initiator: CertificateCredential, responder: CertificateCredential, initiatorTrusts: [Certificate], responderTrusts: [Certificate],
        settings: (EngineSettings, EngineSettings) = (EngineSettings(), EngineSettings())
    ) throws -> EnginePair {
        try CertificateFixtures.pair(
            initiator: initiator, responder: responder, initiatorTrusts: initiatorTrusts, responderTrusts: responderTrusts,
            settings: settings)
    }
    func established(_ pair: EnginePair) -> Bool { CertificateFixtures.established(pair) }
    func failure(_ pair: EnginePair) -> String { CertificateFixtures.failure(pair) }

    func testBothSidesAuthenticateWithCertificatesFromTheirCA() throws {
        let ca = try Authority(name: "test CA")
        for p384 in [false, true] {
            let pair = try pair(
                initiator: try ca.issue(address: "192.0.2.1", p384: p384), responder: try ca.issue(address: "192.0.2.2"),
                initiatorTrusts: [ca.certificate], responderTrusts: [ca.certificate])
            XCTAssertTrue(established(pair), failure(pair))
            XCTAssertEqual(pair.responder.counters["authentication_failed"] ?? 0, 0)
            // The initiator signed with ECDSA P-384 / P-256 (AUTH method 10 / 9): both verified.
            XCTAssertEqual(pair.initiator.sessionSummaries.first?.established, true)
        }
    }

    func testAChainThroughAnIntermediateCAIsFollowed() throws {
        let root = try Authority(name: "root CA")
        // An intermediate CA signed by the root; it issues the initiator's certificate.
        let intermediateKey = P256.Signing.PrivateKey()
        let intermediateName = try DistinguishedName { CommonName("intermediate CA") }
        let intermediate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(intermediateKey.publicKey),
            notValidBefore: Date(timeIntervalSinceNow: -60), notValidAfter: Date(timeIntervalSinceNow: 86400),
            issuer: root.certificate.subject, subject: intermediateName, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions { Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0)) },
            issuerPrivateKey: .init(root.key))
        let leafKey = P256.Signing.PrivateKey()
        let leaf = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(leafKey.publicKey),
            notValidBefore: Date(timeIntervalSinceNow: -60), notValidAfter: Date(timeIntervalSinceNow: 86400),
            issuer: intermediateName, subject: try DistinguishedName { CommonName("host 192.0.2.1") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                SubjectAlternativeNames([.ipAddress(ASN1OctetString(contentBytes: ArraySlice(IPAddress("192.0.2.1")!.bytes)))])
            }, issuerPrivateKey: .init(intermediateKey))
        // Sent with its intermediate, the chain reaches the root the responder trusts.
        var pair = try pair(
            initiator: CertificateCredential(chain: [leaf, intermediate], key: .p256(leafKey)), responder: try root.issue(address: "192.0.2.2"),
            initiatorTrusts: [root.certificate], responderTrusts: [root.certificate])
        XCTAssertTrue(established(pair), failure(pair))
        // Sent without it, it does not.
        pair = try self.pair(
            initiator: CertificateCredential(chain: [leaf], key: .p256(leafKey)), responder: try root.issue(address: "192.0.2.2"),
            initiatorTrusts: [root.certificate], responderTrusts: [root.certificate])
        XCTAssertFalse(established(pair))
        XCTAssertTrue(failure(pair).contains("does not chain to a trusted CA (issuer CN=intermediate CA)"), failure(pair))
    }

    func testRSACertificatesAuthenticateWithRFC7427DigitalSignatures() throws {
        let ca = try Authority(name: "test CA")
        let pair = try pair(
            initiator: try ca.issue(address: "192.0.2.1", subjectKey: .rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048))),
            responder: try ca.issue(address: "192.0.2.2"), initiatorTrusts: [ca.certificate], responderTrusts: [ca.certificate])
        XCTAssertTrue(established(pair), failure(pair))
        // Both announced SHA-2 in IKE_SA_INIT, so both AUTH payloads use method 14.
        let initInitiator = try IKEMessage.decode(pair.wire[0].payload)
        XCTAssertEqual(initInitiator.payloads.notify(.signatureHashAlgorithms)?.data, [0, 2, 0, 3, 0, 4, 0, 5])
    }

    func testRSAKeysSignWithRSASSAPSSWhenAskedAndThePeerVerifiesIt() throws {
        let ca = try Authority(name: "test CA")
        var initiator = try ca.issue(address: "192.0.2.1", subjectKey: .rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048)))
        initiator.rsaPSS = true
        let pair = try pair(
            initiator: initiator, responder: try ca.issue(address: "192.0.2.2"),
            initiatorTrusts: [ca.certificate], responderTrusts: [ca.certificate])
        XCTAssertTrue(established(pair), failure(pair))
        // The responder's log names the scheme it verified.
        let responderLogs = pair.logs.filter { $0.side == "responder" }.map(\.line)
        XCTAssertTrue(responderLogs.contains { $0.contains("RSASSA-PSS with SHA-256") }, "\(responderLogs)")
    }

    func testRSASSAPSSAlgorithmIdentifiersAreParsedStrictly() throws {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let octets = Array("ResponderSignedOctets".utf8)
        let auth = try SigningKey.rsa(key).authentication(octets, peerHashes: .ours, rsaPSS: true)
        let length = Int(auth.data[0])
        let identifier = Array(auth.data[1...length])
        // What we send is RFC 4055's explicit form, byte for byte what other implementations send for SHA-256.
        XCTAssertEqual(
            identifier.hexString,
            "3041" + "06092a864886f70d01010a" + "3034"
                + "a00f300d0609608648016503040201" + "0500" + "a11c301a06092a864886f70d010108300d0609608648016503040201" + "0500"
                + "a203020120")
        XCTAssertTrue(SignatureAuthentication.signatureIsValid(auth, publicKey: SigningKey.rsa(key).publicKey, octets: octets))
        // Hash identifiers without their NULL parameters are the same algorithm (RFC 4055 section 2.1).
        for hash in RSAPSSParameters.Hash.allCases {
            var serializer = DER.Serializer()
            try serializer.appendConstructedNode(identifier: .sequence) { outer in
                try outer.serialize(RSAPSSParameters.pssOID)
                try outer.appendConstructedNode(identifier: .sequence) { params in
                    try params.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { t in
                        try t.appendConstructedNode(identifier: .sequence) { try $0.serialize(hash.oid) }
                    }
                    try params.serialize(explicitlyTaggedWithTagNumber: 1, tagClass: .contextSpecific) { t in
                        try t.appendConstructedNode(identifier: .sequence) { m in
                            try m.serialize(RSAPSSParameters.mgf1OID)
                            try m.appendConstructedNode(identifier: .sequence) { try $0.serialize(hash.oid) }
                        }
                    }
                    try params.serialize(explicitlyTaggedWithTagNumber: 2, tagClass: .contextSpecific) { try $0.serialize(hash.length) }
                }
            }
            XCTAssertEqual(RSAPSSParameters.parse(algorithmIdentifier: serializer.serializedBytes), .success(RSAPSSParameters(hash: hash)))
        }
        // A salt of another length is refused with the reason (swift-crypto verifies only hash-length salts).
        var wrongSalt = identifier
        wrongSalt[wrongSalt.count - 1] = 20
        XCTAssertNil(SignatureAlgorithmIdentifier(der: wrongSalt))
        XCTAssertTrue(
            SignatureAlgorithmIdentifier.unsupported(wrongSalt).contains("20-octet salt"), SignatureAlgorithmIdentifier.unsupported(wrongSalt))
        // No parameters means SHA-1 defaults: refused; so is garbage after the OID.
        let bare: [UInt8] = [0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a]
        XCTAssertTrue(SignatureAlgorithmIdentifier.unsupported(bare).contains("SHA-1"), SignatureAlgorithmIdentifier.unsupported(bare))
        XCTAssertNil(SignatureAlgorithmIdentifier(der: Array(identifier.prefix(20))))
        // Not PSS at all: no PSS reason.
        XCTAssertNil(RSAPSSParameters.parse(algorithmIdentifier: SignatureAlgorithmIdentifier.ecdsaSHA256.der))
    }

    func testEverySignatureFormVerifiesAndATamperedOneDoesNot() throws {
        let octets = Array("InitiatorSignedOctets".utf8)
        let keys: [SigningKey] = [
            .p256(P256.Signing.PrivateKey()), .p384(P384.Signing.PrivateKey()), .p521(P521.Signing.PrivateKey()),
            .rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048))
        ]
        for key in keys {
            for peerHashes in [SignatureHashAlgorithms([]), .ours] {
                let auth = try key.authentication(octets, peerHashes: peerHashes)
                if peerHashes.containsSHA2 { XCTAssertEqual(auth.method, .digitalSignature) }
                XCTAssertTrue(SignatureAuthentication.signatureIsValid(auth, publicKey: key.publicKey, octets: octets), "\(auth.method)")
                XCTAssertFalse(
                    SignatureAuthentication.signatureIsValid(auth, publicKey: key.publicKey, octets: octets + [0]), "\(auth.method) tampered")
                var garbled = auth
                garbled.data[garbled.data.count / 2] ^= 0x40
                XCTAssertFalse(SignatureAuthentication.signatureIsValid(garbled, publicKey: key.publicKey, octets: octets), "\(auth.method) garbled")
            }
        }
        // Classic methods by key type: ECDSA 9, 10, 11 and RSA 1.
        XCTAssertEqual(try keys.map { try $0.authentication(octets, peerHashes: SignatureHashAlgorithms([])).method.rawValue }, [9, 10, 11, 1])
        // An unknown algorithm identifier in method 14 does not verify.
        var unknown = try keys[0].authentication(octets, peerHashes: .ours)
        unknown.data[5] ^= 0xff
        XCTAssertFalse(SignatureAuthentication.signatureIsValid(unknown, publicKey: keys[0].publicKey, octets: octets))
    }

    func testCERTREQNamesTheTrustAnchorsByTheirKeyHash() throws {
        let ca = try Authority(name: "test CA")
        guard case .certificateRequest(let request)? = SignatureAuthentication.certificateRequest([ca.certificate]) else { return XCTFail() }
        XCTAssertEqual(request.encoding, 4)
        var serializer = DER.Serializer()
        try serializer.serialize(ca.certificate.publicKey)
        XCTAssertEqual(request.data, Array(Insecure.SHA1.hash(data: serializer.serializedBytes)), "SHA-1 of the CA's SubjectPublicKeyInfo")
    }

    func testAPeerOutsideTheTrustedCAOrNamingAnotherIdentityIsRefused() throws {
        let ca = try Authority(name: "test CA")
        let other = try Authority(name: "other CA")
        // The responder's certificate comes from a CA the initiator does not trust.
        var pair = try pair(
            initiator: try ca.issue(address: "192.0.2.1"), responder: try other.issue(address: "192.0.2.2"),
            initiatorTrusts: [ca.certificate], responderTrusts: [ca.certificate])
        XCTAssertFalse(established(pair))
        XCTAssertTrue(failure(pair).contains("does not chain to a trusted CA"), failure(pair))
        // The initiator's certificate names another address than the identity it claims.
        pair = try self.pair(
            initiator: try ca.issue(address: "192.0.2.77"), responder: try ca.issue(address: "192.0.2.2"),
            initiatorTrusts: [ca.certificate], responderTrusts: [ca.certificate])
        XCTAssertFalse(established(pair))
        XCTAssertTrue(failure(pair).contains("does not name the peer's identity 192.0.2.1"), failure(pair))
        XCTAssertEqual(pair.responder.counters["authentication_failed"], 1)
        // An expired certificate.
        pair = try self.pair(
            initiator: try ca.issue(address: "192.0.2.1", validTo: Date(timeIntervalSinceNow: -1)),
            responder: try ca.issue(address: "192.0.2.2"), initiatorTrusts: [ca.certificate], responderTrusts: [ca.certificate])
        XCTAssertFalse(established(pair))
        XCTAssertTrue(failure(pair).contains("CN=host 192.0.2.1 has expired"), failure(pair))
        // A key that does not belong to the certificate: the signature does not verify.
        var forged = try ca.issue(address: "192.0.2.1")
        forged.key = .p256(P256.Signing.PrivateKey())
        pair = try self.pair(
            initiator: forged, responder: try ca.issue(address: "192.0.2.2"), initiatorTrusts: [ca.certificate], responderTrusts: [ca.certificate])
        XCTAssertFalse(established(pair))
        XCTAssertTrue(failure(pair).contains("AUTH signature (method 14) does not verify"), failure(pair))
    }

    func testAPreSharedKeyPeerIsRefusedWhereACertificateIsExpectedAndTheReverse() throws {
        let ca = try Authority(name: "test CA")
        var a = try Fixtures.connection(local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        var b = try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        b.remoteAuthentication = .certificate(trustAnchors: [ca.certificate])
        var pair = EnginePair(initiator: [a], responder: [b], initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!)
        XCTAssertFalse(established(pair))
        XCTAssertTrue(failure(pair).contains("used a pre-shared key but connection 'c' expects a certificate"), failure(pair))
        a.localAuthentication = .certificate(try ca.issue(address: "192.0.2.1"))
        b.remoteAuthentication = .preSharedKey
        pair = EnginePair(initiator: [a], responder: [b], initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!)
        XCTAssertFalse(established(pair))
        XCTAssertTrue(failure(pair).contains("expects a pre-shared key"), failure(pair))
    }

    func testCredentialsAreReadFromPEMAndAMismatchedKeyIsRefused() throws {
        let ca = try Authority(name: "test CA")
        let issued = try ca.issue(address: "192.0.2.1")
        guard case .p256(let key) = issued.key else { return XCTFail() }
        let pem = try issued.chain[0].serializeAsPEM().pemString
        let read = try CertificateCredential(certificatePEM: pem, privateKeyPEM: key.pemRepresentation)
        XCTAssertEqual(read.chain, issued.chain)
        XCTAssertThrowsError(try CertificateCredential(certificatePEM: pem, privateKeyPEM: P256.Signing.PrivateKey().pemRepresentation)) { error in
            XCTAssertTrue("\(error)".contains("does not belong"), "\(error)")
        }
        XCTAssertThrowsError(try CertificateCredential(certificatePEM: "not pem", privateKeyPEM: key.pemRepresentation))
    }
}

extension CertificateAuthenticationTests {
    /// A certificate signed by `issuerKey` under `issuerName`, for 192.0.2.1 when it is a leaf.
    func certificate(
        subject: String, key: P256.Signing.PrivateKey, issuerName: DistinguishedName, issuerKey: P256.Signing.PrivateKey,
        @ExtensionsBuilder extensions: () throws -> Result<Certificate.Extensions, any Error>
    ) throws -> Certificate {
        try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: Date(timeIntervalSinceNow: -60),
            notValidAfter: Date(timeIntervalSinceNow: 86400), issuer: issuerName,
            subject: try DistinguishedName { CommonName(subject) }, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions(builder: extensions), issuerPrivateKey: .init(issuerKey))
    }

    func testOnlyCertificateAuthoritiesMayIssueWithinTheirPathLength() throws {
        let root = try Authority(name: "root CA")
        let san = SubjectAlternativeNames([.ipAddress(ASN1OctetString(contentBytes: ArraySlice(IPAddress("192.0.2.1")!.bytes)))])
        func attempt(_ chain: [Certificate], key: P256.Signing.PrivateKey) throws -> String {
            let pair = try self.pair(
                initiator: CertificateCredential(chain: chain, key: .p256(key)), responder: try root.issue(address: "192.0.2.2"),
                initiatorTrusts: [root.certificate], responderTrusts: [root.certificate])
            return established(pair) ? "established" : failure(pair)
        }
        // An end-entity certificate of the trusted CA (no cA) signs a certificate for any identity: refused.
        let entityKey = P256.Signing.PrivateKey()
        let leafKey = P256.Signing.PrivateKey()
        let entity = try certificate(subject: "just a host", key: entityKey, issuerName: root.certificate.subject, issuerKey: root.key) {
            Critical(BasicConstraints.notCertificateAuthority)
        }
        let minted = try certificate(subject: "minted", key: leafKey, issuerName: entity.subject, issuerKey: entityKey) { san }
        assertRefused(try attempt([minted, entity], key: leafKey), "Certificate CN=just a host is not marked as a CA")
        // Without basicConstraints at all, the same.
        let bare = try certificate(subject: "bare host", key: entityKey, issuerName: root.certificate.subject, issuerKey: root.key) { san }
        let mintedByBare = try certificate(subject: "minted", key: leafKey, issuerName: bare.subject, issuerKey: entityKey) { san }
        assertRefused(try attempt([mintedByBare, bare], key: leafKey), "Certificate CN=bare host is not marked as a CA")
        // A CA whose keyUsage does not allow certificate signing.
        let signer = try certificate(subject: "signing-only CA", key: entityKey, issuerName: root.certificate.subject, issuerKey: root.key) {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
            Critical(KeyUsage(digitalSignature: true))
        }
        let bySigner = try certificate(subject: "leaf", key: leafKey, issuerName: signer.subject, issuerKey: entityKey) { san }
        assertRefused(try attempt([bySigner, signer], key: leafKey), "keyUsage without keyCertSign")
        // Path length: an intermediate limited to 0 below it, with one more intermediate under it.
        let firstKey = P256.Signing.PrivateKey()
        let secondKey = P256.Signing.PrivateKey()
        let first = try certificate(subject: "first CA", key: firstKey, issuerName: root.certificate.subject, issuerKey: root.key) {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
        }
        let second = try certificate(subject: "second CA", key: secondKey, issuerName: first.subject, issuerKey: firstKey) {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
        }
        let deep = try certificate(subject: "deep leaf", key: leafKey, issuerName: second.subject, issuerKey: secondKey) { san }
        assertRefused(try attempt([deep, second, first], key: leafKey), "CA CN=first CA has maximum path length 0, but chain has 1 subCAs")
        // The same with room for it: accepted.
        let roomy = try certificate(subject: "first CA", key: firstKey, issuerName: root.certificate.subject, issuerKey: root.key) {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 1))
            Critical(KeyUsage(keyCertSign: true))
        }
        XCTAssertEqual(try attempt([deep, second, roomy], key: leafKey), "established")
    }
}

extension CertificateAuthenticationTests {
    func testACAsNameConstraintsBindTheCertificatesBelowIt() throws {
        let root = try Authority(name: "root CA")
        let ip = IPAddress("192.0.2.1")!
        func octets(_ bytes: [UInt8]) -> ASN1OctetString { ASN1OctetString(contentBytes: ArraySlice(bytes)) }
        func attempt(constraints: NameConstraints, extraNames: [GeneralName] = []) throws -> String {
            let caKey = P256.Signing.PrivateKey()
            let leafKey = P256.Signing.PrivateKey()
            let ca = try certificate(subject: "constrained CA", key: caKey, issuerName: root.certificate.subject, issuerKey: root.key) {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(constraints)
            }
            let leaf = try certificate(subject: "host", key: leafKey, issuerName: ca.subject, issuerKey: caKey) {
                SubjectAlternativeNames([.ipAddress(octets(ip.bytes))] + extraNames)
            }
            let pair = try self.pair(
                initiator: CertificateCredential(chain: [leaf, ca], key: .p256(leafKey)), responder: try root.issue(address: "192.0.2.2"),
                initiatorTrusts: [root.certificate], responderTrusts: [root.certificate])
            return established(pair) ? "established" : failure(pair)
        }
        let net24 = octets([192, 0, 2, 0, 255, 255, 255, 0])
        let other24 = octets([198, 51, 100, 0, 255, 255, 255, 0])
        XCTAssertEqual(try attempt(constraints: NameConstraints(permittedIPRanges: [net24])), "established")
        assertRefused(
            try attempt(constraints: NameConstraints(permittedIPRanges: [other24])),
            "IP 192.0.2.1 in CN=host is outside the names CN=constrained CA may vouch for (IP 198.51.100.0/255.255.255.0)")
        assertRefused(
            try attempt(constraints: NameConstraints(excludedIPRanges: [octets([192, 0, 2, 0, 255, 255, 255, 128])])),
            "is excluded by the name constraints of CN=constrained CA")
        // DNS: a permitted domain admits its hosts, not look-alikes; an unconstrained type stays free.
        XCTAssertEqual(
            try attempt(constraints: NameConstraints(permittedDNSDomains: ["example.com"]), extraNames: [.dnsName("vpn.example.com")]),
            "established")
        assertRefused(
            try attempt(constraints: NameConstraints(permittedDNSDomains: ["example.com"]), extraNames: [.dnsName("vpn.badexample.com")]),
            "DNS vpn.badexample.com")
        assertRefused(
            try attempt(constraints: NameConstraints(permittedEmailAddresses: [".example.com"]), extraNames: [.rfc822Name("ops@example.org")]),
            "email ops@example.org")
    }

    func testNameConstraintMatchingFollowsRFC5280() {
        func octets(_ bytes: [UInt8]) -> ASN1OctetString { ASN1OctetString(contentBytes: ArraySlice(bytes)) }
        XCTAssertEqual(NameConstraintsCheck.matches(.dnsName("Host.Example.com"), .dnsName("example.com")), true)
        XCTAssertEqual(NameConstraintsCheck.matches(.dnsName("example.com"), .dnsName(".example.com")), false, "a leading dot: subdomains only")
        XCTAssertEqual(NameConstraintsCheck.matches(.dnsName("notexample.com"), .dnsName("example.com")), false)
        XCTAssertEqual(NameConstraintsCheck.matches(.rfc822Name("a@example.com"), .rfc822Name("example.com")), true)
        XCTAssertEqual(NameConstraintsCheck.matches(.rfc822Name("a@mail.example.com"), .rfc822Name("example.com")), false)
        XCTAssertEqual(NameConstraintsCheck.matches(.rfc822Name("a@mail.example.com"), .rfc822Name(".example.com")), true)
        XCTAssertEqual(NameConstraintsCheck.matches(.rfc822Name("a@example.com"), .rfc822Name("b@example.com")), false)
        let v6 = IPAddress("2001:db8::1")!.bytes
        let v6net = IPAddress("2001:db8::")!.bytes + [UInt8](repeating: 0xff, count: 4) + [UInt8](repeating: 0, count: 12)
        XCTAssertEqual(NameConstraintsCheck.matches(.ipAddress(octets(v6)), .ipAddress(octets(v6net))), true)
        XCTAssertEqual(NameConstraintsCheck.matches(.ipAddress(octets([192, 0, 2, 1])), .ipAddress(octets(v6net))), false, "families differ")
        XCTAssertNil(NameConstraintsCheck.matches(.dnsName("a.example"), .ipAddress(octets([192, 0, 2, 0, 255, 255, 255, 0]))))
    }
}

/// Asserts a refused negotiation whose failure says `fragment`, and shows what it said otherwise.
func assertRefused(_ outcome: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertTrue(outcome.contains(fragment), "expected a refusal saying \"\(fragment)\", got: \(outcome)", file: file, line: line)
}
