import IKEv2
import XCTest

@testable import Proxy
@testable import ProxyDemo

/// An administrator removes a terminal (docs/proxy.md, "Terminals"): its SAs go with the peer and in the
/// terminal, nothing new is made for it, the other terminals are untouched, and enrolling it again works.
final class TerminalRemovalTests: XCTestCase {
    let peer = DemoScenario.peer, a = DemoScenario.terminalA, b = DemoScenario.terminalB

    /// A established by the peer, B by its own start request; both carry traffic.
    func twoTerminalsWithSAs() -> VirtualNetwork {
        let network = DemoScenario.network()
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        network.terminalSends(b, HostStack.echoRequest(from: b, to: peer, sequence: 1))
        network.run()
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA)
        XCTAssertTrue(network.terminals[b]!.hasOutboundSA)
        XCTAssertEqual(network.proxy.store.count, 2)
        return network
    }

    func peerSessions(with terminal: IPAddress, _ network: VirtualNetwork) -> Int {
        network.peer.engine.sessionSummaries.filter { $0.established && $0.remote.address == terminal }.count
    }

    func testRemovingATerminalDeletesItsSAsWithThePeerAndFlushesTheTerminal() {
        let network = twoTerminalsWithSAs()
        let actions = network.proxy.removeTerminal(id: 11, at: ClockReading(monotonic: network.now, wall: network.wallClock))
        XCTAssertNotNil(actions)
        let lines = (actions ?? []).compactMap { if case .log(let line) = $0 { line.text } else { nil } }
        XCTAssertTrue(lines.contains { $0.contains("terminal 11 (10.0.0.11) removed") }, "\(lines)")
        network.perform(actions ?? [])

        XCTAssertEqual(peerSessions(with: a, network), 0, "the peer's IKE SA with A was deleted")
        XCTAssertGreaterThanOrEqual(network.proxy.counters["ike_answered_for_removed_terminal"] ?? 0, 1, "the Delete's answer was taken")
        XCTAssertTrue(network.proxy.store.children.values.allSatisfy { $0.terminal == b }, "only B's SA is left in the store")
        XCTAssertEqual(network.proxy.store.count, 1)
        XCTAssertTrue(
            network.terminals[a]!.agent.database.outbound.isEmpty && network.terminals[a]!.agent.database.inbound.isEmpty,
            "the FLUSH emptied A's SA database")
        XCTAssertNil(network.proxy.counters["drop_key_delivery_from_unknown_terminal"], "A's acknowledgement of the FLUSH was taken")
        XCTAssertNil(network.proxy.registry.terminal(at: a))
        XCTAssertEqual(network.proxy.counters["terminals_removed"], 1)

        // B is untouched: its SA still carries its traffic.
        XCTAssertEqual(peerSessions(with: b, network), 1)
        let replies = network.terminals[b]!.echoRepliesReceived
        network.terminalSends(b, HostStack.echoRequest(from: b, to: peer, sequence: 2))
        network.run()
        XCTAssertEqual(network.terminals[b]!.echoRepliesReceived, replies + 1)

        // Nothing new for A, from either side.
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        XCTAssertGreaterThanOrEqual(network.proxy.counters["drop_ike_for_unregistered_terminal"] ?? 0, 1)
        network.terminalSends(a, HostStack.echoRequest(from: a, to: peer, sequence: 3))
        network.run()
        XCTAssertGreaterThanOrEqual(network.proxy.counters["drop_start_request_from_unregistered_terminal"] ?? 0, 1)
        XCTAssertFalse(network.terminals[a]!.hasOutboundSA)
        XCTAssertEqual(network.proxy.store.count, 1)
    }

    /// With the peer gone, the Delete is never answered: the IKE SA is given up after its retransmissions and
    /// the terminal's SAs leave the store all the same.
    func testRemovingATerminalWhosePeerIsGoneStillEmptiesTheStore() {
        let network = twoTerminalsWithSAs()
        network.peerIsDown = true
        network.perform(network.proxy.removeTerminal(id: 11, at: ClockReading(monotonic: network.now, wall: network.wallClock))!)
        network.advance(by: 120)
        XCTAssertTrue(network.proxy.store.children.values.allSatisfy { $0.terminal == b }, "A's SA left the store")
        XCTAssertFalse(network.proxy.engines.sessionSummaries.contains { $0.local.address == a }, "and its IKE SA the engine")
        XCTAssertTrue(network.terminals[a]!.agent.database.outbound.isEmpty, "the terminal was flushed at once")
    }

    /// After a restart that followed a removal cut short, the restored IKE SA of the terminal no longer enrolled
    /// is deleted with its peer; the enrolled terminal's stays.
    func testRestoredSAsOfATerminalNoLongerEnrolledAreDeleted() {
        let network = twoTerminalsWithSAs()
        XCTAssertTrue(
            network.proxy.deleteSAsOfUnenrolledTerminals(at: ClockReading(monotonic: network.now, wall: network.wallClock)).isEmpty,
            "all enrolled: nothing")
        _ = network.proxy.registry.remove(terminalID: 11)
        let actions = network.proxy.deleteSAsOfUnenrolledTerminals(at: ClockReading(monotonic: network.now, wall: network.wallClock))
        XCTAssertTrue(
            actions.contains { if case .log(let line) = $0 { line.text.contains("which is no longer an enrolled terminal") } else { false } })
        network.perform(actions)
        XCTAssertEqual(peerSessions(with: a, network), 0, "the peer's IKE SA with A is deleted")
        XCTAssertEqual(peerSessions(with: b, network), 1)
        XCTAssertEqual(network.proxy.store.count, 1)
    }

    func testRemovingAnUnknownTerminalChangesNothing() {
        let network = twoTerminalsWithSAs()
        XCTAssertNil(network.proxy.removeTerminal(id: 99, at: ClockReading(monotonic: network.now, wall: network.wallClock)))
        XCTAssertEqual(network.proxy.store.count, 2)
        XCTAssertNil(network.proxy.counters["terminals_removed"])
    }

    /// Enrolled again with the same key, the terminal keeps its channel: the sequence numbers go on, so the
    /// agent (which remembers them) takes the new SA's keys.
    func testATerminalEnrolledAgainGetsSAsAgain() {
        let network = twoTerminalsWithSAs()
        network.perform(network.proxy.removeTerminal(id: 11, at: ClockReading(monotonic: network.now, wall: network.wallClock))!)
        network.proxy.registry.enroll(DemoScenario.terminals()[0])
        network.terminalSends(a, HostStack.echoRequest(from: a, to: peer, sequence: 1))
        network.run()
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA, "A has keys again")
        XCTAssertNil(network.proxy.counters["drop_key_delivery_replayed"])
        let replies = network.terminals[a]!.echoRepliesReceived
        network.terminalSends(a, HostStack.echoRequest(from: a, to: peer, sequence: 2))
        network.run()
        XCTAssertEqual(network.terminals[a]!.echoRepliesReceived, replies + 1, "and its traffic flows through ESP")
    }

    /// Enrolled again under a new key (a replaced device), the terminal is reached on a new channel.
    func testATerminalEnrolledAgainUnderANewKeyGetsANewChannel() {
        let network = twoTerminalsWithSAs()
        network.perform(network.proxy.removeTerminal(id: 11, at: ClockReading(monotonic: network.now, wall: network.wallClock))!)
        let replaced = TerminalEntry(address: a, terminalID: 11, enrollmentKey: KeyMaterial(Array(repeating: 0x5e, count: 32)))
        network.attach(replaced)
        network.proxy.registry.enroll(replaced)
        network.terminalSends(a, HostStack.echoRequest(from: a, to: peer, sequence: 1))
        network.run()
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA, "the new device took keys sealed under its key")
        XCTAssertNil(network.proxy.counters["drop_key_delivery_forged"])
    }
}
