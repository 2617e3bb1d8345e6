import XCTest

@testable import IKEv2

/// IKE_FOLLOWUP_KE (RFC 9370 section 2.2.4) between two engines: CHILD SA rekeys, a new CHILD SA with PFS and
/// IKE SA rekeys with one and with two additional key exchanges, each side initiating; simultaneous rekeys;
/// what a responder answers to a follow-up it cannot place or that is malformed.
final class FollowUpKeyExchangeTests: XCTestCase {
    static let a = "192.0.2.1"
    static let b = "192.0.2.2"
    static let hybridIKE = "aes256gcm16-prfsha256-x25519-ke1_mlkem768"
    static let hybridESP = "aes256gcm16-x25519-ke1_mlkem768"
    static let doubleESP = "aes256gcm16-x25519-ke1_mlkem768-ke2_mlkem1024"

    /// An established pair (IKE SA and its first CHILD SA, made in IKE_AUTH without PFS), the clock at 10 s.
    func established(
        ike: String = hybridIKE, esp: String = hybridESP, seeds: (UInt64, UInt64) = (1, 2), settings: EngineSettings = EngineSettings(),
        secondChild: Bool = false
    ) throws -> EnginePair {
        func connection(_ local: String, _ remote: String) throws -> ConnectionConfiguration {
            var connection = try Fixtures.connection(local: local, remote: remote, proposal: ike, esp: esp)
            if secondChild {
                // Selectors of its own, so that the responder tells it from the first.
                var extra = connection.children[0]
                extra.name = "second"
                let (mine, theirs) = local == Self.a ? ("10.1.1.0/24", "10.2.2.0/24") : ("10.2.2.0/24", "10.1.1.0/24")
                extra.localTrafficSelectors = [TrafficSelector(cidr: mine)!]
                extra.remoteTrafficSelectors = [TrafficSelector(cidr: theirs)!]
                connection.children.append(extra)
            }
            return connection
        }
        let pair = EnginePair(
            initiator: [try connection(Self.a, Self.b)], responder: [try connection(Self.b, Self.a)], initiatorAddress: IPAddress(Self.a)!,
            responderAddress: IPAddress(Self.b)!, responderSettings: settings, initiatorSettings: settings, seeds: seeds)
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertEqual(pair.initiator.sessionSummaries.first?.children.count, secondChild ? 2 : 1)
        XCTAssertTrue(pair.drops.isEmpty, "\(pair.drops)")
        pair.now = 10
        return pair
    }

    /// "EXCHANGE request|response" for each protected message on the link from `start` on; the fragments of one
    /// message (ML-KEM shares travel in SKF fragments) count once.
    func exchanges(_ pair: EnginePair, from start: Int) -> [String] {
        var seen: [(String, UInt32)] = []
        for datagram in pair.wire[start...] {
            let marker = datagram.source.port == 4500 || datagram.destination.port == 4500
            guard let message = try? IKEMessage.decode(Array(datagram.payload.dropFirst(marker ? 4 : 0))) else { continue }
            let entry = ("\(message.header.exchangeType) \(message.header.isResponse ? "response" : "request")", message.header.messageID)
            if seen.last.map({ $0 == entry }) != true { seen.append(entry) }
        }
        return seen.map(\.0)
    }

    func session(_ engine: IKEEngine) throws -> IKESession {
        try XCTUnwrap(engine.sessions.values.first { $0.state == .established })
    }

    /// Each side holds one and the same active CHILD SA of `name`, with matching keys in both directions.
    func assertSharedChild(_ pair: EnginePair, _ name: String = "c-child", file: StaticString = #filePath, line: UInt = #line) throws -> ChildSA {
        let mine = try session(pair.initiator).children.filter { !$0.rekeyed && $0.configuration.name == name }
        let theirs = try session(pair.responder).children.filter { !$0.rekeyed && $0.configuration.name == name }
        XCTAssertEqual(mine.count, 1, "initiator's \(name)", file: file, line: line)
        XCTAssertEqual(theirs.count, 1, "responder's \(name)", file: file, line: line)
        let (x, y) = (try XCTUnwrap(mine.first), try XCTUnwrap(theirs.first))
        XCTAssertEqual(x.spiInbound, y.spiOutbound, file: file, line: line)
        XCTAssertEqual(x.spiOutbound, y.spiInbound, file: file, line: line)
        XCTAssertEqual(x.keys.encryptionOutbound, y.keys.encryptionInbound, "the same keys on both ends", file: file, line: line)
        XCTAssertEqual(x.keys.encryptionInbound, y.keys.encryptionOutbound, file: file, line: line)
        XCTAssertEqual(x.suite, y.suite, file: file, line: line)
        return x
    }

    // MARK: Whole exchanges

    func testCHILDSARekeysWithOneAndTwoAdditionalKeyExchangesEachSideInitiating() throws {
        for (esp, count) in [(Self.hybridESP, 1), (Self.doubleESP, 2)] {
            for side in ["initiator", "responder"] {
                let context = "\(esp), \(side) rekeying"
                let pair = try established(esp: esp)
                let before = try assertSharedChild(pair)
                XCTAssertEqual(before.suite.name, "aes256gcm16", "IKE_AUTH's CHILD SA has no PFS, so no additional key exchange")
                let start = pair.wire.count
                let engine = side == "initiator" ? pair.initiator : pair.responder
                pair.run(engine.rekeyChild(connection: "c", now: pair.now), from: side)
                XCTAssertEqual(pair.events("initiator", .childRekeyed).count, 1, context)
                XCTAssertEqual(pair.events("responder", .childRekeyed).count, 1, context)
                XCTAssertTrue(pair.drops.isEmpty, "\(context): \(pair.drops)")
                let after = try assertSharedChild(pair)
                XCTAssertNotEqual(after.spiInbound, before.spiInbound, context)
                XCTAssertEqual(after.suite.name, esp, context)
                XCTAssertEqual(pair.events(side, .childRekeyed).first?.child?.suite.name, esp, "the event names every key exchange")
                XCTAssertEqual(
                    exchanges(pair, from: start),
                    ["CREATE_CHILD_SA request", "CREATE_CHILD_SA response"]
                        + Array(repeating: ["IKE_FOLLOWUP_KE request", "IKE_FOLLOWUP_KE response"], count: count).flatMap { $0 }
                        + ["INFORMATIONAL request", "INFORMATIONAL response"], context)
                XCTAssertTrue(try session(pair.responder).followUps.isEmpty, "nothing left pending")
                // And again, from the other side, on the replacement.
                let other = side == "initiator" ? pair.responder : pair.initiator
                pair.run(other.rekeyChild(connection: "c", now: pair.now), from: side == "initiator" ? "responder" : "initiator")
                XCTAssertEqual(pair.events("initiator", .childRekeyed).count, 2, context)
                XCTAssertNotEqual(try assertSharedChild(pair).spiInbound, after.spiInbound)
            }
        }
    }

    func testANewCHILDSAWithPFSRunsTheAdditionalKeyExchangesBeforeItIsMade() throws {
        let pair = try established(esp: Self.doubleESP, secondChild: true)
        let second = try assertSharedChild(pair, "second")
        XCTAssertEqual(second.suite.name, Self.doubleESP)
        let wire = exchanges(pair, from: 0)
        XCTAssertEqual(wire.filter { $0 == "IKE_FOLLOWUP_KE request" }.count, 2, "\(wire)")
        // Announced once, when made: after the last IKE_FOLLOWUP_KE.
        XCTAssertEqual(pair.events("initiator", .childEstablished).count, 2)
        XCTAssertEqual(pair.events("responder", .childEstablished).count, 2)
    }

    func testIKESARekeyWithAdditionalKeyExchangesEachSideInitiating() throws {
        for ike in [Self.hybridIKE, "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024"] {
            for side in ["initiator", "responder"] {
                let context = "\(ike), \(side) rekeying"
                let pair = try established(ike: ike)
                let before = pair.initiator.sessionSummaries[0]
                let start = pair.wire.count
                let engine = side == "initiator" ? pair.initiator : pair.responder
                pair.run(engine.rekeyIKE(connection: "c", now: pair.now), from: side)
                XCTAssertEqual(pair.events("initiator", .ikeRekeyed).count, 1, context)
                XCTAssertEqual(pair.events("responder", .ikeRekeyed).count, 1, context)
                XCTAssertEqual(pair.events(side, .ikeRekeyed).first?.ikeSuite?.name, ike, context)
                let (x, y) = (pair.initiator.sessionSummaries, pair.responder.sessionSummaries)
                XCTAssertEqual(x.count, 1, context)
                XCTAssertEqual(y.count, 1, context)
                XCTAssertEqual(x.first?.spiInitiator, y.first?.spiInitiator, context)
                XCTAssertNotEqual(x.first?.spiInitiator, before.spiInitiator, context)
                XCTAssertEqual(x.first?.children.map(\.inbound), before.children.map(\.inbound), "the CHILD SA moved, unchanged")
                XCTAssertEqual(try session(pair.initiator).keys, try session(pair.responder).keys, "\(context): the same new keys")
                let count = ike == Self.hybridIKE ? 1 : 2
                XCTAssertEqual(
                    exchanges(pair, from: start),
                    ["CREATE_CHILD_SA request", "CREATE_CHILD_SA response"]
                        + Array(repeating: ["IKE_FOLLOWUP_KE request", "IKE_FOLLOWUP_KE response"], count: count).flatMap { $0 }
                        + ["INFORMATIONAL request", "INFORMATIONAL response"], context)
                // The new IKE SA carries on: a CHILD SA rekey under it, with its own additional key exchange.
                pair.run(pair.initiator.rekeyChild(connection: "c", now: pair.now), from: "initiator")
                XCTAssertEqual(pair.events("responder", .childRekeyed).count, 1, context)
                _ = try assertSharedChild(pair)
            }
        }
    }

    // MARK: Simultaneous rekeys

    /// One end won the nonce comparison and one lost, and only the winner's exchange ran its IKE_FOLLOWUP_KE (one
    /// additional key exchange): the loser stopped at its CREATE_CHILD_SA. Returns the winning side.
    func assertOneWinnerAndOneFollowUp(_ pair: EnginePair, from start: Int, _ context: String, line: UInt = #line) -> String {
        let (a, b) = (pair.initiator.counters, pair.responder.counters)
        XCTAssertEqual(a["rekey_collision_won", default: 0] + b["rekey_collision_won", default: 0], 1, "\(context): one winner", line: line)
        XCTAssertEqual(a["rekey_collision_lost", default: 0] + b["rekey_collision_lost", default: 0], 1, "\(context): one loser", line: line)
        XCTAssertEqual(
            exchanges(pair, from: start).filter { $0 == "IKE_FOLLOWUP_KE request" }.count, 1,
            "\(context): the loser stopped before its IKE_FOLLOWUP_KE (RFC 7296 sections 2.8.1, 2.8.2, by the CREATE_CHILD_SA nonces)", line: line)
        return a["rekey_collision_won"] == 1 ? "initiator" : "responder"
    }

    func testCrossingCHILDRekeysWithFollowUpsLeaveOneSharedSA() throws {
        var winners = Set<String>()
        for seed in UInt64(1)...8 {
            // "last first": once both CREATE_CHILD_SA requests have arrived, the latest message is handed over each
            // time, so the responder's rekey, follow-ups included, ends before the initiator's follow-up reaches it.
            for order in ["in turn", "responder first", "last first", "one side first"] {
                let pair = try established(seeds: (seed, seed + 100))
                let original = try assertSharedChild(pair)
                let start = pair.wire.count
                pair.holding = true
                if order == "one side first" {
                    // Both start; the initiator's rekey is answered and its IKE_FOLLOWUP_KE is on the link when the
                    // responder's CREATE_CHILD_SA reaches it: that one gets TEMPORARY_FAILURE.
                    pair.run(pair.initiator.rekeyChild(connection: "c", now: pair.now), from: "initiator")
                    pair.run(pair.responder.rekeyChild(connection: "c", now: pair.now), from: "responder")
                    pair.release(0)  // the initiator's CREATE_CHILD_SA; its answer is held after the responder's request
                    pair.release(1)  // that answer: the initiator's IKE_FOLLOWUP_KE is held
                    pair.release(0)  // the responder's CREATE_CHILD_SA reaches the initiator now
                    pair.releaseAll()
                    XCTAssertEqual(pair.responder.counters["child_refused"], 1, "seed \(seed): TEMPORARY_FAILURE")
                    XCTAssertTrue(
                        pair.logs.contains { $0.line.contains("while our rekey of it runs its additional key exchanges: TEMPORARY_FAILURE") })
                    XCTAssertNotEqual(try assertSharedChild(pair).spiInbound, original.spiInbound)
                    pair.holding = false
                    pair.advance(to: 400)
                    _ = try assertSharedChild(pair)
                    continue
                }
                pair.run(pair.initiator.rekeyChild(connection: "c", now: pair.now), from: "initiator")
                pair.run(pair.responder.rekeyChild(connection: "c", now: pair.now), from: "responder")
                XCTAssertEqual(pair.held.count, 2, "both CREATE_CHILD_SA requests in flight")
                pair.release(order == "responder first" ? 1 : 0)
                if order == "last first" {
                    pair.release(0)
                    while !pair.held.isEmpty { pair.release(pair.held.count - 1) }
                }
                pair.releaseAll()
                let context = "seed \(seed), \(order)"
                winners.insert(assertOneWinnerAndOneFollowUp(pair, from: start, context))
                XCTAssertNotEqual(try assertSharedChild(pair).spiInbound, original.spiInbound, context)
                // Nothing left to come back later.
                pair.holding = false
                pair.advance(to: 400)
                let kept = try assertSharedChild(pair)
                XCTAssertEqual(kept.suite.name, Self.hybridESP, context)
                XCTAssertTrue(pair.drops.isEmpty, "\(context): \(pair.drops)")
            }
        }
        XCTAssertEqual(winners, ["initiator", "responder"], "both outcomes of the nonce comparison exercised")
    }

    /// Both ends rekey the IKE SA at once: when both CREATE_CHILD_SA requests cross, the nonces decide as each is
    /// answered and the loser stops before its IKE_FOLLOWUP_KE; when one side's rekey is already in its
    /// IKE_FOLLOWUP_KE exchanges as the other's request arrives, that request gets TEMPORARY_FAILURE and is tried
    /// again later. Either way both ends end on one and the same new IKE SA, the CHILD SA moved unchanged.
    func testCrossingIKERekeysWithFollowUpsEndOnOneSharedIKESA() throws {
        var settings = EngineSettings()
        settings.rekeyRetryDelay = 10
        var winners = Set<String>()
        for seed in UInt64(1)...6 {
            for order in ["crossing", "one side first"] {
                let context = "seed \(seed), \(order)"
                let pair = try established(seeds: (seed, seed + 100), settings: settings)
                let before = pair.initiator.sessionSummaries[0]
                let start = pair.wire.count
                pair.holding = true
                pair.run(pair.initiator.rekeyIKE(connection: "c", now: pair.now), from: "initiator")
                if order == "one side first" {
                    pair.release()  // the initiator's CREATE_CHILD_SA is answered ...
                    pair.release()  // ... and its first IKE_FOLLOWUP_KE is on the link when the responder starts its own
                }
                pair.run(pair.responder.rekeyIKE(connection: "c", now: pair.now), from: "responder")
                pair.releaseAll()
                pair.holding = false
                for time in stride(from: 11.0, through: 200, by: 1) { pair.advance(to: time) }
                let (x, y) = (pair.initiator.sessionSummaries, pair.responder.sessionSummaries)
                XCTAssertEqual(x.count, 1, "\(context): \(x)")
                XCTAssertEqual(y.count, 1, "\(context): \(y)")
                XCTAssertEqual(x.first?.spiInitiator, y.first?.spiInitiator, context)
                XCTAssertEqual(x.first?.spiResponder, y.first?.spiResponder, context)
                XCTAssertNotEqual(x.first?.spiInitiator, before.spiInitiator, "\(context): rekeyed")
                XCTAssertEqual(x.first?.children.map(\.inbound), before.children.map(\.inbound), "the CHILD SA moved, unchanged")
                XCTAssertEqual(try session(pair.initiator).keys, try session(pair.responder).keys, context)
                XCTAssertTrue(
                    pair.events.allSatisfy { $0.event.kind != .childDeleted && $0.event.kind != .ikeDeleted }, "\(context): nothing announced gone")
                if order == "crossing" {
                    winners.insert(assertOneWinnerAndOneFollowUp(pair, from: start, context))
                } else {
                    XCTAssertEqual(pair.responder.counters["ike_rekey_failed"], 1, "\(context): the responder's rekey got TEMPORARY_FAILURE")
                    XCTAssertTrue(
                        pair.logs.contains {
                            $0.side == "initiator" && $0.line.contains("while our rekey runs its additional key exchanges: TEMPORARY_FAILURE")
                        })
                }
                XCTAssertTrue(pair.responder.sessions.values.allSatisfy(\.followUps.isEmpty), "\(context): no state left waiting")
            }
        }
        XCTAssertEqual(winners, ["initiator", "responder"], "both outcomes of the nonce comparison exercised")
    }

    // MARK: Follow-ups a responder cannot place, and malformed ones

    /// Runs a CHILD SA rekey from the initiator up to its first IKE_FOLLOWUP_KE request, which is held.
    func holdFirstFollowUp(_ pair: EnginePair) throws -> IKESession {
        pair.holding = true
        pair.run(pair.initiator.rekeyChild(connection: "c", now: pair.now), from: "initiator")
        pair.release()  // CREATE_CHILD_SA request; the answer is held
        pair.release()  // its answer; the initiator's IKE_FOLLOWUP_KE request is held
        XCTAssertEqual(exchanges(pair, from: pair.wire.count - 1), ["IKE_FOLLOWUP_KE request"])
        XCTAssertEqual(try session(pair.responder).followUps.count, 1)
        return try session(pair.initiator)
    }

    /// Replaces the held IKE_FOLLOWUP_KE request with one carrying `payloads` under the same message ID.
    func sendInstead(_ pair: EnginePair, _ session: IKESession, payloads: [Payload]) throws {
        pair.held = []
        pair.holding = false
        let header = session.header(exchange: .ikeFollowupKE, messageID: try XCTUnwrap(session.outstanding).messageID, response: false)
        let bytes = try ProtectedMessage.seal(
            header: header, payloads: payloads, protection: try XCTUnwrap(session.outgoingProtection), random: SeededRandom(seed: 9))
        pair.run([.send(pair.initiator.makeDatagram(bytes, from: session.local, to: session.remote))], from: "initiator")
    }

    /// While a CHILD SA the peer asked for waits here for its IKE_FOLLOWUP_KE exchanges, the IKE SA they run on is
    /// not rekeyed: not by this side (its rekey waits), and not by the peer (TEMPORARY_FAILURE, as strongSwan does).
    func testNoIKESARekeyWhileACHILDSAOfThePeersIsHalfMade() throws {
        let pair = try established()
        let initiator = try holdFirstFollowUp(pair)
        let responder = try session(pair.responder)
        // Ours waits.
        responder.rekeyAt = 0
        let sent = pair.wire.count
        pair.run(pair.responder.tick(now: pair.now), from: "responder")
        XCTAssertEqual(pair.wire.count, sent, "no CREATE_CHILD_SA from the responder while the peer's CHILD SA is half made")
        XCTAssertEqual(responder.rekeyAt, 0, "the rekey is still due")
        // The peer's is refused: a CREATE_CHILD_SA for the IKE SA in place of its IKE_FOLLOWUP_KE.
        let keyExchange = KeyExchangeGroup.curve25519.generatePrivateKey(random: SeededRandom(seed: 8))
        let proposals = pair.initiator.ikeProposals(connection: initiator.connection, spi: [UInt8](repeating: 9, count: 8), preferring: .curve25519)
        pair.held = []
        pair.holding = false
        let header = initiator.header(exchange: .createChildSA, messageID: try XCTUnwrap(initiator.outstanding).messageID, response: false)
        let bytes = try ProtectedMessage.seal(
            header: header,
            payloads: [
                .securityAssociation(SecurityAssociationPayload(proposals: proposals)), .nonce(NoncePayload(Nonce([UInt8](repeating: 4, count: 32)))),
                .keyExchange(KeyExchangePayload(group: KeyExchangeGroup.curve25519.rawValue, data: keyExchange.publicValue))
            ], protection: try XCTUnwrap(initiator.outgoingProtection), random: SeededRandom(seed: 9))
        pair.run([.send(pair.initiator.makeDatagram(bytes, from: initiator.local, to: initiator.remote))], from: "initiator")
        XCTAssertTrue(
            pair.logs.contains {
                $0.side == "responder" && $0.line.contains("while one of its CHILD SAs waits for its additional key exchanges: TEMPORARY_FAILURE")
            },
            "\(pair.logs.map(\.line))")
        XCTAssertEqual(pair.responder.sessionSummaries.count, 1, "the IKE SA stays as it was")
        XCTAssertEqual(responder.followUps.count, 1, "and so does the half-made CHILD SA's state")
    }

    func testAFollowUpWhoseLinkNamesNothingGetsStateNotFoundAndTheRekeyIsTriedAgain() throws {
        var settings = EngineSettings()
        settings.rekeyRetryDelay = 10
        let pair = try established(settings: settings)
        let original = try assertSharedChild(pair)
        _ = try holdFirstFollowUp(pair)
        try session(pair.responder).followUps[0].link = [0xde, 0xad, 0xbe, 0xef]  // the responder lost the state
        pair.holding = false
        pair.releaseAll()
        XCTAssertEqual(pair.responder.counters["follow_up_refused"], 1)
        XCTAssertTrue(pair.logs.contains { $0.side == "responder" && $0.line.contains("its link names no exchange in progress") })
        XCTAssertTrue(
            pair.logs.contains { $0.side == "initiator" && $0.line.contains("IKE_FOLLOWUP_KE refused by peer: STATE_NOT_FOUND") },
            "\(pair.logs.map(\.line))")
        XCTAssertEqual(pair.initiator.counters["child_refused"], 1)
        XCTAssertEqual(pair.initiator.sessionSummaries.count, 1, "STATE_NOT_FOUND is not fatal to the IKE SA")
        XCTAssertEqual(try assertSharedChild(pair).spiInbound, original.spiInbound, "nothing was made")
        XCTAssertTrue(pair.events.allSatisfy { $0.event.kind != .childRekeyed })
        XCTAssertTrue(pair.logs.contains { $0.side == "initiator" && $0.line.contains("will be tried again in") })
        // The stale state on the responder expires by itself; the next rekey goes through.
        for time in stride(from: 11.0, through: 200, by: 1) { pair.advance(to: time) }
        pair.run(pair.initiator.rekeyChild(connection: "c", now: pair.now), from: "initiator")
        XCTAssertEqual(pair.events("initiator", .childRekeyed).count, 1)
        XCTAssertEqual(pair.events("responder", .childRekeyed).count, 1)
        XCTAssertNotEqual(try assertSharedChild(pair).spiInbound, original.spiInbound)
        XCTAssertTrue(try session(pair.responder).followUps.isEmpty, "the lost exchange's state expired")
        XCTAssertTrue(pair.logs.contains { $0.side == "responder" && $0.line.contains("the initiator never sent the next exchange; dropped") })
    }

    func testMalformedFollowUpsAreAnsweredInvalidSyntaxWhichEndsTheIKESA() throws {
        let share = KeyExchangeMethod.mlkem768.initiate(random: SeededRandom(seed: 5)).share
        let cases: [(String, (_ link: [UInt8]) -> [Payload])] = [
            ("no ADDITIONAL_KEY_EXCHANGE notify", { _ in [.keyExchange(KeyExchangePayload(group: 36, data: share))] }),
            ("no KE payload for ML-KEM-768", { link in [.notify(NotifyPayload(type: .additionalKeyExchange, data: link))] }),
            (
                "KE for method 37 where ML-KEM-768 is due",
                { link in
                    [
                        .keyExchange(KeyExchangePayload(group: 37, data: Array(repeating: 1, count: 1568))),
                        .notify(NotifyPayload(type: .additionalKeyExchange, data: link))
                    ]
                }
            ),
            (
                "the KE holds no valid ML-KEM-768 share (1183 octets)",
                { link in
                    [
                        .keyExchange(KeyExchangePayload(group: 36, data: Array(share.dropLast()))),
                        .notify(NotifyPayload(type: .additionalKeyExchange, data: link))
                    ]
                }
            )
        ]
        for (reason, payloads) in cases {
            let pair = try established()
            let held = try holdFirstFollowUp(pair)
            let link = try session(pair.responder).followUps[0].link
            try sendInstead(pair, held, payloads: payloads(link))
            XCTAssertEqual(pair.responder.counters["follow_up_refused"], 1, reason)
            XCTAssertTrue(pair.logs.contains { $0.side == "responder" && $0.line.contains(reason) }, "\(reason): \(pair.logs.map(\.line))")
            XCTAssertTrue(pair.responder.sessionSummaries.isEmpty, "\(reason): INVALID_SYNTAX is fatal (RFC 7296 section 2.21.3)")
            XCTAssertTrue(pair.events.contains { $0.side == "responder" && $0.event.kind == .ikeDeleted }, reason)
            XCTAssertTrue(pair.events.allSatisfy { $0.event.kind != .childRekeyed }, "\(reason): no CHILD SA made")
        }
    }

    func testAnAnswerThatChoseAdditionalKeyExchangesWithoutALinkFailsTheRequest() throws {
        let pair = try established()
        let session = try session(pair.initiator)
        let child = try assertSharedChild(pair)
        let exchanges = FollowUpKeyExchanges(
            target: .child(child, rekeying: child.spiInbound), nonceInitiator: Nonce([1]), nonceResponder: Nonce([2]),
            firstSecret: KeyMaterial([3]), remaining: [.mlkem768], link: [], startedAt: 10)
        XCTAssertNil(pair.initiator.startFollowUps(session: session, exchanges: exchanges, answer: [], now: 10))
        XCTAssertNil(
            pair.initiator.startFollowUps(
                session: session, exchanges: exchanges, answer: [.notify(NotifyPayload(type: .additionalKeyExchange, data: []))], now: 10),
            "an empty link names nothing")
        XCTAssertNotNil(
            pair.initiator.startFollowUps(
                session: session, exchanges: exchanges, answer: [.notify(NotifyPayload(type: .additionalKeyExchange, data: [7]))], now: 10))
    }

    func testAPeerThatRequiresAnAdditionalKeyExchangeWeDoNotRunGetsNoProposalChosen() throws {
        // The responder's CHILD SA takes PFS with X25519 only; the initiator requires ML-KEM-768 after it.
        let pair = EnginePair(
            initiator: [try Fixtures.connection(local: Self.a, remote: Self.b, proposal: Self.hybridIKE, esp: Self.hybridESP)],
            responder: [try Fixtures.connection(local: Self.b, remote: Self.a, proposal: Self.hybridIKE, esp: "aes256gcm16-x25519")],
            initiatorAddress: IPAddress(Self.a)!, responderAddress: IPAddress(Self.b)!)
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        pair.run(pair.initiator.rekeyChild(connection: "c", now: 10), from: "initiator")
        XCTAssertTrue(pair.logs.contains { $0.side == "initiator" && $0.line.contains("refused by peer: NO_PROPOSAL_CHOSEN") }, "\(pair.logs)")
        // Optional for the initiator (ke1_none offered too): chosen without it.
        let optional = EnginePair(
            initiator: [
                try Fixtures.connection(local: Self.a, remote: Self.b, proposal: Self.hybridIKE, esp: "aes256gcm16-x25519-ke1_mlkem768-ke1_none")
            ],
            responder: [try Fixtures.connection(local: Self.b, remote: Self.a, proposal: Self.hybridIKE, esp: "aes256gcm16-x25519")],
            initiatorAddress: IPAddress(Self.a)!, responderAddress: IPAddress(Self.b)!)
        optional.run(optional.initiator.initiate(connection: "c", now: 0), from: "initiator")
        let start = optional.wire.count
        optional.run(optional.initiator.rekeyChild(connection: "c", now: 10), from: "initiator")
        XCTAssertEqual(optional.events("initiator", .childRekeyed).first?.child?.suite.name, "aes256gcm16-x25519")
        XCTAssertFalse(exchanges(optional, from: start).contains("IKE_FOLLOWUP_KE request"))
    }
}

/// The keys of a CHILD SA and of a rekeyed IKE SA after additional key exchanges (RFC 9370 section 2.2.4), against
/// Python's `cryptography` HMAC computing the RFC's formulas itself.
final class FollowUpDerivationTests: XCTestCase {
    func bytes(_ seed: UInt64, _ count: Int) -> [UInt8] { SeededRandom(seed: seed).bytes(count) }

    func testCHILDSAKeysConcatenateEverySharedSecretAfterTheNonces() throws {
        let suite = ChildCipherSuite(
            encryption: .aesGCM16(keyBits: 256), integrity: nil, group: .curve25519, extendedSequenceNumbers: false,
            additionalKeyExchanges: [AdditionalKeyExchange(number: 1, method: .mlkem768), AdditionalKeyExchange(number: 2, method: .mlkem1024)])
        let skd = KeyMaterial(bytes(1, 32))
        let (sk0, sk1, sk2) = (KeyMaterial(bytes(2, 32)), KeyMaterial(bytes(3, 32)), KeyMaterial(bytes(4, 32)))
        let (ni, nr) = (Nonce(bytes(5, 32)), Nonce(bytes(6, 32)))
        let keys = KeyDerivation.childKeys(
            prf: .hmacSHA256, deriving: skd, suite: suite, sharedSecret: sk0, nonceInitiator: ni, nonceResponder: nr,
            additionalSecrets: [sk1, sk2])
        let lines = try runPython(
            IntermediateDerivationTests.prf + "\n" + """
                skd, sk0, ni, nr, sk1, sk2 = a
                keymat = prfplus(skd, sk0 + ni + nr + sk1 + sk2, 2 * 36)   # RFC 9370 2.2.4: KEYMAT
                print(keymat[:36].hex())
                print(keymat[36:].hex())
                """,
            arguments: [skd.bytes, sk0.bytes, ni.octets, nr.octets, sk1.bytes, sk2.bytes].map(\.hexString))
        XCTAssertEqual(lines, [keys.encryptionInitiator.bytes.hexString, keys.encryptionResponder.bytes.hexString])
    }

    func testTheRekeyedIKESASkeyseedTakesTheAdditionalSecretsAfterTheNonces() throws {
        let skd = KeyMaterial(bytes(7, 48))
        let (sk0, sk1) = (KeyMaterial(bytes(8, 32)), KeyMaterial(bytes(9, 32)))
        let (ni, nr) = (Nonce(bytes(10, 32)), Nonce(bytes(11, 32)))
        let skeyseed = KeyDerivation.rekeyedSkeyseed(
            prf: .hmacSHA256, oldDeriving: skd, sharedSecret: sk0, nonceInitiator: ni, nonceResponder: nr, additionalSecrets: [sk1])
        let lines = try runPython(
            IntermediateDerivationTests.prf + "\n" + """
                skd, sk0, ni, nr, sk1 = a
                print(prf(skd, sk0 + ni + nr + sk1).hex())   # RFC 9370 2.2.4: SKEYSEED = prf(SK_d, SK(0) | Ni | Nr | SK(1))
                """,
            arguments: [skd.bytes, sk0.bytes, ni.octets, nr.octets, sk1.bytes].map(\.hexString))
        XCTAssertEqual(lines, [skeyseed.bytes.hexString])
    }
}
