import XCTest

@testable import IKEEndpoint

/// A burst of initiations is started a batch per turn with at most `window` in flight; answers free places,
/// an initiation that sent nothing holds none, and one never answered frees its place after the expiry.
final class InitiationQueueTests: XCTestCase {
    func testABurstIsPacedByTheWindow() {
        var queue = InitiationQueue(window: 64, perTurn: 32, expiry: 63)
        queue.add((0..<200).map { "c\($0)" })
        var started: [String] = []
        queue.startTurn(now: 0) {
            started.append($0)
            return true
        }
        XCTAssertEqual(started.count, 32, "a batch per turn")
        queue.startTurn(now: 0) {
            started.append($0)
            return true
        }
        XCTAssertEqual(started.count, 64)
        XCTAssertFalse(queue.ready, "the window is full")
        queue.startTurn(now: 0) {
            started.append($0)
            return true
        }
        XCTAssertEqual(started.count, 64, "nothing starts while 64 are in flight")
        for name in started.prefix(10) { queue.answered(name) }
        XCTAssertTrue(queue.ready)
        queue.startTurn(now: 1) {
            started.append($0)
            return true
        }
        XCTAssertEqual(started.count, 74, "ten answers, ten places")
        XCTAssertEqual(started, (0..<74).map { "c\($0)" }, "in the order asked")
    }

    func testAnInitiationThatSentNothingHoldsNoPlaceAndAnUnansweredOneExpires() {
        var queue = InitiationQueue(window: 2, perTurn: 32, expiry: 10)
        queue.add(["unknown", "a", "b", "c"])
        var started: [String] = []
        queue.startTurn(now: 0) {
            started.append($0)
            return $0 != "unknown"
        }
        XCTAssertEqual(started, ["unknown", "a", "b"])
        XCTAssertEqual(queue.inFlight.count, 2)
        queue.startTurn(now: 9.9) {
            started.append($0)
            return true
        }
        XCTAssertEqual(started.count, 3, "a and b still hold their places")
        queue.startTurn(now: 10) {
            started.append($0)
            return true
        }
        XCTAssertEqual(started, ["unknown", "a", "b", "c"], "never answered: their places freed after the expiry")
    }
}
