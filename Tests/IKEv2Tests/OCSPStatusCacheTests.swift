import Foundation
import IKEServices
import X509
import XCTest

@testable import IKEv2

/// The OCSP status cache with answers made by `openssl ocsp` (Tests/IKEv2Tests/Fixtures/ocsp): a signed
/// answer is kept until its nextUpdate, a missing one is asked again.
final class OCSPStatusCacheTests: XCTestCase {
    /// Counts queries and answers each with the same bytes or failure.
    final class CountingTransport: @unchecked Sendable {
        let answer: Result<[UInt8], Error>
        private let lock = NSLock()
        private var count = 0
        var queries: Int { lock.withLock { count } }
        init(_ answer: Result<[UInt8], Error>) { self.answer = answer }
        var transport: OCSPTransport {
            { [self] _, _ in
                lock.withLock { count += 1 }
                return answer
            }
        }
    }
    struct Unreachable: Error {}

    func fixture(_ name: String) throws -> [UInt8] { try FixtureFiles.bytes("ocsp/" + name) }
    func chain(_ leaf: String) throws -> [Certificate] { try [leaf, "ca"].map { try FixtureFiles.certificate("ocsp/" + $0) } }

    func testASignedAnswerIsKeptUntilItsNextUpdateAndAtMostTheLongestTime() async throws {
        let cache = OCSPStatusCache(longest: 3600)
        let good = CountingTransport(.success(try fixture("good-response.der")))
        let now = Date()
        for offset in [0.0, 60, 3000] {
            let status = await cache.check(chain: try chain("good"), transport: good.transport, at: now.addingTimeInterval(offset))
            XCTAssertEqual(status, .good)
        }
        XCTAssertEqual(good.queries, 1, "asked once, then kept")
        // Past the cache's longest keeping time (the answer itself is good for a century), asked again.
        _ = await cache.check(chain: try chain("good"), transport: good.transport, at: now.addingTimeInterval(4000))
        XCTAssertEqual(good.queries, 2)
        let (hits, queries) = (await cache.hits, await cache.queries)
        XCTAssertEqual([hits, queries], [2, 2])
        // A revocation is kept too; it is about another chain, so it is asked for.
        let revoked = CountingTransport(.success(try fixture("revoked-response.der")))
        for _ in 0..<2 {
            guard case .revoked = await cache.check(chain: try chain("revoked"), transport: revoked.transport, at: now) else { return XCTFail() }
        }
        XCTAssertEqual(revoked.queries, 1)
    }

    func testNoAnswerIsNotKept() async throws {
        let cache = OCSPStatusCache()
        let down = CountingTransport(.failure(Unreachable()))
        for _ in 0..<2 {
            guard case .unavailable = await cache.check(chain: try chain("good"), transport: down.transport, at: Date()) else { return XCTFail() }
        }
        XCTAssertEqual(down.queries, 2, "asked every time while there is no answer")
        let forged = CountingTransport(.success(try fixture("forged-response.der")))
        for _ in 0..<2 { _ = await cache.check(chain: try chain("good"), transport: forged.transport, at: Date()) }
        XCTAssertEqual(forged.queries, 2, "an answer that proves nothing is not kept")
    }
}
