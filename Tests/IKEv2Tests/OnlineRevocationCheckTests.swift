import Foundation
import X509
import XCTest

@testable import IKEv2

/// The plan of one chain's online check, with the asking faked: OCSP where a certificate names a
/// responder, CRLs where it names only a distribution point, and CRLs after OCSP gave no answer.
final class OnlineRevocationCheckTests: XCTestCase {
    func certificate(_ path: String) throws -> Certificate { try FixtureFiles.certificate(path) }

    /// Runs the plan with canned answers, recording what was asked.
    func run(_ chain: [Certificate], ocsp: RevocationStatus, crl: RevocationStatus) async -> (
        RevocationStatus, String?, ocspAsked: Int, crlAsked: [[String]]
    ) {
        final class Record: @unchecked Sendable {
            var ocsp = 0
            var crl: [[String]] = []
        }
        let record = Record()
        let (status, note) = await OnlineRevocationCheck.run(
            chain: chain,
            ocsp: { _ in
                record.ocsp += 1
                return ocsp
            },
            crl: { _, _, uris in
                record.crl.append(uris)
                return crl
            })
        return (status, note, record.ocsp, record.crl)
    }

    func testOCSPDecidesWhenItAnswers() async throws {
        let ocspOnly = [try certificate("ocsp/good"), try certificate("ocsp/ca")]
        var result = await run(ocspOnly, ocsp: .good, crl: .revoked("not asked"))
        XCTAssertEqual(result.0, .good)
        XCTAssertEqual(result.ocspAsked, 1)
        XCTAssertEqual(result.crlAsked, [])
        let both = try certificate("crl/ocsp-and-distribution-point")
        result = await run([both, both], ocsp: .revoked("revoked through OCSP"), crl: .good)
        XCTAssertEqual(result.0, .revoked("revoked through OCSP"), "an OCSP answer is not second-guessed by the CRL")
        XCTAssertEqual(result.crlAsked, [])
        XCTAssertNil(result.1)
    }

    func testTheCRLDecidesWhenOCSPGivesNothingAndTheCertificateNamesOne() async throws {
        let both = try certificate("crl/ocsp-and-distribution-point")
        var result = await run([both, both], ocsp: .unavailable("responder unreachable"), crl: .good)
        XCTAssertEqual(result.0, .good)
        XCTAssertEqual(result.crlAsked, [["http://crl.test/ca.crl"]])
        XCTAssertEqual(result.1, "no OCSP answer (responder unreachable); judged by the CRL the certificate names")
        result = await run([both, both], ocsp: .unavailable("responder unreachable"), crl: .revoked("listed"))
        XCTAssertEqual(result.0, .revoked("listed"))
        // Without a distribution point there is nothing to fall back to.
        let ocspOnly = [try certificate("ocsp/good"), try certificate("ocsp/ca")]
        result = await run(ocspOnly, ocsp: .unavailable("responder unreachable"), crl: .good)
        XCTAssertEqual(result.0, .unavailable("responder unreachable"))
        XCTAssertEqual(result.crlAsked, [])
    }

    func testACertificateNamingOnlyADistributionPointIsJudgedByItsCRL() async throws {
        let pointed = try certificate("crl/distribution-points")
        let result = await run([pointed, pointed], ocsp: .revoked("not asked"), crl: .good)
        XCTAssertEqual(result.0, .good)
        XCTAssertEqual(result.ocspAsked, 0)
        XCTAssertEqual(result.crlAsked, [["http://crl.test/ca.crl", "ldap://ldap.test/cn=ca"]])
    }

    func testTheSourcesOfACertificateNamingBothAreListedOCSPFirst() throws {
        let both = try certificate("crl/ocsp-and-distribution-point")
        XCTAssertEqual(RevocationSources.described(ofChain: [both, both]), ["OCSP http://ocsp.test/", "CRL http://crl.test/ca.crl"])
        XCTAssertEqual(RevocationSources.online(of: both)?.kind, .ocsp)
    }
}
