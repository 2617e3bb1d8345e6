import Foundation
import X509
import XCTest

@testable import IKEv2

/// CRLs made by openssl (Tests/IKEv2Tests/Fixtures/crl): parsed, their signature checked against the CA,
/// and a revoked certificate refused while an unrevoked one of the same CA passes.
final class RevocationTests: XCTestCase {
    func fixture(_ name: String) throws -> [UInt8] { try FixtureFiles.bytes("crl/\(name).pem") }
    func certificate(_ name: String) throws -> Certificate { try FixtureFiles.certificate("crl/" + name) }

    func testAnOpenSSLCRLIsReadAndItsSignatureChecked() throws {
        let ca = try certificate("ca")
        let revoked = try certificate("revoked")
        let good = try certificate("good")
        let lists = try CertificateRevocationList.lists(pemOrDER: try fixture("crl"))
        XCTAssertEqual(lists.count, 1)
        let crl = lists[0]
        XCTAssertEqual(crl.issuer, ca.subject)
        XCTAssertTrue(crl.isSigned(by: ca))
        XCTAssertTrue(crl.revokedSerialNumbers.contains(revoked.serialNumber))
        XCTAssertFalse(crl.revokedSerialNumbers.contains(good.serialNumber))
        XCTAssertNotNil(crl.nextUpdate)
        XCTAssertLessThan(crl.thisUpdate, try XCTUnwrap(crl.nextUpdate))
        // Same CA name, another key: its CRL does not count.
        let forged = try XCTUnwrap(CertificateRevocationList.lists(pemOrDER: try fixture("forged-crl")).first)
        XCTAssertEqual(forged.issuer, ca.subject)
        XCTAssertFalse(forged.isSigned(by: ca))
        XCTAssertThrowsError(try CertificateRevocationList(derEncoded: [0x30, 0x03, 0x02, 0x01, 0x01]))
        XCTAssertThrowsError(try CertificateRevocationList.lists(pemOrDER: Array("not a CRL".utf8)))
    }

    func testACRLSignedWithEd25519IsCheckedAndRevokes() throws {
        let ca = try certificate("ed25519-ca")
        let revoked = try certificate("ed25519-revoked")
        let crl = try XCTUnwrap(CertificateRevocationList.lists(pemOrDER: try fixture("ed25519-crl")).first)
        XCTAssertEqual(crl.signatureAlgorithm, .ed25519)
        XCTAssertTrue(crl.isSigned(by: ca))
        // The ECDSA fixture CA has another key: the Ed25519 CRL is not its.
        XCTAssertFalse(crl.isSigned(by: try certificate("ca")))
        guard
            case .failure(let failure) = CertificatePath.validate(
                leaf: revoked, intermediates: [], anchors: [ca], revocationLists: [crl],
                now: Date())
        else { return XCTFail("a revoked certificate chained") }
        XCTAssertTrue(failure.description.contains("is revoked by the CRL of CN=Ed25519 fixture CA"), failure.description)
        // Without the CRL the Ed25519-signed certificate chains to its Ed25519 CA.
        guard case .success = CertificatePath.validate(leaf: revoked, intermediates: [], anchors: [ca], now: Date()) else {
            return XCTFail("the Ed25519 certificate did not chain")
        }
    }

    func testARevokedCertificateDoesNotChainAndAGoodOneDoes() throws {
        let ca = try certificate("ca")
        let revoked = try certificate("revoked")
        let good = try certificate("good")
        let crl = try CertificateRevocationList.lists(pemOrDER: try fixture("crl"))
        let forged = try CertificateRevocationList.lists(pemOrDER: try fixture("forged-crl"))
        let now = Date()
        switch CertificatePath.validate(leaf: revoked, intermediates: [], anchors: [ca], revocationLists: crl, now: now) {
        case .success: XCTFail("a revoked certificate must not chain")
        case .failure(let failure): XCTAssertTrue(failure.description.contains("is revoked by the CRL of"), failure.description)
        }
        if case .failure(let failure) = CertificatePath.validate(leaf: good, intermediates: [], anchors: [ca], revocationLists: crl, now: now) {
            XCTFail("an unrevoked certificate chains: \(failure)")
        }
        // Without the CRL, or with one the CA did not sign, the revoked certificate is not known as such.
        if case .failure(let failure) = CertificatePath.validate(leaf: revoked, intermediates: [], anchors: [ca], revocationLists: forged, now: now) {
            XCTFail("a CRL the CA did not sign must not count: \(failure)")
        }
    }
}
