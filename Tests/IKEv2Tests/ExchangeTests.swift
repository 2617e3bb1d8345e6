import XCTest

@testable import IKEv2

/// Whole exchanges between two engines in memory.
final class ExchangeTests: XCTestCase {
    func establish(_ pair: EnginePair, file: StaticString = #filePath, line: UInt = #line) throws -> (SAEvent, SAEvent) {
        pair.run(pair.initiator.initiate(connection: "c", now: pair.now), from: "initiator")
        let a = pair.events("initiator", .childEstablished)
        let b = pair.events("responder", .childEstablished)
        XCTAssertEqual(a.count, 1, "initiator child", file: file, line: line)
        XCTAssertEqual(b.count, 1, "responder child", file: file, line: line)
        struct NotEstablished: Error {}
        guard let ca = a.first, let cb = b.first else { throw NotEstablished() }
        return (ca, cb)
    }

    func assertMatching(_ a: SAEvent, _ b: SAEvent, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.spiInitiator, b.spiInitiator, file: file, line: line)
        XCTAssertEqual(a.spiResponder, b.spiResponder, file: file, line: line)
        guard let x = a.child, let y = b.child else { return XCTFail("no child", file: file, line: line) }
        XCTAssertEqual(x.spiInbound, y.spiOutbound, file: file, line: line)
        XCTAssertEqual(x.spiOutbound, y.spiInbound, file: file, line: line)
        XCTAssertEqual(x.suite, y.suite, file: file, line: line)
        XCTAssertEqual(x.keys.encryptionOutbound, y.keys.encryptionInbound, file: file, line: line)
        XCTAssertEqual(x.keys.encryptionInbound, y.keys.encryptionOutbound, file: file, line: line)
        XCTAssertEqual(x.keys.integrityOutbound, y.keys.integrityInbound, file: file, line: line)
        XCTAssertNotEqual(x.keys.encryptionInbound, x.keys.encryptionOutbound, file: file, line: line)
    }

    func testEstablishesWithEveryRequiredProposal() throws {
        let cases = [
            ("aes256gcm16-prfsha256-x25519", "aes256gcm16"), ("aes128gcm16-prfsha384-ecp256", "aes128gcm16"),
            ("aes256-sha256-modp2048", "aes256-sha256"), ("chacha20poly1305-prfsha512-ecp384", "chacha20poly1305"),
            ("aes128-sha512-ecp521", "aes128-sha384")
        ]
        for (ike, esp) in cases {
            let pair = try Fixtures.pair(proposal: ike, esp: esp)
            let (a, b) = try establish(pair)
            assertMatching(a, b)
            XCTAssertEqual(
                a.ikeSuite?.name,
                ike.replacingOccurrences(of: "sha256-modp", with: "sha256-prfsha256-modp")
                    .replacingOccurrences(of: "sha512-ecp521", with: "sha512-prfsha512-ecp521"))
            XCTAssertEqual(a.child?.suite.name, esp)
            XCTAssertEqual(a.child?.keys.encryptionOutbound.count, a.child?.suite.encryption.keyLength)
        }
    }

    func testIPv6AndTransportMode() throws {
        let pair = try Fixtures.pair(a: "2001:db8::1", b: "2001:db8::2", mode: .transport)
        let (a, b) = try establish(pair)
        assertMatching(a, b)
        XCTAssertEqual(a.child?.mode, .transport)
        XCTAssertEqual(b.child?.localTrafficSelectors.first?.description, "2001:db8::2/128")
    }

    func testNarrowsTrafficSelectorsToTheResponderPolicy() throws {
        let a = try Fixtures.connection(
            local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519",
            esp: "aes256gcm16", localTS: "10.1.0.0/16", remoteTS: "0.0.0.0/0")
        let b = try Fixtures.connection(
            local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519",
            esp: "aes256gcm16", localTS: "10.2.0.0/24", remoteTS: "10.1.5.0/24")
        let pair = EnginePair(initiator: [a], responder: [b], initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!)
        let (ea, _) = try establish(pair)
        XCTAssertEqual(ea.child?.localTrafficSelectors.map(\.description), ["10.1.5.0/24"])
        XCTAssertEqual(ea.child?.remoteTrafficSelectors.map(\.description), ["10.2.0.0/24"])
    }

    func testASetConnectionReachesTheNextNegotiation() throws {
        let pair = try Fixtures.pair()
        var narrower = try Fixtures.connection(local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        narrower.children[0].localTrafficSelectors = [try TrafficSelector(text: "192.0.2.1[udp]")]
        narrower.children[0].remoteTrafficSelectors = [try TrafficSelector(text: "192.0.2.2[udp/53]")]
        pair.initiator.setConnection(narrower)
        let (a, b) = try establish(pair)
        XCTAssertEqual(a.child?.localTrafficSelectors.map(\.description), ["192.0.2.1/32[udp]"])
        XCTAssertEqual(b.child?.localTrafficSelectors.map(\.description), ["192.0.2.2/32[udp/53]"], "the responder narrowed to it")
    }

    func testARefusedCHILDSAIsReportedAndTheNextOneRidesTheSameIKESA() throws {
        var a = try Fixtures.connection(local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        a.children[0].localTrafficSelectors = [try TrafficSelector(text: "192.0.2.1[tcp]")]
        a.children[0].remoteTrafficSelectors = [try TrafficSelector(text: "192.0.2.2[tcp]")]
        var b = try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        b.children[0].localTrafficSelectors = [try TrafficSelector(text: "192.0.2.2[udp]")]
        b.children[0].remoteTrafficSelectors = [try TrafficSelector(text: "192.0.2.1[udp]")]
        let pair = EnginePair(initiator: [a], responder: [b], initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!)
        pair.run(pair.initiator.startChild(connection: "c", now: 0), from: "initiator")
        XCTAssertEqual(pair.events("initiator", .ikeEstablished).count, 1, "the IKE SA stands")
        let failed = pair.events("initiator", .childFailed)
        XCTAssertEqual(failed.count, 1)
        XCTAssertEqual(failed.first?.detail, "CHILD SA 'c-child': refused by peer: TS_UNACCEPTABLE")
        // The initiator now asks for selectors the responder accepts: CREATE_CHILD_SA on the same IKE SA.
        a.children[0].localTrafficSelectors = [try TrafficSelector(text: "192.0.2.1[udp]")]
        a.children[0].remoteTrafficSelectors = [try TrafficSelector(text: "192.0.2.2[udp/53]")]
        pair.initiator.setConnection(a)
        let sent = pair.wire.count
        pair.run(pair.initiator.startChild(connection: "c", now: 1), from: "initiator")
        XCTAssertEqual(pair.events("initiator", .childEstablished).count, 1)
        XCTAssertEqual(pair.events("initiator", .ikeEstablished).count, 1, "no second IKE SA")
        let exchanges = pair.wire[sent...].compactMap { try? IKEMessage.decode($0.payload).header.exchangeType }
        XCTAssertEqual(exchanges, [.createChildSA, .createChildSA])
    }

    func testASecondRekeyOfTheSameCHILDSAWhileOneIsUnderWayIsNotSent() throws {
        let pair = try Fixtures.pair()
        let (a, _) = try establish(pair)
        let spi = try XCTUnwrap(a.child?.spiInbound)
        pair.holding = true
        pair.run(pair.initiator.rekeyChild(connection: "c", spi: spi, now: 1), from: "initiator")
        XCTAssertEqual(pair.held.count, 1)
        // The other direction of the same SA reaches its lifetime too: nothing more goes out.
        let second = pair.initiator.rekeyChild(connection: "c", spi: spi, now: 1)
        XCTAssertEqual(second.count, 1)
        guard case .log(let line) = second.first else { return XCTFail("\(second)") }
        XCTAssertEqual(line, "rekey of CHILD SA \(spi) is already under way")
        pair.holding = false
        pair.releaseAll()
        XCTAssertEqual(pair.events("initiator", .childRekeyed).count, 1)
        XCTAssertEqual(pair.events("responder", .childRekeyed).count, 1)
    }

    func testWrongPreSharedKeyFailsAuthentication() throws {
        let a = try Fixtures.connection(local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        let b = try Fixtures.connection(
            local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16",
            psk: KeyMaterial(Array("wrong".utf8)))
        let pair = EnginePair(initiator: [a], responder: [b], initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!)
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertEqual(pair.events("initiator", .ikeFailed).count, 1)
        XCTAssertEqual(pair.events("responder", .ikeFailed).count, 1)
        XCTAssertTrue(pair.events("initiator", .childEstablished).isEmpty)
        XCTAssertEqual(pair.initiator.counters["authentication_failed"], 1)
    }

    func testIdentityTypes() throws {
        for (ida, idb) in [
            ("client.example.org", "gw.example.org"), ("alice@example.org", "keyid:0102030405"),
            ("2001:db8::1", "192.0.2.2")
        ] {
            let a = try Fixtures.connection(
                local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519",
                esp: "aes256gcm16", localID: ida, remoteID: idb)
            let b = try Fixtures.connection(
                local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519",
                esp: "aes256gcm16", localID: idb, remoteID: ida)
            let pair = EnginePair(
                initiator: [a], responder: [b], initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!)
            let (ea, eb) = try establish(pair)
            assertMatching(ea, eb)
        }
    }

    func testCookieIsSentAboveThresholdAndHonoured() throws {
        var settings = EngineSettings()
        settings.cookieThreshold = 0
        let pair = try Fixtures.pair(responderSettings: settings)
        let (a, b) = try establish(pair)
        assertMatching(a, b)
        XCTAssertEqual(pair.responder.counters["cookie_sent"], 1)
        let inits = pair.wire.filter { (try? IKEMessage.decode($0.payload))?.header.exchangeType == .ikeSAInit }
        XCTAssertEqual(inits.count, 4, "request, COOKIE answer, request with COOKIE, answer")
    }

    /// Under load a COOKIE request and the initiator's retransmission cross: the retransmission (no COOKIE) comes
    /// in once the half-open count is below the threshold again and makes the IKE SA, then the retry with the
    /// COOKIE arrives. The initiator signs its latest version (RFC 7296 section 2.15), the one with the COOKIE,
    /// whichever answer it took: the responder must check AUTH against that version. (Found by the daemon's
    /// burst benchmark: AUTHENTICATION_FAILED.) A different request under the same SPI is still refused.
    func testRetryWithCookieOfARequestThatAlreadyMadeTheSAIsTheVersionAUTHCovers() throws {
        var settings = EngineSettings()
        settings.cookieThreshold = 1
        let pair = try Fixtures.pair(responderSettings: settings)
        pair.holding = true
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertEqual(pair.held.count, 1)
        let request = pair.held[0]
        // Another initiator's half-open SA from the same address (the request under another SPI) fills the threshold.
        var filler = request
        filler.payload[0] ^= 0xff
        pair.held.append(filler)
        pair.release(1)
        pair.held.removeAll()
        pair.held.append(request)
        pair.release()
        XCTAssertEqual(pair.responder.counters["cookie_sent"], 1)
        let cookieAnswer = pair.held.removeFirst()
        // The filler times out; the initiator's retransmission of its first request (no COOKIE) now makes the SA.
        pair.run(pair.responder.tick(now: 31), from: "responder")
        pair.now = 31
        pair.held.append(request)
        pair.release()
        let answer = pair.held.removeFirst()
        XCTAssertNotNil(try IKEMessage.decode(answer.payload).payloads.keyExchange, "the retransmission made the IKE SA")
        // The initiator got the COOKIE first and retries with it; the responder answers it with the same answer.
        pair.held.append(cookieAnswer)
        pair.release()
        XCTAssertEqual(pair.held.count, 1)
        let retry = pair.held.removeFirst()
        XCTAssertNotNil(try IKEMessage.decode(retry.payload).payloads.notify(.cookie))
        pair.held.append(retry)
        pair.release()
        XCTAssertEqual(pair.held.first?.payload, answer.payload, "the retry is answered with the answer already sent")
        XCTAssertEqual(pair.responder.counters["request_retried_with_cookie"], 1)
        pair.held.removeAll()
        // Another request under the same SPI (another nonce) is not a version of it.
        var other = try IKEMessage.decode(retry.payload)
        other.payloads = other.payloads.map { if case .nonce = $0 { .nonce(NoncePayload(data: [UInt8](repeating: 7, count: 32))) } else { $0 } }
        pair.held.append(Datagram(payload: other.encode(), source: retry.source, destination: retry.destination))
        pair.release()
        XCTAssertTrue(pair.held.isEmpty)
        XCTAssertTrue(pair.drops.contains { $0.reason == .invalidState("second IKE_SA_INIT for an existing IKE SA") })
        // The initiator takes the answer the retransmission made; its AUTH covers the retry; all comes up.
        pair.held.append(answer)
        pair.holding = false
        pair.releaseAll()
        XCTAssertEqual(pair.responder.counters["authentication_failed"] ?? 0, 0)
        XCTAssertEqual(pair.events("initiator", .childEstablished).count, 1)
        XCTAssertEqual(pair.events("responder", .childEstablished).count, 1)
    }

    func testInvalidKEPayloadMakesInitiatorRetryWithRequestedGroup() throws {
        let a = try Fixtures.connection(local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519-ecp256", esp: "aes256gcm16")
        let b = try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-ecp256", esp: "aes256gcm16")
        let pair = EnginePair(initiator: [a], responder: [b], initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!)
        let (ea, eb) = try establish(pair)
        assertMatching(ea, eb)
        XCTAssertEqual(ea.ikeSuite?.group, .ecp256)
        XCTAssertEqual(pair.responder.counters["invalid_ke_sent"], 1)
    }

    func testNoCommonProposalIsRefused() throws {
        let a = try Fixtures.connection(local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        let b = try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes128-sha256-modp2048", esp: "aes256gcm16")
        let pair = EnginePair(initiator: [a], responder: [b], initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!)
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertEqual(pair.events("initiator", .ikeFailed).first?.detail, "IKE_SA_INIT refused: NO_PROPOSAL_CHOSEN")
    }

    func testRekeysAndDeletesFromEitherSide() throws {
        for (actorName, esp) in [("initiator", "aes256gcm16"), ("responder", "aes128-sha256-ecp256")] {
            let pair = try Fixtures.pair(esp: esp)
            let (first, _) = try establish(pair)
            let actor = actorName == "initiator" ? pair.initiator : pair.responder
            let other = actorName == "initiator" ? "responder" : "initiator"
            pair.now = 10
            pair.run(actor.rekeyChild(connection: "c", now: pair.now), from: actorName)
            let rekeyedHere = pair.events(actorName, .childRekeyed)
            let rekeyedThere = pair.events(other, .childRekeyed)
            XCTAssertEqual(rekeyedHere.count, 1)
            XCTAssertEqual(rekeyedThere.count, 1)
            if let x = rekeyedHere.first?.child, let y = rekeyedThere.first?.child {
                XCTAssertEqual(x.spiInbound, y.spiOutbound)
                XCTAssertEqual(x.keys.encryptionOutbound, y.keys.encryptionInbound)
                XCTAssertNotEqual(x.spiInbound, first.child?.spiInbound)
                if esp.contains("ecp256") { XCTAssertEqual(x.suite.group, .ecp256, "rekey with PFS") }
            }
            XCTAssertEqual(pair.events(actorName, .childDeleted).count, 1, "old CHILD SA deleted after rekey")
            XCTAssertEqual(pair.events(other, .childDeleted).count, 1)
            XCTAssertEqual(pair.initiator.sessionSummaries.first?.children.count, 1)

            pair.run(actor.rekeyIKE(connection: "c", now: pair.now), from: actorName)
            XCTAssertEqual(pair.events(actorName, .ikeRekeyed).count, 1)
            XCTAssertEqual(pair.events(other, .ikeRekeyed).count, 1)
            XCTAssertEqual(pair.initiator.sessionSummaries.count, 1, "old IKE SA removed")
            XCTAssertEqual(pair.responder.sessionSummaries.count, 1)
            XCTAssertEqual(pair.initiator.sessionSummaries.first?.spiInitiator, pair.responder.sessionSummaries.first?.spiInitiator)
            XCTAssertEqual(pair.initiator.sessionSummaries.first?.children.count, 1, "children moved to new IKE SA")

            // The CHILD SA still rekeys under the new IKE SA.
            pair.run(actor.rekeyChild(connection: "c", now: pair.now), from: actorName)
            XCTAssertEqual(pair.events(other, .childRekeyed).count, 2)

            pair.run(actor.deleteChild(connection: "c", now: pair.now), from: actorName)
            XCTAssertEqual(pair.events(other, .childDeleted).count, 3)
            XCTAssertEqual(pair.responder.sessionSummaries.first?.children.count, 0)
            pair.run(actor.deleteIKE(connection: "c", now: pair.now), from: actorName)
            XCTAssertEqual(pair.events(other, .ikeDeleted).count, 1)
            XCTAssertTrue(pair.initiator.sessionSummaries.isEmpty)
            XCTAssertTrue(pair.responder.sessionSummaries.isEmpty)
            XCTAssertTrue(pair.drops.isEmpty, "\(pair.drops)")
        }
    }

    func testLostResponseIsRetransmittedAndAnsweredFromCache() throws {
        let pair = try Fixtures.pair()
        var dropped = false
        pair.deliver = { datagram in
            // Lose the first IKE_AUTH response.
            if !dropped, datagram.source.address == pair.responderAddress,
                let m = try? IKEMessage.decode(Array(datagram.payload.dropFirst(datagram.source.port == 4500 ? 4 : 0))),
                m.header.exchangeType == .ikeAuth
            {
                dropped = true
                return false
            }
            return true
        }
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertTrue(pair.events("initiator", .childEstablished).isEmpty)
        pair.advance(to: 0.5)
        XCTAssertTrue(pair.events("initiator", .childEstablished).isEmpty, "no retransmission before timeout")
        pair.advance(to: 1.1)
        XCTAssertEqual(pair.events("initiator", .childEstablished).count, 1)
        XCTAssertEqual(pair.events("responder", .childEstablished).count, 1, "responder did not process the request twice")
        XCTAssertEqual(pair.responder.counters["retransmitted_request"], 1)
    }

    func testGivesUpAfterRetransmissionLimitWithBackOff() throws {
        let pair = try Fixtures.pair()
        pair.deliver = { $0.source.address != pair.responderAddress }
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        var sendTimes: [Double] = []
        for step in 1...200 {
            let t = Double(step) * 0.5
            let before = pair.wire.count
            pair.advance(to: t)
            if pair.wire.count > before { sendTimes.append(t) }
        }
        XCTAssertEqual(Array(sendTimes.prefix(4)), [1.0, 3.0, 7.0, 15.0])
        XCTAssertEqual(pair.events("initiator", .ikeFailed).count, 1)
    }

    func testForcedEncapsulationMovesToPort4500WithNonESPMarker() throws {
        var a = try Fixtures.connection(local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        a.forceEncapsulation = true
        let b = try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        let pair = EnginePair(initiator: [a], responder: [b], initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!)
        let (ea, eb) = try establish(pair)
        assertMatching(ea, eb)
        XCTAssertEqual(ea.child?.encapsulated, true)
        XCTAssertEqual(eb.child?.encapsulated, true)
        let auth = pair.wire.filter { $0.destination.port == 4500 }
        XCTAssertEqual(auth.count, 2)
        XCTAssertTrue(auth.allSatisfy { $0.payload.prefix(4) == [0, 0, 0, 0] && $0.source.port == 4500 })
    }

    func testLivenessCheckIsAnswered() throws {
        let pair = try Fixtures.pair()
        _ = try establish(pair)
        let before = pair.wire.count
        pair.run(pair.responder.checkLiveness(connection: "c", now: 1), from: "responder")
        XCTAssertEqual(pair.wire.count, before + 2)
        XCTAssertTrue(pair.drops.isEmpty)
    }

    func testInitialContactFromARestartedPeerRemovesItsStaleIKESA() throws {
        let before = try Fixtures.pair()
        _ = try establish(before)
        XCTAssertEqual(before.responder.sessionSummaries.count, 1)
        // The initiator restarts with no state and connects again: its IKE_AUTH carries INITIAL_CONTACT.
        let restarted = EnginePair(
            initiator: [
                try Fixtures.connection(
                    local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519",
                    esp: "aes256gcm16")
            ],
            responder: [], initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!, seeds: (77, 78))
        restarted.responder = before.responder
        restarted.run(restarted.initiator.initiate(connection: "c", now: 5), from: "initiator")
        let deleted = restarted.events("responder", .ikeDeleted)
        XCTAssertEqual(deleted.count, 1, "the stale IKE SA is gone")
        XCTAssertEqual(deleted.first?.detail, "the peer signalled INITIAL_CONTACT (it restarted)")
        XCTAssertEqual(restarted.events("responder", .childDeleted).count, 1, "with its CHILD SA")
        XCTAssertEqual(restarted.responder.sessionSummaries.count, 1, "only the new IKE SA remains")
        XCTAssertEqual(restarted.responder.counters["initial_contact_removed_ike_sa"], 1)
        // A second connection from the same peer while the first is up carries no INITIAL_CONTACT: nothing is removed.
        restarted.run(restarted.initiator.initiate(connection: "c", now: 6), from: "initiator")
        XCTAssertEqual(restarted.responder.sessionSummaries.count, 2)
        XCTAssertEqual(restarted.events("responder", .ikeDeleted).count, 1)
    }

    /// Many connections on one address pair, told apart by identity: every IKE_AUTH carries INITIAL_CONTACT (each
    /// initiator connection holds no other IKE SA), and the responder's half-open IKE SAs all carry the first
    /// connection of the pair until they authenticate. Whatever the order the peers authenticate in, nobody's
    /// INITIAL_CONTACT removes another's negotiation (it removed every half-open one before).
    func testInitialContactSparesOtherPeersHalfOpenIKESAsInEveryOrder() throws {
        let count = 4
        func orders(_ items: [Int]) -> [[Int]] {
            items.count <= 1 ? [items] : items.indices.flatMap { i in orders(Array(items[..<i] + items[(i + 1)...])).map { [items[i]] + $0 } }
        }
        for (round, order) in orders(Array(0..<count)).enumerated() {
            let initiators = try (0..<count).map {
                try Fixtures.connection(
                    name: "c\($0)", local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16",
                    localID: "peer\($0)@example.net", remoteID: "gateway@example.net")
            }
            let responders = try (0..<count).map {
                try Fixtures.connection(
                    name: "c\($0)", local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16",
                    localID: "gateway@example.net", remoteID: "peer\($0)@example.net")
            }
            let pair = EnginePair(
                initiator: initiators, responder: responders, initiatorAddress: IPAddress("192.0.2.1")!,
                responderAddress: IPAddress("192.0.2.2")!, seeds: (UInt64(100 + round), UInt64(200 + round)))
            pair.holding = true
            for index in 0..<count { pair.run(pair.initiator.initiate(connection: "c\(index)", now: 0), from: "initiator") }
            // IKE_SA_INIT requests to the responder, their answers back: the IKE_AUTH requests are then held.
            for _ in 0..<count { pair.release() }
            XCTAssertEqual(pair.held.count, count, "round \(round): IKE_SA_INIT responses")
            for _ in 0..<count { pair.release() }
            XCTAssertEqual(pair.held.count, count, "round \(round): IKE_AUTH requests")
            let requests = pair.held
            pair.held = order.map { requests[$0] }
            pair.holding = false
            pair.releaseAll()
            XCTAssertEqual(pair.events("initiator", .childEstablished).count, count, "round \(round), order \(order)")
            XCTAssertEqual(pair.events("responder", .childEstablished).count, count, "round \(round), order \(order)")
            XCTAssertEqual(pair.responder.counters["initial_contact_removed_ike_sa"] ?? 0, 0, "round \(round), order \(order)")
            XCTAssertEqual(
                Set(pair.responder.sessionSummaries.filter(\.established).map(\.connection)), Set((0..<count).map { "c\($0)" }),
                "round \(round), order \(order)")
        }
    }

    /// What INITIAL_CONTACT does remove: an authenticated IKE SA with the same two identities and addresses. One
    /// with the same identities at another address (another terminal the proxy speaks for under one identity)
    /// stays.
    func testInitialContactRemovesOnlyTheSameIdentitiesAtTheSameAddresses() throws {
        func initiator(at address: String) throws -> ConnectionConfiguration {
            try Fixtures.connection(
                local: address, remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16",
                localID: "peer@example.net", remoteID: "gateway@example.net")
        }
        let responder = try Fixtures.connection(
            local: "192.0.2.2", remote: nil, proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16",
            remoteTS: "0.0.0.0/0", localID: "gateway@example.net", remoteID: "peer@example.net")
        let first = EnginePair(
            initiator: [try initiator(at: "192.0.2.1")], responder: [responder], initiatorAddress: IPAddress("192.0.2.1")!,
            responderAddress: IPAddress("192.0.2.2")!)
        _ = try establish(first)
        // Another host under the same identity, at another address: its INITIAL_CONTACT leaves the first IKE SA alone.
        let elsewhere = EnginePair(
            initiator: [try initiator(at: "192.0.2.3")], responder: [], initiatorAddress: IPAddress("192.0.2.3")!,
            responderAddress: IPAddress("192.0.2.2")!, seeds: (31, 32))
        elsewhere.responder = first.responder
        elsewhere.run(elsewhere.initiator.initiate(connection: "c", now: 1), from: "initiator")
        XCTAssertEqual(elsewhere.events("responder", .childEstablished).count, 1)
        XCTAssertEqual(first.responder.sessionSummaries.filter(\.established).count, 2)
        XCTAssertEqual(first.responder.counters["initial_contact_removed_ike_sa"] ?? 0, 0)
        // The first host restarts at its own address: its old IKE SA goes, the other host's stays.
        let restarted = EnginePair(
            initiator: [try initiator(at: "192.0.2.1")], responder: [], initiatorAddress: IPAddress("192.0.2.1")!,
            responderAddress: IPAddress("192.0.2.2")!, seeds: (41, 42))
        restarted.responder = first.responder
        restarted.run(restarted.initiator.initiate(connection: "c", now: 2), from: "initiator")
        XCTAssertEqual(restarted.events("responder", .ikeDeleted).count, 1)
        XCTAssertEqual(first.responder.counters["initial_contact_removed_ike_sa"], 1)
        XCTAssertEqual(
            first.responder.sessionSummaries.filter(\.established).map(\.remote.address.description).sorted(), ["192.0.2.1", "192.0.2.3"])
    }

    func testScheduledChildRekeyRunsFromTick() throws {
        var a = try Fixtures.connection(local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        a.children[0].rekeyTime = 60
        let b = try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        let pair = EnginePair(initiator: [a], responder: [b], initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!)
        _ = try establish(pair)
        pair.advance(to: 59)
        XCTAssertTrue(pair.events("responder", .childRekeyed).isEmpty)
        pair.advance(to: 60)
        XCTAssertEqual(pair.events("responder", .childRekeyed).count, 1)
    }
}
