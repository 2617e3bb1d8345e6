import Foundation
import X509
import XCTest

@testable import IKEv2

/// CRL distribution points read from a certificate openssl made, and certificates judged against CRLs as
/// if fetched from them (Tests/IKEv2Tests/Fixtures/crl).
final class CRLDistributionPointTests: XCTestCase {
    func fixture(_ name: String) throws -> [UInt8] { try FixtureFiles.bytes("crl/\(name).pem") }
    func certificate(_ name: String) throws -> Certificate { try FixtureFiles.certificate("crl/" + name) }
    let uri = "http://crl.test/ca.crl"

    func testTheURIsOfEveryFullNameAreRead() throws {
        // openssl wrote three distribution points: two URIs and a mail address (not a place to fetch from).
        let pointed = try certificate("distribution-points")
        XCTAssertEqual(CRLDistributionPoints.uris(of: pointed), ["http://crl.test/ca.crl", "ldap://ldap.test/cn=ca"])
        XCTAssertEqual(CRLDistributionPoints.uris(of: try certificate("good")), [])
        let sources = try XCTUnwrap(RevocationSources.online(of: pointed))
        XCTAssertEqual(sources.kind, .crl)
        XCTAssertEqual(RevocationSources.described(ofChain: [pointed, pointed]), ["CRL http://crl.test/ca.crl", "CRL ldap://ldap.test/cn=ca"])
    }

    func testAFetchedCRLRevokesListsNothingElseAndProvesNothingWhenForgedOrStale() throws {
        let ca = try certificate("ca")
        let revoked = try certificate("revoked")
        let good = try certificate("good")
        let crl = try CertificateRevocationList.lists(pemOrDER: try fixture("crl"))
        let forged = try CertificateRevocationList.lists(pemOrDER: try fixture("forged-crl"))
        let now = Date()
        guard case .revoked(let why) = CRLStatusCheck.status(of: revoked, issuer: ca, lists: crl, from: uri, at: now) else {
            return XCTFail("a listed serial number must be revoked")
        }
        XCTAssertTrue(why.contains("is listed in the CRL at http://crl.test/ca.crl"), why)
        let printed = try XCTUnwrap(why.split(separator: " ").dropFirst().first)
        XCTAssertTrue(printed.split(separator: ":").allSatisfy { $0.count == 2 }, "openssl's form, two digits an octet: \(printed)")
        XCTAssertEqual(CRLStatusCheck.status(of: good, issuer: ca, lists: crl, from: uri, at: now), .good)
        // Another key under the CA's name lists both: it counts for neither.
        guard case .unavailable = CRLStatusCheck.status(of: good, issuer: ca, lists: forged, from: uri, at: now),
            case .unavailable = CRLStatusCheck.status(of: revoked, issuer: ca, lists: forged, from: uri, at: now)
        else {
            return XCTFail("a CRL the issuer did not sign proves nothing")
        }
        // Past nextUpdate (2126) a CRL no longer says good; a listed certificate stays revoked.
        let later = Date(timeIntervalSinceNow: 200 * 365 * 86400)
        guard case .unavailable(let stale) = CRLStatusCheck.status(of: good, issuer: ca, lists: crl, from: uri, at: later) else {
            return XCTFail("a stale CRL proves nothing good")
        }
        XCTAssertTrue(stale.contains("out of date"), stale)
        guard case .revoked = CRLStatusCheck.status(of: revoked, issuer: ca, lists: crl, from: uri, at: later) else { return XCTFail() }
        guard case .unavailable = CRLStatusCheck.status(of: good, issuer: ca, lists: [], from: uri, at: now) else { return XCTFail() }
    }

    func testStatusesOfSeveralCertificatesCombine() {
        XCTAssertEqual(RevocationStatus.combined([]), .good)
        XCTAssertEqual(RevocationStatus.combined([.good, .good]), .good)
        XCTAssertEqual(RevocationStatus.combined([.good, .unavailable("x"), .revoked("y")]), .revoked("y"))
        XCTAssertEqual(RevocationStatus.combined([.good, .unavailable("x")]), .unavailable("x"))
    }
}
