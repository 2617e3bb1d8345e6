import IKEv2
import XCTest

@testable import Proxy

/// The bookkeeping of negotiations in terminals' names, without an engine: one per pair, a pause after a
/// failure, the per-terminal and overall limits, and the net under negotiations that never end.
final class NegotiationsInFlightTests: XCTestCase {
    let a = IPAddress("10.0.0.10")!, b = IPAddress("10.0.0.11")!
    func pair(_ terminal: IPAddress, _ host: Int) -> TerminalPeer { TerminalPeer(terminal: terminal, peer: IPAddress("198.51.100.\(host)")!) }

    func makeNegotiations(perTerminal: Int = 2, inAll: Int = 3, retry: Double = 10) -> NegotiationsInFlight {
        var settings = ProxySettings()
        settings.maxNegotiationsPerTerminal = perTerminal
        settings.maxNegotiations = inAll
        settings.retryAfterFailure = retry
        return NegotiationsInFlight(settings: settings)
    }

    func testAFailureHoldsStartRequestsForTheRetryTimeAndASuccessClearsIt() {
        var negotiations = makeNegotiations()
        negotiations.begin(pair(a, 1), now: 0)
        XCTAssertTrue(negotiations.isUnderWay(pair(a, 1)))
        XCTAssertTrue(negotiations.failed(pair(a, 1), reason: "NO_PROPOSAL_CHOSEN", now: 1), "it was under way")
        XCTAssertFalse(negotiations.isUnderWay(pair(a, 1)))
        XCTAssertTrue(negotiations.isHeldAfterFailure(pair(a, 1), now: 10.9))
        XCTAssertFalse(negotiations.isHeldAfterFailure(pair(a, 1), now: 11))
        XCTAssertFalse(negotiations.failed(pair(a, 2), reason: "late CHILD failure", now: 2), "none was under way for that pair")
        XCTAssertNil(negotiations.succeeded(pair(a, 2), now: 2.5), "none the proxy started: no time to report")
        XCTAssertFalse(negotiations.isHeldAfterFailure(pair(a, 2), now: 3), "a CHILD SA made clears the failure")
        negotiations.begin(pair(a, 3), now: 4)
        XCTAssertEqual(negotiations.succeeded(pair(a, 3), now: 4.25), 0.25, "how long the one the proxy started took")
    }

    func testLimitsPerTerminalAndInAllAreSaidInWords() {
        var negotiations = makeNegotiations()
        let owner: (IPAddress) -> UInt64? = { $0 == self.a ? 1 : 2 }
        negotiations.begin(pair(a, 1), now: 0)
        XCTAssertNil(negotiations.limitReached(terminalID: 1, of: owner))
        negotiations.begin(pair(a, 2), now: 0)
        let perTerminal = negotiations.limitReached(terminalID: 1, of: owner)
        XCTAssertEqual(perTerminal, "2 negotiations are under way in its name already (max_negotiations_per_terminal 2)")
        XCTAssertNil(negotiations.limitReached(terminalID: 2, of: owner), "another terminal is not held back")
        negotiations.begin(pair(b, 1), now: 0)
        XCTAssertEqual(negotiations.limitReached(terminalID: 2, of: owner), "3 negotiations are under way already (max_negotiations 3)")
        negotiations.cancel(terminals: [a])
        XCTAssertNil(negotiations.limitReached(terminalID: 1, of: owner), "a terminal no longer acted for frees its share")
    }

    func testARefusalIsLoggedAtMostEveryTenSecondsPerTerminal() {
        var negotiations = makeNegotiations()
        XCTAssertTrue(negotiations.shouldLogLimit(terminalID: 1, now: 0))
        XCTAssertFalse(negotiations.shouldLogLimit(terminalID: 1, now: 9.9))
        XCTAssertTrue(negotiations.shouldLogLimit(terminalID: 2, now: 9.9))
        XCTAssertTrue(negotiations.shouldLogLimit(terminalID: 1, now: 10))
    }

    func testNegotiationsThatNeverEndAreAbandonedOldestFirst() {
        var negotiations = makeNegotiations(inAll: 10)
        negotiations.begin(pair(a, 2), now: 5)
        negotiations.begin(pair(a, 1), now: 1)
        negotiations.begin(pair(b, 1), now: 50)
        let abandoned = negotiations.expire(now: 60, abandonAfter: 30)
        XCTAssertEqual(abandoned.map(\.pair), [pair(a, 1), pair(a, 2)])
        XCTAssertTrue(negotiations.isUnderWay(pair(b, 1)))
        XCTAssertFalse(negotiations.isEmpty)
    }
}
