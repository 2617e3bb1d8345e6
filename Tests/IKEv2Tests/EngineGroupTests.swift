import Foundation
import XCTest

@testable import IKEEndpoint
@testable import IKEv2

/// The endpoint's engines on worker threads: the same negotiations come up as with one engine, each IKE SA in
/// the engine its SPI names, and queries see every engine.
final class EngineGroupTests: XCTestCase {
    func connections(count: Int, initiator: Bool) throws -> [ConnectionConfiguration] {
        let (local, remote) = initiator ? ("192.0.2.1", "192.0.2.2") : ("192.0.2.2", "192.0.2.1")
        return try (0..<count).map { k in
            try Fixtures.connection(
                name: "c\(k)", local: local, remote: remote, proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16",
                localTS: initiator ? "10.1.0.\(k)/32" : "10.2.0.\(k)/32", remoteTS: initiator ? "10.2.0.\(k)/32" : "10.1.0.\(k)/32",
                localID: initiator ? "i\(k)@example" : "responder@example", remoteID: initiator ? "responder@example" : "i\(k)@example")
        }
    }

    typealias Outcome = (initiator: [SAEvent], responder: [SAEvent], drops: [DropReason], groups: (EngineGroup, EngineGroup))

    /// Passes datagrams between two groups until `done` holds (or 20 s pass), collecting CHILD SA events and drops.
    func exchange(
        _ a: EngineGroup, _ b: EngineGroup, events: inout (initiator: [SAEvent], responder: [SAEvent]), drops: inout [DropReason],
        until done: (_ events: (initiator: [SAEvent], responder: [SAEvent])) -> Bool
    ) {
        let deadline = Date().addingTimeInterval(20)
        while !done(events) && Date() < deadline {
            var idle = true
            for (group, other, isInitiator) in [(a, b, true), (b, a, false)] {
                for (_, actions) in group.completed() {
                    idle = false
                    for action in actions {
                        switch action {
                        case .send(let datagram):
                            other.submit(to: other.engine(for: datagram.payload, encapsulated: datagram.destination.port == 4500)) {
                                $0.receive(datagram.payload, from: datagram.source, to: datagram.destination, now: $1)
                            }
                        case .event(let event) where event.kind == .childEstablished:
                            if isInitiator { events.initiator.append(event) } else { events.responder.append(event) }
                        case .drop(let reason): drops.append(reason)
                        case .initialContact(let match):
                            // As the endpoint's loop does: the group's other engines remove their stale SAs too.
                            for index in 0..<group.count { group.submit(to: index) { engine, _ in engine.forgetStaleSessions(match) } }
                        default: break
                        }
                    }
                }
            }
            if idle { usleep(1000) }
        }
    }

    /// Runs `n` negotiations between two groups of `workers` engines each until both sides have every CHILD SA.
    func negotiate(_ n: Int, workers: Int) throws -> Outcome {
        let a = EngineGroup(connections: try connections(count: n, initiator: true), settings: EngineSettings(), count: workers)
        let b = EngineGroup(connections: try connections(count: n, initiator: false), settings: EngineSettings(), count: workers)
        for k in 0..<n {
            let name = "c\(k)"
            a.submit(to: a.engine(forConnection: name)) { $0.initiate(connection: name, now: $1) }
        }
        var events: (initiator: [SAEvent], responder: [SAEvent]) = ([], [])
        var drops: [DropReason] = []
        exchange(a, b, events: &events, drops: &drops) { $0.initiator.count >= n && $0.responder.count >= n }
        return (events.initiator, events.responder, drops, (a, b))
    }

    func testTwoWorkersBringUpWhatOneEngineDoesEachSAInTheEngineOfItsSPI() throws {
        let n = 24
        let one = try negotiate(n, workers: 1)
        let two = try negotiate(n, workers: 2)
        defer {
            two.groups.0.stop()
            two.groups.1.stop()
        }
        for result in [one, two] {
            XCTAssertEqual(result.initiator.count, n)
            XCTAssertEqual(result.responder.count, n)
            XCTAssertEqual(result.drops, [])
        }
        XCTAssertEqual(Set(one.initiator.map(\.connection)), Set(two.initiator.map(\.connection)))
        XCTAssertEqual(Set(one.responder.map(\.connection)), Set(two.responder.map(\.connection)))
        XCTAssertEqual(
            Set(one.initiator.compactMap { $0.child?.localTrafficSelectors.first?.description }),
            Set(two.initiator.compactMap { $0.child?.localTrafficSelectors.first?.description }))
        // Every IKE SA is held by the engine its SPI on our side names, and both engines hold some.
        for group in [two.groups.0, two.groups.1] {
            let held = group.query { $0.sessionSummaries }
            XCTAssertEqual(held.flatMap { $0 }.filter(\.established).count, n)
            for (index, summaries) in held.enumerated() {
                for summary in summaries {
                    let ours = summary.isOriginalInitiator ? summary.spiInitiator : summary.spiResponder
                    XCTAssertTrue(IKEShard(index: index, count: 2).owns(ours))
                }
            }
            XCTAssertTrue(held.allSatisfy { !$0.isEmpty }, "both engines hold IKE SAs: \(held.map(\.count))")
        }
    }

    /// A peer restarts and connects again with INITIAL_CONTACT; its new IKE SA lands in another engine than the
    /// stale one: that one goes all the same, as with a single engine.
    func testInitialContactRemovesTheStaleIKESAHeldByAnotherEngine() throws {
        let responder = EngineGroup(connections: try connections(count: 1, initiator: false), settings: EngineSettings(), count: 2)
        defer { responder.stop() }
        var events: (initiator: [SAEvent], responder: [SAEvent]) = ([], [])
        var drops: [DropReason] = []
        func connect() throws -> Int {
            // A peer with one engine (a fresh one each time: it has just started, so its IKE_AUTH carries INITIAL_CONTACT).
            let peer = EngineGroup(connections: try connections(count: 1, initiator: true), settings: EngineSettings(), count: 1)
            let before = events.responder.count
            peer.submit(to: 0) { $0.initiate(connection: "c0", now: $1) }
            exchange(peer, responder, events: &events, drops: &drops) { $0.responder.count > before }
            let holders = responder.query { $0.sessionSummaries.filter(\.established).map(\.spiResponder) }
            return try XCTUnwrap(holders.firstIndex { $0.contains(events.responder.last!.spiResponder) })
        }
        let first = try connect()
        var second = first
        var attempts = 0
        // The responder SPI's engine follows the peer's random initiator SPI: try until the other engine takes it.
        while second == first && attempts < 20 {
            second = try connect()
            attempts += 1
        }
        XCTAssertNotEqual(second, first, "a new IKE SA landed in the other engine")
        // Drain what the other engine did about INITIAL_CONTACT.
        exchange(responder, responder, events: &events, drops: &drops) { _ in responder.query { $0.sessionSummaries.count }.reduce(0, +) == 1 }
        let held = responder.query { $0.sessionSummaries }
        XCTAssertEqual(held.flatMap { $0 }.count, 1, "only the newest IKE SA remains: \(held)")
        XCTAssertEqual(held[second].count, 1)
        XCTAssertEqual(drops, [])
    }

    /// The bounds that are for the whole process are shared out: each engine takes its part of the COOKIE
    /// threshold and of the reassembly memory, so that N workers hold no more than one engine would.
    func testProcessWideBoundsAreSharedOutAmongTheEngines() throws {
        var settings = EngineSettings()
        settings.cookieThreshold = 16
        settings.maximumReassemblySize = 65_536
        settings.maximumReassemblyMemory = 1 << 20
        let group = EngineGroup(connections: try connections(count: 1, initiator: false), settings: settings, count: 4)
        defer { group.stop() }
        let shares = group.query { ($0.settings.cookieThreshold, $0.settings.maximumReassemblyMemory, $0.settings.maximumReassemblySize) }
        XCTAssertEqual(shares.map(\.0), [4, 4, 4, 4])
        XCTAssertEqual(shares.map(\.1), Array(repeating: 1 << 18, count: 4))
        XCTAssertEqual(shares.map(\.2), Array(repeating: 65_536, count: 4), "each engine can still reassemble a whole message")
        settings.maximumReassemblyMemory = 65_536
        let tight = EngineGroup(connections: try connections(count: 1, initiator: false), settings: settings, count: 4)
        defer { tight.stop() }
        XCTAssertEqual(tight.query { $0.settings.maximumReassemblyMemory }, Array(repeating: 65_536, count: 4))
    }

    /// A worker that cannot keep up holds at most `backlogLimit` pieces of work: the group says it is saturated
    /// (the loop then leaves datagrams in the sockets), and no longer once the worker has caught up.
    func testAWorkerBehindSaturatesTheGroupUntilItCatchesUp() throws {
        let group = EngineGroup(connections: try connections(count: 1, initiator: false), settings: EngineSettings(), count: 2)
        defer { group.stop() }
        let gate = DispatchSemaphore(value: 0)
        let begun = DispatchSemaphore(value: 0)
        group.submit(to: 1) { _, _ in
            begun.signal()
            gate.wait()
            return []
        }
        // Work being done is no longer waiting: only what comes after it counts.
        begun.wait()
        for _ in 0..<EngineGroup.backlogLimit - 1 { group.submit(to: 1) { _, _ in [] } }
        XCTAssertFalse(group.saturated)
        group.submit(to: 1) { _, _ in [] }
        XCTAssertTrue(group.saturated)
        gate.signal()
        XCTAssertEqual(group.query { _ in true }, [true, true], "both engines answer once the work before is done")
        XCTAssertFalse(group.saturated)
    }
}
