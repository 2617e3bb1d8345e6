import XCTest

@testable import Management

final class AuthenticationThrottleTests: XCTestCase {
    func testASourceIsRefusedAfterTheLimitOfFailuresWithinTheWindow() {
        let throttle = AuthenticationThrottle(limit: 3, window: 60, block: 30)
        XCTAssertFalse(throttle.recordFailure(source: "10.0.0.1", now: 0))
        XCTAssertFalse(throttle.recordFailure(source: "10.0.0.1", now: 1))
        XCTAssertNil(throttle.refusal(source: "10.0.0.1", now: 1))
        XCTAssertTrue(throttle.recordFailure(source: "10.0.0.1", now: 2), "the third failure blocks")
        XCTAssertEqual(throttle.refusal(source: "10.0.0.1", now: 12), 20)
        XCTAssertNil(throttle.refusal(source: "10.0.0.2", now: 12), "other sources are not concerned")
        XCTAssertNil(throttle.refusal(source: "10.0.0.1", now: 32), "the block ends")
    }

    func testFailuresOutsideTheWindowOrBeforeASuccessDoNotCount() {
        let throttle = AuthenticationThrottle(limit: 3, window: 60, block: 30)
        _ = throttle.recordFailure(source: "a", now: 0)
        _ = throttle.recordFailure(source: "a", now: 1)
        XCTAssertFalse(throttle.recordFailure(source: "a", now: 70), "the first two fell out of the window")
        throttle.recordSuccess(source: "a")
        XCTAssertFalse(throttle.recordFailure(source: "a", now: 71))
        XCTAssertFalse(throttle.recordFailure(source: "a", now: 72), "a success forgets the failures before it")
    }

    func testMemoryIsBoundedWhateverTheNumberOfSources() {
        let throttle = AuthenticationThrottle(limit: 3, window: 60, block: 30, capacity: 100)
        for index in 0..<10_000 { _ = throttle.recordFailure(source: "10.\(index / 65536).\(index / 256 % 256).\(index % 256)", now: 0) }
        XCTAssertEqual(throttle.remembered, 100)
    }
}
