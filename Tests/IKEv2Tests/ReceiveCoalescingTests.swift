import XCTest

@testable import IKEEndpoint

/// When the endpoint holds its sockets for a coalescing window: only while messages trickle in one at a time,
/// never for a lone negotiation, a burst or a full batch, and no longer once holds stop gathering anything.
final class ReceiveCoalescingTests: XCTestCase {
    /// Turns of one datagram each, `gap` seconds apart, from `start`; returns the time after the last.
    @discardableResult
    func trickle(_ coalescing: inout ReceiveCoalescing, turns: Int, gap: Double, from start: Double) -> Double {
        var now = start
        for _ in 0..<turns {
            if coalescing.holdUntil != nil, !coalescing.reads(now: now) { now = coalescing.holdUntil! }
            XCTAssertTrue(coalescing.reads(now: now))
            coalescing.read(1, batchFull: false, now: now)
            now += gap
        }
        return now
    }

    func testALoneNegotiationIsNeverHeld() {
        var coalescing = ReceiveCoalescing(window: 0.01)
        coalescing.read(1, batchFull: false, now: 100)
        XCTAssertNil(coalescing.holdUntil, "no turn before it")
        coalescing.read(1, batchFull: false, now: 100.001)
        XCTAssertNil(coalescing.holdUntil, "a run of sparse turns comes first")
        XCTAssertTrue(coalescing.reads(now: 100.002))
    }

    func testMessagesArrivingOneAtATimeAreHeldForTheWindowAtMost() {
        var coalescing = ReceiveCoalescing(window: 0.01)
        let now = trickle(&coalescing, turns: 12, gap: 0.001, from: 0)
        let last = now - 0.001
        guard let until = coalescing.holdUntil else { return XCTFail("steady sparse turns are held") }
        XCTAssertEqual(until, last + 0.01, accuracy: 1e-9)
        XCTAssertFalse(coalescing.reads(now: last + 0.005))
        // Rounded up to whole milliseconds, so as not to wake before the hold ends.
        XCTAssertTrue((5...6).contains(coalescing.sleep(now: last + 0.005, otherwise: 100)))
        XCTAssertEqual(coalescing.sleep(now: last + 0.005, otherwise: 2), 2, "a shorter sleep asked for otherwise stays")
        XCTAssertTrue(coalescing.reads(now: until))
        XCTAssertNil(coalescing.holdUntil)
        // Holds that gather several follow one another, eight in a row at most (this first one came after a
        // sparse turn); then a turn is not held.
        var time = until
        var continued = 0
        coalescing.read(9, batchFull: false, now: time)
        while let next = coalescing.holdUntil {
            continued += 1
            XCTAssertLessThanOrEqual(continued, 7)
            time = next
            XCTAssertTrue(coalescing.reads(now: time))
            coalescing.read(9, batchFull: false, now: time)
        }
        XCTAssertEqual(continued, 7)
        // The next sparse turn, right after, is held again.
        coalescing.read(1, batchFull: false, now: time + 0.001)
        XCTAssertNotNil(coalescing.holdUntil)
    }

    func testBurstsFullBatchesAndSlowTrafficAreNeverHeld() {
        var bursts = ReceiveCoalescing(window: 0.01)
        for k in 0..<50 { bursts.read(20, batchFull: false, now: Double(k) * 0.001) }
        bursts.read(1, batchFull: false, now: 0.051)
        XCTAssertNil(bursts.holdUntil, "turns not held read many on average")

        // The same steady sparse turn, once with its batch full and once not.
        for batchFull in [true, false] {
            var coalescing = ReceiveCoalescing(window: 0.01)
            // Eleven turns: the tenth is held, and no run of poor holds has turned holding off.
            var now = trickle(&coalescing, turns: 11, gap: 0.001, from: 0)
            if let until = coalescing.holdUntil {
                XCTAssertTrue(coalescing.reads(now: until))
                coalescing.read(5, batchFull: false, now: until)
                now = until + 0.001
            }
            coalescing.read(2, batchFull: batchFull, now: now)
            XCTAssertEqual(coalescing.holdUntil == nil, batchFull, "more may wait behind a full batch: read on at once")
        }

        var slow = ReceiveCoalescing(window: 0.01)
        trickle(&slow, turns: 30, gap: 0.05, from: 0)
        XCTAssertEqual(slow.heldTurns, 0, "turns further apart than the window")

        var off = ReceiveCoalescing(window: 0)
        trickle(&off, turns: 30, gap: 0.001, from: 0)
        XCTAssertEqual(off.heldTurns, 0)
        XCTAssertEqual(off.turns, 30)
        XCTAssertEqual(off.datagrams, 30)
    }

    func testHoldsThatGatherLittleTurnHoldingOffForLongerEachTime() {
        // A peer with one request in flight: each hold gathers only its next message.
        var coalescing = ReceiveCoalescing(window: 0.01)
        var now = trickle(&coalescing, turns: 12, gap: 0.001, from: 0)
        var quietStarts: [Double] = []
        while now < 10 {
            if let until = coalescing.holdUntil {
                now = max(now, until)
                XCTAssertTrue(coalescing.reads(now: now))
            }
            let before = coalescing.quietPeriods
            coalescing.read(1, batchFull: false, now: now)
            if coalescing.quietPeriods > before { quietStarts.append(now) }
            now += 0.001
        }
        XCTAssertGreaterThanOrEqual(quietStarts.count, 5)
        let gaps = zip(quietStarts.dropFirst(), quietStarts).map { $0 - $1 }
        // 0.1 s, 0.2 s, 0.4 s, ... up to 2 s without holds, plus the three holds that end each.
        XCTAssertEqual(gaps[0], 0.1 + 0.033, accuracy: 0.01)
        XCTAssertEqual(gaps[1], 0.2 + 0.033, accuracy: 0.01)
        XCTAssertEqual(gaps.last!, 2 + 0.033, accuracy: 0.01)
        // Most turns were not held: the peer lost at most three windows per quiet period.
        XCTAssertLessThan(Double(coalescing.heldTurns) * 0.01, 0.05 * now)
    }
}
