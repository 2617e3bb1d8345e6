import Crypto
import Foundation
import SwiftASN1
import X509
import XCTest

@testable import IKEv2

/// Path validation by swift-certificates' `Verifier` with the IKE policies (`CertificatePath`): every
/// candidate issuer tried, unknown critical extensions refused by name, the name-constraint types the
/// library leaves out judged, and the identity checked as a policy.
final class CertificatePathTests: XCTestCase {
    let now = Date()
    let hostAddress = IPAddress("192.0.2.1")!

    /// A certificate signed by `issuerKey`; validity `days` around now (negative end: expired).
    func make(
        _ subject: String, key: P256.Signing.PrivateKey, issuer: String, issuerKey: P256.Signing.PrivateKey,
        from start: TimeInterval = -3600, to end: TimeInterval = 86400,
        @ExtensionsBuilder extensions: () throws -> Result<Certificate.Extensions, any Error>
    ) throws -> Certificate {
        try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: now.addingTimeInterval(start),
            notValidAfter: now.addingTimeInterval(end), issuer: try DistinguishedName { CommonName(issuer) },
            subject: try DistinguishedName { CommonName(subject) }, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions(builder: extensions), issuerPrivateKey: .init(issuerKey))
    }

    func ca(
        _ name: String, key: P256.Signing.PrivateKey, issuer: String? = nil, issuerKey: P256.Signing.PrivateKey? = nil, to end: TimeInterval = 86400
    )
        throws -> Certificate
    {
        try make(name, key: key, issuer: issuer ?? name, issuerKey: issuerKey ?? key, to: end) {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
        }
    }

    var hostNames: SubjectAlternativeNames { SubjectAlternativeNames([.ipAddress(ASN1OctetString(contentBytes: ArraySlice(hostAddress.bytes)))]) }
    var hostIdentity: IdentificationPayload { Identity(address: hostAddress).payload }

    func validate(_ leaf: Certificate, _ intermediates: [Certificate], anchors: [Certificate], identity: IdentificationPayload? = nil)
        -> Result<[Certificate], AuthenticationFailure>
    {
        CertificatePath.validate(leaf: leaf, intermediates: intermediates, anchors: anchors, identity: identity ?? hostIdentity, now: now)
    }

    func reason(_ result: Result<[Certificate], AuthenticationFailure>) -> String {
        if case .failure(let failure) = result { return failure.description }
        return "accepted"
    }

    /// A private extension marked critical: nothing here enforces it, so RFC 5280 section 4.2 refuses.
    static let privateOID: ASN1ObjectIdentifier = [1, 3, 6, 1, 4, 1, 55555, 1]
    var unknownCritical: Certificate.Extension { Certificate.Extension(oid: Self.privateOID, critical: true, value: [0x05, 0x00]) }

    func testAnUnknownCriticalExtensionRefusesTheChainAndIsNamed() throws {
        let rootKey = P256.Signing.PrivateKey()
        let root = try ca("root", key: rootKey)
        let leafKey = P256.Signing.PrivateKey()
        let plain = try make("host", key: leafKey, issuer: "root", issuerKey: rootKey) { hostNames }
        XCTAssertEqual(reason(validate(plain, [], anchors: [root])), "accepted")
        // In the leaf.
        let marked = try make("host", key: leafKey, issuer: "root", issuerKey: rootKey) {
            hostNames
            unknownCritical
        }
        let leafReason = reason(validate(marked, [], anchors: [root]))
        XCTAssertTrue(leafReason.contains("CN=host carries the critical extension 1.3.6.1.4.1.55555.1"), leafReason)
        // The same extension not critical is ignored, as RFC 5280 allows.
        let harmless = try make("host", key: leafKey, issuer: "root", issuerKey: rootKey) {
            hostNames
            Certificate.Extension(oid: Self.privateOID, critical: false, value: [0x05, 0x00])
        }
        XCTAssertEqual(reason(validate(harmless, [], anchors: [root])), "accepted")
        // In an intermediate.
        let midKey = P256.Signing.PrivateKey()
        let mid = try make("mid", key: midKey, issuer: "root", issuerKey: rootKey) {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
            unknownCritical
        }
        let below = try make("host", key: leafKey, issuer: "mid", issuerKey: midKey) { hostNames }
        let midReason = reason(validate(below, [mid], anchors: [root]))
        XCTAssertTrue(midReason.contains("CN=mid carries the critical extension 1.3.6.1.4.1.55555.1"), midReason)
        // A critical subjectAltName is enforced (the identity policy reads it): accepted.
        let criticalNames = try make("host", key: leafKey, issuer: "root", issuerKey: rootKey) { Critical(hostNames) }
        XCTAssertEqual(reason(validate(criticalNames, [], anchors: [root])), "accepted")
    }

    func testEveryCandidateIssuerIsTried() throws {
        // A cross-signed intermediate: "mid" exists twice, under an expired old root and under the trusted new one.
        let oldRootKey = P256.Signing.PrivateKey()
        let newRootKey = P256.Signing.PrivateKey()
        let oldRoot = try ca("old root", key: oldRootKey, to: -60)
        let newRoot = try ca("new root", key: newRootKey)
        let midKey = P256.Signing.PrivateKey()
        let midByOld = try ca("mid", key: midKey, issuer: "old root", issuerKey: oldRootKey)
        let midByNew = try ca("mid", key: midKey, issuer: "new root", issuerKey: newRootKey)
        let leafKey = P256.Signing.PrivateKey()
        let leaf = try make("host", key: leafKey, issuer: "mid", issuerKey: midKey) { hostNames }
        // Both anchors trusted, the expired path offered first: the good one is still found.
        guard case .success(let path) = validate(leaf, [midByOld, midByNew], anchors: [oldRoot, newRoot]) else {
            return XCTFail(reason(validate(leaf, [midByOld, midByNew], anchors: [oldRoot, newRoot])))
        }
        XCTAssertEqual(path.last, newRoot)
        // Only the expired path: refused, saying why.
        let expired = reason(validate(leaf, [midByOld], anchors: [oldRoot]))
        XCTAssertTrue(expired.contains("CN=old root has expired"), expired)

        // A renewed CA: two anchors with the same name and different keys; the leaf is signed by the second.
        let firstKey = P256.Signing.PrivateKey()
        let secondKey = P256.Signing.PrivateKey()
        let first = try ca("site CA", key: firstKey)
        let second = try ca("site CA", key: secondKey)
        let renewedLeaf = try make("host", key: leafKey, issuer: "site CA", issuerKey: secondKey) { hostNames }
        guard case .success(let renewedPath) = validate(renewedLeaf, [], anchors: [first, second]) else {
            return XCTFail(reason(validate(renewedLeaf, [], anchors: [first, second])))
        }
        XCTAssertEqual(renewedPath.last, second)
        // Signed by a key no anchor has: refused.
        let strayKey = P256.Signing.PrivateKey()
        let stray = try make("host", key: leafKey, issuer: "site CA", issuerKey: strayKey) { hostNames }
        XCTAssertTrue(reason(validate(stray, [], anchors: [first, second])).contains("does not chain to a trusted CA"))
    }

    func testDirectoryNameAndEmailConstraintsAreJudged() throws {
        // swift-certificates refuses every path with these subtree types; RFC 5280 has them judged.
        let rootKey = P256.Signing.PrivateKey()
        let root = try ca("root", key: rootKey)
        let caKey = P256.Signing.PrivateKey()
        let leafKey = P256.Signing.PrivateKey()
        func attempt(_ constraints: NameConstraints, leafName: String = "host", mail: String? = nil) throws -> String {
            let constrained = try make("constrained", key: caKey, issuer: "root", issuerKey: rootKey) {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(constraints)
            }
            let leaf = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(leafKey.publicKey), notValidBefore: now.addingTimeInterval(-60),
                notValidAfter: now.addingTimeInterval(3600), issuer: constrained.subject,
                subject: try DistinguishedName {
                    OrganizationName("Site")
                    CommonName(leafName)
                }, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    SubjectAlternativeNames(
                        [.ipAddress(ASN1OctetString(contentBytes: ArraySlice(hostAddress.bytes)))] + (mail.map { [.rfc822Name($0)] } ?? []))
                }, issuerPrivateKey: .init(caKey))
            return reason(validate(leaf, [constrained], anchors: [root]))
        }
        let site = try DistinguishedName { OrganizationName("Site") }
        let other = try DistinguishedName { OrganizationName("Elsewhere") }
        XCTAssertEqual(try attempt(NameConstraints(permittedSubtrees: [.directoryName(site)])), "accepted")
        assertRefused(try attempt(NameConstraints(permittedSubtrees: [.directoryName(other)])), "is outside the names CN=constrained may vouch for")
        assertRefused(try attempt(NameConstraints(excludedSubtrees: [.directoryName(site)])), "is excluded by the name constraints of CN=constrained")
        XCTAssertEqual(try attempt(NameConstraints(permittedEmailAddresses: ["example.com"]), mail: "ops@example.com"), "accepted")
        assertRefused(try attempt(NameConstraints(permittedEmailAddresses: ["example.com"]), mail: "ops@example.org"), "email ops@example.org")
        // Mixed with an IP subtree, both judged.
        let net = ASN1OctetString(contentBytes: [198, 51, 100, 0, 255, 255, 255, 0])
        assertRefused(
            try attempt(NameConstraints(permittedSubtrees: [.directoryName(site), .ipAddress(net)])), "IP 192.0.2.1 in CN=host,O=Site is outside")
    }

    func testTheIdentityIsAPolicyOfThePath() throws {
        let rootKey = P256.Signing.PrivateKey()
        let root = try ca("root", key: rootKey)
        let leaf = try make("host", key: P256.Signing.PrivateKey(), issuer: "root", issuerKey: rootKey) { hostNames }
        let other = Identity(address: IPAddress("192.0.2.9")!).payload
        assertRefused(reason(validate(leaf, [], anchors: [root], identity: other)), "does not name the peer's identity 192.0.2.9")
    }

    func testValidationRunsToTheEndFromAnAsyncContext() async throws {
        // The engine calls the verifier synchronously; from inside a task (as the daemon's runners do) it must not wait on itself.
        let rootKey = P256.Signing.PrivateKey()
        let root = try ca("root", key: rootKey)
        let leaf = try make("host", key: P256.Signing.PrivateKey(), issuer: "root", issuerKey: rootKey) { hostNames }
        let results = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    if case .success = CertificatePath.validate(leaf: leaf, intermediates: [], anchors: [root], now: Date()) { return true }
                    return false
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        XCTAssertEqual(results, Array(repeating: true, count: 16))
    }
}
