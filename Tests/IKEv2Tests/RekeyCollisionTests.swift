import XCTest

@testable import IKEv2

/// Both ends rekeying the same SA at once (RFC 7296 sections 2.8.1, 2.8.2, 2.25), driven between two
/// engines whose messages are held on the link and handed over in chosen orders.
final class RekeyCollisionTests: XCTestCase {
    func establishedPair(seeds: (UInt64, UInt64) = (1, 2), settings: EngineSettings = EngineSettings()) throws -> EnginePair {
        let pair = EnginePair(
            initiator: [
                try Fixtures.connection(local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
            ],
            responder: [
                try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
            ],
            initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!, responderSettings: settings, seeds: seeds)
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertEqual(pair.initiator.sessionSummaries.first?.children.count, 1)
        pair.now = 10
        return pair
    }

    /// The CHILD SAs the embedding program was told about and not told gone, by inbound SPI: what a
    /// terminal would hold.
    func announced(_ pair: EnginePair, _ side: String) -> Set<ChildSPI> {
        var live = Set<ChildSPI>()
        for (origin, event) in pair.events where origin == side {
            guard let child = event.child else { continue }
            switch event.kind {
            case .childEstablished, .childRekeyed: live.insert(child.spiInbound)
            case .childDeleted: live.remove(child.spiInbound)
            default: break
            }
        }
        return live
    }

    /// The outbound SAs a terminal behind `side` would have sent on, following `outboundHeld`: a held
    /// replacement's outbound is used only once the peer deletes the SA it replaces; a `childRekeyed` of the same
    /// SA that is not held means the held one lost.
    func outboundsUsed(_ pair: EnginePair, _ side: String) -> Set<ChildSPI> {
        var used = Set<ChildSPI>()
        var pending: [ChildSPI: ChildSPI] = [:]
        for (origin, event) in pair.events where origin == side {
            guard let child = event.child else { continue }
            switch event.kind {
            case .childEstablished, .childRekeyed:
                if let old = child.replaces, child.outboundHeld {
                    pending[old.outbound] = child.spiOutbound
                    continue
                }
                if let old = child.replaces { pending[old.outbound] = nil }
                used.insert(child.spiOutbound)
            case .childDeleted:
                if let survivor = pending.removeValue(forKey: child.spiOutbound) { used.insert(survivor) }
                pending = pending.filter { $0.value != child.spiOutbound }
            default: break
            }
        }
        return used
    }

    /// Both ends hold one and the same CHILD SA, and their embedding programs were told exactly that one.
    func assertOneSharedChild(_ pair: EnginePair, notBefore original: ChildSPI?, file: StaticString = #filePath, line: UInt = #line) {
        let a = pair.initiator.sessionSummaries
        let b = pair.responder.sessionSummaries
        XCTAssertEqual(a.count, 1, "initiator IKE SAs", file: file, line: line)
        XCTAssertEqual(b.count, 1, "responder IKE SAs", file: file, line: line)
        guard let ca = a.first?.children, let cb = b.first?.children, ca.count == 1, cb.count == 1 else {
            return XCTFail("expected one CHILD SA on each side: \(a) \(b)", file: file, line: line)
        }
        XCTAssertEqual(ca[0].inbound, cb[0].outbound, file: file, line: line)
        XCTAssertEqual(ca[0].outbound, cb[0].inbound, file: file, line: line)
        XCTAssertNotEqual(ca[0].inbound, original, "a new SA", file: file, line: line)
        XCTAssertEqual(announced(pair, "initiator"), [ca[0].inbound], "initiator's announced SAs", file: file, line: line)
        XCTAssertEqual(announced(pair, "responder"), [cb[0].inbound], "responder's announced SAs", file: file, line: line)
        XCTAssertTrue(pair.drops.isEmpty, "\(pair.drops)", file: file, line: line)
    }

    func testLowestNonceComparesOctetByOctet() {
        func redundant(ourNonces: [[UInt8]], peerNonces: [[UInt8]]) -> Bool {
            RekeyCollision.ourReplacementIsRedundant(ourNonces: ourNonces.map(Nonce.init), peerNonces: peerNonces.map(Nonce.init))
        }
        XCTAssertTrue(redundant(ourNonces: [[0x09], [0x05]], peerNonces: [[0x06], [0x07]]))
        XCTAssertFalse(redundant(ourNonces: [[0x06], [0x07]], peerNonces: [[0x09], [0x05]]))
        // Octet order, not integer value: 01 ff ff is lower than 02 although it is the larger number.
        XCTAssertTrue(redundant(ourNonces: [[0x01, 0xff, 0xff], [0x80]], peerNonces: [[0x02], [0x90]]))
        // A nonce that ends first is the lower one.
        XCTAssertTrue(redundant(ourNonces: [[1, 2], [9]], peerNonces: [[1, 2, 3], [9]]))
        XCTAssertFalse(redundant(ourNonces: [[1, 2, 3], [9]], peerNonces: [[1, 2], [9]]))
    }

    /// Both requests cross; then either the answers arrive in order, or the responder settles first and
    /// what it sends next (a Delete of the old SA or of its redundant one) overtakes the initiator's answer.
    func cross(_ pair: EnginePair, overtaking: Bool) {
        XCTAssertEqual(pair.held.count, 2, "both requests in flight")
        pair.release(0)  // initiator's request to the responder; its answer is held
        pair.release(0)  // responder's request to the initiator; its answer is held
        if overtaking {
            pair.release(1)  // the responder gets its answer first and settles
            XCTAssertEqual(pair.held.count, 2, "the initiator's answer and the responder's Delete")
            pair.release(1)  // its Delete reaches the initiator before the initiator's own answer
        }
        pair.releaseAll()
    }

    func testCrossingChildRekeysLeaveOneSharedSAWhicheverSideWins() throws {
        var winners = Set<String>()
        var held = 0
        for seed in UInt64(1)...8 {
            for overtaking in [false, true] {
                let pair = try establishedPair(seeds: (seed, seed + 100))
                let original = pair.initiator.sessionSummaries.first?.children.first?.inbound
                pair.holding = true
                pair.run(pair.initiator.rekeyChild(connection: "c", now: pair.now), from: "initiator")
                pair.run(pair.responder.rekeyChild(connection: "c", now: pair.now), from: "responder")
                cross(pair, overtaking: overtaking)
                assertOneSharedChild(pair, notBefore: original)
                // A terminal never sends on the redundant replacement: only on the original SA and the one that stays.
                for (side, summaries) in [("initiator", pair.initiator.sessionSummaries), ("responder", pair.responder.sessionSummaries)] {
                    let originalOut = pair.events.first { $0.0 == side && $0.1.kind == .childEstablished }?.1.child?.spiOutbound
                    XCTAssertEqual(
                        outboundsUsed(pair, side), Set([originalOut, summaries.first?.children.first?.outbound].compactMap { $0 }),
                        "seed \(seed) \(side): outbound SAs a terminal would have used")
                }
                held += pair.events.filter { $0.1.child?.outboundHeld == true }.count
                let (a, b) = (pair.initiator.counters, pair.responder.counters)
                XCTAssertEqual(a["rekey_collision_won", default: 0] + b["rekey_collision_won", default: 0], 1, "seed \(seed): one winner")
                XCTAssertEqual(a["rekey_collision_lost", default: 0] + b["rekey_collision_lost", default: 0], 1, "seed \(seed): one loser")
                winners.insert(a["rekey_collision_won"] == 1 ? "initiator" : "responder")
                // Nothing left over that would come back later: no rekeys, no stale SAs after the timeouts.
                pair.holding = false
                pair.advance(to: 400)
                assertOneSharedChild(pair, notBefore: original)
            }
        }
        XCTAssertEqual(winners, ["initiator", "responder"], "both outcomes of the nonce comparison exercised")
        XCTAssertGreaterThan(held, 0, "the peer's crossing replacement is announced with its outbound held")
    }

    func testRekeyOfAnSAAlreadyReplacedGetsTemporaryFailureAndIsNotRetried() throws {
        let pair = try establishedPair()
        let original = pair.initiator.sessionSummaries.first?.children.first?.inbound
        pair.holding = true
        pair.run(pair.initiator.rekeyChild(connection: "c", now: pair.now), from: "initiator")
        pair.run(pair.responder.rekeyChild(connection: "c", now: pair.now), from: "responder")
        pair.release(0)  // initiator's request reaches the responder, which answers it
        pair.release(1)  // that answer reaches the initiator before the responder's request does
        pair.release(0)  // the responder's request: its SA is being replaced here
        pair.releaseAll()
        XCTAssertEqual(pair.initiator.counters["child_refused"] ?? 0, 0)
        XCTAssertEqual(pair.responder.counters["child_refused"], 1, "TEMPORARY_FAILURE for the responder's rekey")
        assertOneSharedChild(pair, notBefore: original)
        pair.holding = false
        pair.advance(to: 60)
        XCTAssertEqual(pair.events("responder", .childRekeyed).count, 1, "no retry of a rekey the peer already made")
        assertOneSharedChild(pair, notBefore: original)
    }

    func testRefusedRekeyIsRetriedAfterADelay() throws {
        var settings = EngineSettings()
        settings.rekeyRetryDelay = 10
        let pair = try establishedPair(settings: settings)
        let original = pair.initiator.sessionSummaries.first?.children.first?.inbound
        pair.holding = true
        // The initiator starts a CHILD SA rekey; the responder, not yet knowing, starts an IKE SA rekey.
        pair.run(pair.initiator.rekeyChild(connection: "c", now: pair.now), from: "initiator")
        pair.run(pair.responder.rekeyIKE(connection: "c", now: pair.now), from: "responder")
        pair.release(1)  // the IKE rekey meets the CHILD exchange in flight: TEMPORARY_FAILURE
        pair.releaseAll()
        XCTAssertEqual(pair.responder.counters["ike_rekey_failed"], 1)
        XCTAssertEqual(pair.events("initiator", .childRekeyed).count, 1, "the CHILD SA rekey went through")
        pair.holding = false
        pair.advance(to: 19)
        XCTAssertEqual(pair.events("responder", .ikeRekeyed).count, 0, "not retried before the delay")
        pair.advance(to: 26)
        XCTAssertEqual(pair.events("responder", .ikeRekeyed).count, 1, "retried after the delay")
        XCTAssertEqual(pair.events("initiator", .ikeRekeyed).count, 1)
        assertOneSharedChild(pair, notBefore: original)
    }

    func testCrossingIKERekeysKeepTheCHILDSAsOnOneSharedIKESA() throws {
        var winners = Set<String>()
        for seed in UInt64(1)...8 {
            for overtaking in [false, true] {
                let pair = try establishedPair(seeds: (seed, seed + 100))
                let before = pair.initiator.sessionSummaries[0]
                pair.holding = true
                pair.run(pair.initiator.rekeyIKE(connection: "c", now: pair.now), from: "initiator")
                pair.run(pair.responder.rekeyIKE(connection: "c", now: pair.now), from: "responder")
                cross(pair, overtaking: overtaking)
                // When the winner closed the old IKE SA before the loser's answer came, the loser dropped its rekey
                // (section 2.25.2) and the winner deletes the redundant IKE SA itself after a while.
                pair.holding = false
                for time in stride(from: 20.0, through: 200, by: 5) { pair.advance(to: time) }
                let a = pair.initiator.sessionSummaries
                let b = pair.responder.sessionSummaries
                XCTAssertEqual(a.count, 1, "seed \(seed): one IKE SA left on the initiator: \(a)")
                XCTAssertEqual(b.count, 1, "seed \(seed): one IKE SA left on the responder: \(b)")
                XCTAssertEqual(a.first?.spiInitiator, b.first?.spiInitiator)
                XCTAssertEqual(a.first?.spiResponder, b.first?.spiResponder)
                XCTAssertNotEqual(a.first?.spiInitiator, before.spiInitiator)
                XCTAssertEqual(a.first?.children.map(\.inbound), before.children.map(\.inbound), "the CHILD SA moved, unchanged")
                XCTAssertEqual(b.first?.children.map(\.outbound), before.children.map(\.inbound))
                XCTAssertTrue(pair.events.allSatisfy { $0.event.kind != .childDeleted && $0.event.kind != .ikeDeleted }, "nothing announced gone")
                // Only messages for the dropped exchange find no IKE SA: its answer and the Delete of what it made.
                XCTAssertTrue(pair.drops.allSatisfy { if case .unknownSPI = $0.reason { return overtaking } else { return false } }, "\(pair.drops)")
                pair.drops = []
                let (ca, cb) = (pair.initiator.counters, pair.responder.counters)
                XCTAssertEqual(ca["rekey_collision_won", default: 0] + cb["rekey_collision_won", default: 0], 1, "seed \(seed): one winner")
                XCTAssertEqual(ca["rekey_collision_lost", default: 0] + cb["rekey_collision_lost", default: 0], 1, "seed \(seed): one loser")
                winners.insert(ca["rekey_collision_won"] == 1 ? "initiator" : "responder")
                // The surviving IKE SA carries on: each side rekeys the CHILD SA under it.
                pair.run(pair.initiator.rekeyChild(connection: "c", now: pair.now), from: "initiator")
                pair.run(pair.responder.rekeyChild(connection: "c", now: pair.now), from: "responder")
                XCTAssertEqual(pair.events("initiator", .childRekeyed).count, 2, "seed \(seed)")
                XCTAssertEqual(pair.events("responder", .childRekeyed).count, 2, "seed \(seed)")
                assertOneSharedChild(pair, notBefore: before.children.first?.inbound)
            }
        }
        XCTAssertEqual(winners, ["initiator", "responder"], "both outcomes of the nonce comparison exercised")
    }

    func testReplacementOfACHILDSAThePeerDeletedMeanwhileIsDeletedToo() throws {
        let pair = try establishedPair()
        let session = try XCTUnwrap(pair.responder.sessions.values.first)
        let old = try XCTUnwrap(session.children.first?.spiInbound)
        pair.holding = true
        pair.run(pair.initiator.rekeyChild(connection: "c", now: pair.now), from: "initiator")
        pair.release(0)  // the responder answers the rekey, then closes the old SA at once (as an operator might)...
        pair.run(
            pair.responder.sendRequest(
                session: session, exchange: .informational, payloads: [.delete(.child([old]))],
                context: .deleteChildren([old]), now: pair.now), from: "responder")
        XCTAssertEqual(pair.held.count, 2, "the rekey answer and a Delete of the old SA")
        pair.release(1)  // ...but its Delete of the old SA overtakes the answer
        pair.releaseAll()
        XCTAssertEqual(pair.initiator.sessionSummaries.first?.children.count, 0)
        XCTAssertEqual(pair.responder.sessionSummaries.first?.children.count, 0)
        XCTAssertEqual(announced(pair, "initiator"), [])
        XCTAssertEqual(announced(pair, "responder"), [])
        XCTAssertTrue(pair.drops.isEmpty, "\(pair.drops)")
    }
}
