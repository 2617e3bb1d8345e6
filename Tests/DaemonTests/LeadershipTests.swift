import Store
import XCTest

@testable import Daemon

/// The rules of `Leadership`, each on its own: who acts, until when, and why it stops.
final class LeadershipTests: XCTestCase {
    func lease(_ holder: String, _ fencing: Int64) -> LeaseRecord { LeaseRecord(holder: holder, fencing: fencing, remaining: 2, age: 0) }

    func testAClaimAnsweredForThisNodeMakesItActUntilTheSendingPlusTheLeaseLessTheMargin() {
        var node = Leadership(node: "a")
        XCTAssertFalse(node.acts(now: 0), "a node starts as standby")
        XCTAssertTrue(node.claimDue(now: 0, lastSent: nil))
        XCTAssertEqual(node.answered(lease("a", 1), sentAt: 10, now: 10.5), [.becomeActive(fencing: 1)])
        XCTAssertEqual(node.role, .active)
        XCTAssertEqual(node.activeUntil, 10 + 2 - 0.3, "counted from the sending, not the answer")
        XCTAssertTrue(node.acts(now: 11.6))
        XCTAssertFalse(node.acts(now: 11.7), "silent at the deadline even before a tick says so")
        XCTAssertEqual(node.takeovers, 1)
    }

    func testRenewalsKeepTheTermAndALateOneIsNotActedOn() {
        var node = Leadership(node: "a")
        _ = node.answered(lease("a", 3), sentAt: 0, now: 0.01)
        XCTAssertEqual(node.answered(lease("a", 3), sentAt: 0.4, now: 0.41), [], "a renewal changes nothing but the deadline")
        XCTAssertEqual(node.activeUntil, 0.4 + 1.7, accuracy: 1e-9)
        XCTAssertFalse(node.claimDue(now: 0.5, lastSent: 0.4))
        XCTAssertTrue(node.claimDue(now: 0.8, lastSent: 0.4))
        // The next renewal was sent at 0.8 but answered only after its own deadline (0.8 + 1.7): not acted on.
        XCTAssertEqual(
            node.answered(lease("a", 3), sentAt: 0.8, now: 2.6),
            [.becomeStandby(reason: "the lease was not renewed in time (last renewal answered 0.0 s ago)")])
        XCTAssertFalse(node.acts(now: 2.6))
    }

    func testAnActiveThatCannotRenewStopsByItselfBeforeTheLeaseCanPass() {
        var node = Leadership(node: "a")
        _ = node.answered(lease("a", 1), sentAt: 0, now: 0.05)
        XCTAssertEqual(node.tick(now: 1.0), [])
        let changes = node.tick(now: 1.7)
        XCTAssertEqual(changes, [.becomeStandby(reason: "the lease was not renewed in time (last renewal answered 1.6 s ago)")])
        XCTAssertEqual(node.role, .standby)
        XCTAssertNil(node.fencing)
        // The server could give the lease to the other node at 0 (sent) + 2 at the earliest: 0.3 s after this one stopped.
    }

    func testTheOtherHoldingTheLeaseKeepsThisNodeStandbyAndMakesAnActiveStep() {
        var standby = Leadership(node: "b")
        XCTAssertEqual(standby.answered(lease("a", 1), sentAt: 0, now: 0.01), [], "b waits")
        XCTAssertEqual(standby.lastLease?.holder, "a")
        var active = Leadership(node: "a")
        _ = active.answered(lease("a", 1), sentAt: 0, now: 0.01)
        XCTAssertEqual(active.answered(lease("b", 2), sentAt: 0.4, now: 0.41), [.becomeStandby(reason: "the lease is held by b (fencing 2)")])
    }

    func testANewTermWhileActiveIsAStepDownAndUpSoThatStaleMemoryIsNotUsed() {
        var node = Leadership(node: "a")
        _ = node.answered(lease("a", 1), sentAt: 0, now: 0.01)
        XCTAssertEqual(
            node.answered(lease("a", 2), sentAt: 0.4, now: 0.41),
            [.becomeStandby(reason: "the lease lapsed and was taken again (fencing 1 to 2)"), .becomeActive(fencing: 2)])
        XCTAssertEqual(node.fencing, 2)
        XCTAssertEqual(node.takeovers, 2)
    }

    func testAHandOverStopsActingAndHoldsClaimsBack() {
        var node = Leadership(node: "a")
        _ = node.answered(lease("a", 1), sentAt: 0, now: 0.01)
        XCTAssertEqual(node.handOver(now: 1, holdOff: 5), [.becomeStandby(reason: "switchover: handing the lease to the other node")])
        XCTAssertFalse(node.acts(now: 1))
        XCTAssertFalse(node.claimDue(now: 5.9, lastSent: 0.4), "no claim while the other takes over")
        XCTAssertTrue(node.claimDue(now: 6, lastSent: 0.4))
    }
}
