import XCTest

@testable import IKEv2

/// Engines sharing a host's IKE SAs by SPI, answering a batch of datagrams side by side (issue 21).
final class EngineShardsTests: XCTestCase {
    static let responder = "192.0.2.1"
    static func initiator(_ index: Int) -> String { "192.0.2.\(10 + index)" }

    /// `initiators` peers negotiate at once with a responder of `count` engines; every round, what reached the
    /// responder is one batch, answered with `run`. Returns the responder's datagrams in the order it sent
    /// them, its events, and the responder.
    func negotiate(initiators: Int, count: Int, run: (Int, (Int) -> Void) -> Void) throws -> (
        sent: [[UInt8]], events: [SAEvent], responder: EngineShards
    ) {
        let proposal = "aes256gcm16-prfsha256-x25519"
        let peers = try (0..<initiators).map { index in
            IKEEngine(
                connections: [try Fixtures.connection(local: Self.initiator(index), remote: Self.responder, proposal: proposal, esp: "aes256gcm16")],
                random: SeededRandom(seed: 100 + UInt64(index)))
        }
        let connections = try (0..<initiators).map { index in
            try Fixtures.connection(
                name: "c\(index)", local: Self.responder, remote: Self.initiator(index), proposal: proposal, esp: "aes256gcm16")
        }
        let responder = EngineShards(
            connections: connections, settings: EngineSettings(), count: count, randomFor: { SeededRandom(seed: 1 + UInt64($0)) })
        var toResponder: [EngineShards.Datagram] = []
        var sent: [[UInt8]] = []
        var events: [SAEvent] = []
        func fromPeer(_ actions: [EngineAction]) {
            for case .send(let datagram) in actions {
                toResponder.append(EngineShards.Datagram(datagram.payload, from: datagram.source, to: datagram.destination))
            }
        }
        for peer in peers { fromPeer(peer.initiate(connection: "c", now: 0)) }
        var rounds = 0
        while !toResponder.isEmpty && rounds < 10 {
            rounds += 1
            let batch = toResponder
            toResponder = []
            for answer in responder.receive(batch: batch, now: Double(rounds), run: run) {
                for action in answer {
                    switch action {
                    case .send(let datagram):
                        sent.append(datagram.payload)
                        let peer = peers[Int(datagram.destination.address.bytes[3]) - 10]
                        fromPeer(peer.receive(datagram.payload, from: datagram.source, to: datagram.destination, now: Double(rounds)))
                    case .event(let event): events.append(event)
                    default: break
                    }
                }
            }
        }
        return (sent, events, responder)
    }

    func testABatchAnsweredSideBySideIsTheBatchAnsweredInTurn() throws {
        let atOnce = try negotiate(initiators: 24, count: 3, run: EngineShards.runAtOnce)
        let inTurn = try negotiate(initiators: 24, count: 3, run: EngineShards.runInTurn)
        XCTAssertEqual(atOnce.events.filter { $0.kind == .childEstablished }.count, 24, "every peer has its SAs")
        XCTAssertEqual(atOnce.sent, inTurn.sent, "the same datagrams, octet for octet, in the same order")
        XCTAssertEqual(atOnce.events.map(\.kind), inTurn.events.map(\.kind))
        XCTAssertEqual(atOnce.events.map(\.spiInitiator), inTurn.events.map(\.spiInitiator))
        for (index, engine) in atOnce.responder.engines.enumerated() {
            XCTAssertGreaterThan(engine.sessionSummaries.count, 0, "engine \(index) took part")
            for summary in engine.sessionSummaries {
                XCTAssertTrue(IKEShard(index: index, count: 3).owns(summary.spiResponder), "engine \(index) holds SPI \(summary.spiResponder)")
            }
        }
        XCTAssertEqual(atOnce.responder.sessionSummaries.filter(\.established).count, 24)
        // 24 at once is over each engine's share of the COOKIE threshold (16 / 3): some peers send theirs again.
        XCTAssertEqual(atOnce.responder.counters.filter { $0.key != "cookie_sent" }, [:], "nothing dropped or refused in any engine")
    }

    func testOneEngineAndThreeEstablishTheSameSAs() throws {
        let one = try negotiate(initiators: 12, count: 1, run: EngineShards.runInTurn)
        let three = try negotiate(initiators: 12, count: 3, run: EngineShards.runAtOnce)
        XCTAssertEqual(one.events.map(\.kind).sorted { $0.rawValue < $1.rawValue }, three.events.map(\.kind).sorted { $0.rawValue < $1.rawValue })
        XCTAssertEqual(Set(one.events.map(\.connection)), Set(three.events.map(\.connection)))
        XCTAssertEqual(one.responder.sessionSummaries.filter(\.established).count, 12)
        XCTAssertEqual(three.responder.sessionSummaries.filter(\.established).count, 12)
    }

    /// Commands go to the engine that holds what they name; a saved IKE SA comes back in the engine of its SPI;
    /// an OCSP answer finds the engine that asked.
    func testCommandsRestoreAndRevocationAnswersFindTheirEngine() throws {
        let (_, _, responder) = try negotiate(initiators: 9, count: 3, run: EngineShards.runAtOnce)
        let summaries = responder.sessionSummaries.filter(\.established)
        XCTAssertEqual(summaries.count, 9)
        for summary in summaries {
            let inbound = try XCTUnwrap(summary.children.first?.inbound)
            XCTAssertTrue(responder.holdsChild(inbound: inbound))
            let actions = responder.rekeyChild(connection: summary.connection, spi: inbound, now: 5)
            XCTAssertEqual(actions.filter { if case .send = $0 { return true } else { return false } }.count, 1, "one engine sends the rekey")
        }
        // Saved and brought back into three fresh engines: each lands where its SPI says.
        let snapshots = responder.snapshots(now: 6)
        XCTAssertEqual(snapshots.count, 9)
        let restored = EngineShards(
            connections: responder.engines[0].connections, settings: EngineSettings(), count: 3, random: SystemRandom())
        for snapshot in snapshots { _ = try restored.restore(snapshot, now: 6) }
        for (index, engine) in restored.engines.enumerated() {
            for summary in engine.sessionSummaries {
                XCTAssertTrue(IKEShard(index: index, count: 3).owns(summary.spiResponder))
            }
        }
        XCTAssertEqual(Set(restored.sessionSummaries.map(\.spiResponder)), Set(summaries.map(\.spiResponder)))
        // Each engine numbers its revocation checks so that the answer's ID names it.
        for (index, engine) in restored.engines.enumerated() {
            XCTAssertEqual(IKEShard.owner(ofRevocationCheck: engine.nextRevocationCheckID, count: 3), index)
            engine.nextRevocationCheckID &+= UInt64(engine.settings.shard.count)
            XCTAssertEqual(IKEShard.owner(ofRevocationCheck: engine.nextRevocationCheckID, count: 3), index)
        }
        let unknown = restored.revocationChecked(2, .good, now: 7)
        XCTAssertEqual(unknown.count, 1, "engine 1 answers for check 2: no IKE_AUTH waits for it")
    }
}
