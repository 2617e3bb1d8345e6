import Foundation
import X509
import XCTest

@testable import IKEv2

/// OCSP answers made by `openssl ocsp` (Tests/IKEv2Tests/Fixtures/ocsp, scripts/make_ocsp_fixtures.sh)
/// judged through swift-certificates' OCSP policy, with a requester that hands them over instead of HTTP.
final class OCSPStatusCheckTests: XCTestCase {
    /// Answers every query with the same bytes (or fails), remembering what it was asked.
    final class CannedRequester: OCSPRequester, @unchecked Sendable {
        let answer: Result<[UInt8], Error>
        var queries: [(request: [UInt8], uri: String)] = []
        init(_ answer: Result<[UInt8], Error>) { self.answer = answer }
        func query(request: [UInt8], uri: String) async -> OCSPRequesterQueryResult {
            queries.append((request, uri))
            switch answer {
            case .success(let bytes): return .response(bytes)
            case .failure(let error): return .terminalError(error)
            }
        }
    }
    struct Unreachable: Error, CustomStringConvertible { var description = "connection refused" }

    func fixture(_ name: String) throws -> [UInt8] { try FixtureFiles.bytes("ocsp/" + name) }
    func certificate(_ name: String) throws -> Certificate { try FixtureFiles.certificate("ocsp/" + name) }
    func check(_ leaf: String, answer: Result<[UInt8], Error>, at time: Date = Date()) async throws -> (RevocationStatus, CannedRequester) {
        let requester = CannedRequester(answer)
        let status = await OCSPStatusCheck.check(chain: [try certificate(leaf), try certificate("ca")], requester: requester, at: time)
        return (status, requester)
    }

    func testTheNextUpdateOfAnAnswerIsRead() throws {
        // openssl ocsp -ndays 36500: a hundred years after the fixtures were made (2026-11-27).
        let next = try XCTUnwrap(OCSPResponseValidity.nextUpdate(of: try fixture("good-response.der")))
        let year = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: next).year
        XCTAssertEqual(year, 2126)
        XCTAssertNotNil(OCSPResponseValidity.nextUpdate(of: try fixture("revoked-response.der")))
        XCTAssertNil(OCSPResponseValidity.nextUpdate(of: [0x30, 0x03, 0x0a, 0x01, 0x01]), "unsuccessful status, no response bytes")
        XCTAssertNil(OCSPResponseValidity.nextUpdate(of: Array("garbage".utf8)))
        XCTAssertNil(OCSPResponseValidity.nextUpdate(of: []))
    }

    func testTheRespondersOfAChainAreReadFromAuthorityInformationAccess() throws {
        XCTAssertEqual(OCSPStatusCheck.responders(of: try certificate("good")), ["http://ocsp.test/"])
        XCTAssertEqual(RevocationSources.described(ofChain: [try certificate("good"), try certificate("ca")]), ["OCSP http://ocsp.test/"])
        XCTAssertEqual(OCSPStatusCheck.responders(of: try certificate("ca")), [])
    }

    func testAGoodAnswerIsGoodAndTheRequestWentToTheNamedResponder() async throws {
        let (status, requester) = try await check("good", answer: .success(try fixture("good-response.der")))
        XCTAssertEqual(status, .good)
        XCTAssertEqual(requester.queries.map(\.uri), ["http://ocsp.test/"])
        XCTAssertEqual(requester.queries.first?.request.first, 0x30, "a DER OCSPRequest")
    }

    func testARevokedAnswerIsARevocationWithItsReason() async throws {
        let (status, _) = try await check("revoked", answer: .success(try fixture("revoked-response.der")))
        guard case .revoked(let why) = status else { return XCTFail("\(status)") }
        XCTAssertTrue(why.contains("keyCompromise"), why)
    }

    func testAnswersThatProveNothingAreUnavailableNotGoodNorRevoked() async throws {
        // Signed by another key under the CA's name.
        var (status, _) = try await check("good", answer: .success(try fixture("forged-response.der")))
        guard case .unavailable = status else { return XCTFail("forged: \(status)") }
        // About another certificate than the one asked for.
        (status, _) = try await check("revoked", answer: .success(try fixture("good-response.der")))
        guard case .unavailable = status else { return XCTFail("wrong certificate: \(status)") }
        // Past its nextUpdate (a hundred years after the fixtures were made).
        (status, _) = try await check("good", answer: .success(try fixture("good-response.der")), at: Date(timeIntervalSinceNow: 200 * 365 * 86400))
        guard case .unavailable = status else { return XCTFail("stale: \(status)") }
        // Garbage, and no answer at all.
        (status, _) = try await check("good", answer: .success([0x30, 0x03, 0x0a, 0x01, 0x01]))
        guard case .unavailable = status else { return XCTFail("garbage: \(status)") }
        (status, _) = try await check("good", answer: .failure(Unreachable()))
        guard case .unavailable(let why) = status, why.contains("connection refused") else { return XCTFail("unreachable: \(status)") }
    }
}
