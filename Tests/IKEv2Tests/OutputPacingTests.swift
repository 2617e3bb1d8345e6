import XCTest

@testable import IKEEndpoint

/// The endpoint writes its held lines every `interval` at most, never while nothing is held, and sleeps no
/// longer than the held lines may wait. (Times are binary fractions, so that the arithmetic is exact.)
final class OutputPacingTests: XCTestCase {
    func testHeldLinesWaitAtMostTheIntervalAndNothingIsWrittenWhileNothingIsHeld() {
        let pacing = OutputPacing(interval: 0.25, now: 100)
        XCTAssertEqual(pacing.sleep(now: 100, otherwise: 1000), 1000, "nothing held: the loop sleeps as long as it would")
        XCTAssertFalse(pacing.shouldWrite(now: 200), "nothing held: no write, however long since the last")
        pacing.noteHeld()
        XCTAssertEqual(pacing.sleep(now: 200.5, otherwise: 1000), 0, "held past the interval: no sleep")
        XCTAssertTrue(pacing.shouldWrite(now: 200.5))
        XCTAssertFalse(pacing.held)
        pacing.noteHeld()
        XCTAssertEqual(pacing.sleep(now: 200.625, otherwise: 1000), 125, "held 125 ms after a write: sleep the 125 ms left")
        XCTAssertEqual(pacing.sleep(now: 200.625, otherwise: 0), 0, "never longer than the loop would otherwise")
        XCTAssertFalse(pacing.shouldWrite(now: 200.625), "a burst's next lines wait for the interval")
        XCTAssertTrue(pacing.shouldWrite(now: 200.75))
    }
}
