import XCTest

@testable import IKEv2

/// Inputs of the kinds behind published IKE vulnerabilities, built on the wire and handed to the engine: each is
/// answered with the right notify or counted as a drop, the engine lives on, and the SAs it already holds are
/// untouched. Each test names the CVE whose class it covers (the flaw was in that implementation, not here).
final class KnownCVEClassTests: XCTestCase {
    let helper = ForgedRequests.self

    /// strongSwan CVE-2023-41913 (a KE payload longer than the group's public value overflowed a buffer in
    /// charon-tkm): for each group, an IKE_SA_INIT whose KE data is 10,000 octets is answered INVALID_SYNTAX and
    /// leaves no half-open SA behind.
    func testCVE_2023_41913_OversizedKeyExchangeForEachGroupIsInvalidSyntax() throws {
        for (proposal, group) in [
            ("aes256gcm16-prfsha256-x25519", 31), ("aes256gcm16-prfsha256-ecp256", 19), ("aes256gcm16-prfsha384-ecp384", 20),
            ("aes256gcm16-prfsha512-ecp521", 21), ("aes256-sha256-modp2048", 14)
        ] {
            let pair = try Fixtures.pair(proposal: proposal, esp: "aes256gcm16")
            pair.holding = true
            pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
            let request = try XCTUnwrap(pair.held.first)
            let message = try IKEMessage.decode(request.payload)
            let payloads = message.payloads.map { payload -> Payload in
                guard case .keyExchange(var ke) = payload else { return payload }
                ke.data = [UInt8](repeating: 0x41, count: 10_000)
                return .keyExchange(ke)
            }
            let forged = IKEMessage(header: message.header, payloads: payloads).encode()
            let actions = pair.responder.receive(forged, from: request.source, to: request.destination, now: 0)
            let answer = try XCTUnwrap(actions.compactMap { if case .send(let d) = $0 { return d } else { return nil } }.first, "group \(group)")
            XCTAssertEqual(try IKEMessage.decode(answer.payload).payloads.notifies.map(\.type), [.invalidSyntax], "group \(group)")
            XCTAssertTrue(pair.responder.sessions.isEmpty, "group \(group): no half-open SA kept")
            XCTAssertEqual(pair.responder.counters["invalid_ke_value"], 1, "group \(group)")
        }
    }

    /// libreswan CVE-2023-38710 (a REKEY_SA notify naming protocol IKE, or none, crashed pluto): such a rekey, and
    /// one of an SPI nobody holds, is answered CHILD_SA_NOT_FOUND; the IKE SA and its CHILD SA stay.
    func testCVE_2023_38710_RekeyOfProtocolZeroOrIKEOrUnknownSPIIsChildSANotFound() throws {
        for (protocolID, spi) in [(ProtocolID.none, [UInt8]()), (.ike, [UInt8](repeating: 9, count: 8)), (.esp, [0xde, 0xad, 0xbe, 0xef])] {
            let (pair, session) = try helper.established()
            let request = pair.initiator.makeChildRequest(session: session, configuration: session.connection.children[0], rekeying: nil)
            var payloads = pair.initiator.childRequestPayloads(request, includeGroups: false)
            let ts = try XCTUnwrap(payloads.firstIndex { $0.type == .trafficSelectorInitiator })
            payloads.insert(.nonce(NoncePayload(request.nonce)), at: ts)
            payloads.insert(.notify(NotifyPayload(protocolID: protocolID, spi: spi, type: .rekeySA)), at: 0)
            let answer = try helper.send(payloads, exchange: .createChildSA, pair: pair, session: session)
            XCTAssertEqual(answer.notifies.map(\.type), [.childSANotFound], "protocol \(protocolID.rawValue)")
            XCTAssertEqual(pair.responder.sessions.values.first?.children.count, 1, "protocol \(protocolID.rawValue): the CHILD SA stays")
            helper.assertStillUp(pair)
        }
    }

    /// libreswan CVE-2023-23009 (a TS payload whose count and lengths disagree made pluto read past it): a count of
    /// 255 with one selector, and a selector whose length runs past the payload, are INVALID_SYNTAX.
    func testCVE_2023_23009_TrafficSelectorCountsAndLengthsThatDisagreeAreInvalidSyntax() throws {
        for body in [
            [255, 0, 0, 0] + Array(helper.selectors().dropFirst(4)),  // 255 announced, one there
            [1, 0, 0, 0, 7, 0, 0xff, 0xf0, 0, 0, 255, 255, 10, 0, 0, 1, 10, 0, 0, 1]  // a selector "65,520 octets" long
        ] as [[UInt8]] {
            let (pair, session) = try helper.established()
            let answer = try helper.send([helper.raw(.trafficSelectorInitiator, body)], exchange: .createChildSA, pair: pair, session: session)
            XCTAssertEqual(answer.notifies.map(\.type), [.invalidSyntax])
            XCTAssertTrue(pair.responder.sessions.isEmpty && pair.initiator.sessions.isEmpty, "INVALID_SYNTAX ends the IKE SA on both sides")
        }
    }

    /// A Delete followed by notifies, and the same CHILD SA deleted twice in one message: the SA goes once, the
    /// answer names it once, the IKE SA stays.
    func testDeleteWithTrailingNotifiesOrTwiceForOneSAIsHandledOnce() throws {
        let (pair, session) = try helper.established()
        let child = try XCTUnwrap(session.children.first)
        let delete = Payload.delete(.child([child.spiInbound]))
        let answer = try helper.send(
            [delete, delete, .notify(NotifyPayload(type: NotifyType(40_000))), .notify(NotifyPayload(type: .invalidSyntax))],
            exchange: .informational,
            pair: pair, session: session)
        XCTAssertEqual(answer.deletes.flatMap(\.childSPIs), [child.spiOutbound], "the responder's side of the pair, once")
        XCTAssertEqual(pair.events("responder", .childDeleted).count, 1)
        XCTAssertEqual(pair.responder.sessions.values.first?.children.count, 0)
        helper.assertStillUp(pair)
    }

    /// One SKF fragment of an empty INFORMATIONAL request (a liveness check) on the initiator's IKE SA, numbered
    /// as given, protected with the initiator's keys, handed to the responder; what the responder sent back.
    func fragment(_ number: UInt16, of total: UInt16, pair: EnginePair, session: IKESession, messageID: UInt32) throws -> [Datagram] {
        let protection = try XCTUnwrap(session.outgoingProtection)
        let header = session.header(exchange: .informational, messageID: messageID, response: false)
        let bytes = try ProtectedMessage.sealPart(
            header: header, payloadType: .encryptedFragment, next: .none, fragment: (number, total), inner: [], protection: protection,
            random: SeededRandom(seed: UInt64(number) << 16 | UInt64(total)))
        let to = Endpoint(pair.responderAddress, 500)
        let from = Endpoint(pair.initiatorAddress, 500)
        let sent = session.remote.port == 4500 ? [0, 0, 0, 0] + bytes : bytes
        return pair.responder.receive(
            sent, from: session.remote.port == 4500 ? Endpoint(from.address, 4500) : from,
            to: session.remote.port == 4500 ? Endpoint(to.address, 4500) : to, now: pair.now
        )
        .compactMap { if case .send(let datagram) = $0 { return datagram } else { return nil } }
    }

    /// libreswan CVE-2026-12413 (fragment numbers and totals pluto trusted): fragment number 0, a number past the
    /// total, a total of 0 and a total smaller than one already seen are discarded, unanswered and without using up
    /// the message ID; a larger total starts the reassembly over; the message completes from its genuine fragments.
    func testCVE_2026_12413_FragmentNumbersAndTotalsOutOfOrderAreDiscarded() throws {
        let (pair, session) = try helper.established()
        let id = session.nextRequestID
        session.nextRequestID &+= 1
        XCTAssertTrue(try fragment(0, of: 2, pair: pair, session: session, messageID: id).isEmpty, "number 0")
        XCTAssertTrue(try fragment(3, of: 2, pair: pair, session: session, messageID: id).isEmpty, "number past the total")
        XCTAssertTrue(try fragment(1, of: 0, pair: pair, session: session, messageID: id).isEmpty, "total 0")
        // The codec already refuses these three (an SKF payload's numbers are checked as it is decoded): dropped, counted.
        XCTAssertEqual(pair.responder.counters["malformed"], 3)
        XCTAssertTrue(try fragment(1, of: 3, pair: pair, session: session, messageID: id).isEmpty, "first of three")
        XCTAssertTrue(try fragment(2, of: 2, pair: pair, session: session, messageID: id).isEmpty, "an older, smaller cut")
        XCTAssertEqual(pair.responder.counters["fragments_discarded"], 1)
        XCTAssertTrue(try fragment(1, of: 4, pair: pair, session: session, messageID: id).isEmpty, "a larger total starts over")
        for number: UInt16 in 2...3 { XCTAssertTrue(try fragment(number, of: 4, pair: pair, session: session, messageID: id).isEmpty) }
        let answer = try fragment(4, of: 4, pair: pair, session: session, messageID: id)
        XCTAssertEqual(answer.count, 1, "the message, whole from its four fragments, is answered")
        XCTAssertEqual(pair.responder.sessions.values.first { $0.state == .established }?.expectedRequestID, id &+ 1)
    }

    /// libreswan CVE-2024-2357 (a PSK connection whose secret was missing crashed pluto): a connection with an
    /// empty pre-shared key neither proves itself with it nor accepts a peer's AUTH made with it: the IKE_AUTH
    /// fails with the reason logged, and the engine goes on.
    func testCVE_2024_2357_ConnectionWithoutPreSharedKeyAuthenticatesNobody() throws {
        for emptyOnResponderOnly in [true, false] {
            let a = "192.0.2.1"
            let b = "192.0.2.2"
            let pair = EnginePair(
                initiator: [
                    try Fixtures.connection(
                        local: a, remote: b, proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16",
                        psk: emptyOnResponderOnly ? Fixtures.psk : KeyMaterial([]))
                ],
                responder: [
                    try Fixtures.connection(local: b, remote: a, proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16", psk: KeyMaterial([]))
                ],
                initiatorAddress: IPAddress(a)!, responderAddress: IPAddress(b)!)
            pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
            XCTAssertTrue(pair.events("responder", .childEstablished).isEmpty && pair.events("initiator", .childEstablished).isEmpty)
            XCTAssertTrue(
                pair.logs.contains { $0.line.contains("has no pre-shared key") }
                    || pair.events.contains { $0.event.detail?.contains("has no pre-shared key") ?? false },
                "the log or the failure event says why (\(emptyOnResponderOnly ? "responder" : "both") empty)")
            pair.run(pair.initiator.initiate(connection: "c", now: 1), from: "initiator")  // and the engines go on
        }
    }

    /// strongSwan CVE-2021-41990 (an RSASSA-PSS AlgorithmIdentifier with an absurd salt length overflowed in
    /// gmp): salt lengths of 2^31 - 1, of a negative number and of an integer 60 octets long are refused with a
    /// reason, never used.
    func testCVE_2021_41990_RSAPSSWithAbsurdSaltLengthIsRefused() throws {
        let genuine = RSAPSSParameters(hash: .sha256).algorithmIdentifier
        let saltField: [UInt8] = [0xa2, 0x03, 0x02, 0x01, 0x20]
        XCTAssertEqual(Array(genuine.suffix(5)), saltField, "the genuine identifier ends in its salt length, 32")
        XCTAssertEqual(SignatureAlgorithmIdentifier(der: genuine), .rsaPSSSHA256)
        for (what, integer) in [
            ("2^31 - 1", [0x7f, 0xff, 0xff, 0xff]), ("negative", [0xff, 0xff, 0xff, 0xe0]), ("60 octets", [0x01] + [UInt8](repeating: 0, count: 59))
        ] as [(String, [UInt8])] {
            let field: [UInt8] = [0xa2, UInt8(integer.count + 2), 0x02, UInt8(integer.count)] + integer
            var der = Array(genuine.dropLast(5)) + field
            let delta = field.count - saltField.count
            der[1] = UInt8(Int(der[1]) + delta)  // AlgorithmIdentifier
            der[14] = UInt8(Int(der[14]) + delta)  // RSASSA-PSS-params
            XCTAssertNil(SignatureAlgorithmIdentifier(der: der), what)
            guard case .failure(let reason)? = RSAPSSParameters.parse(algorithmIdentifier: der) else { return XCTFail("\(what): not refused") }
            XCTAssertTrue(SignatureAlgorithmIdentifier.unsupported(der).contains("RSASSA-PSS") || !reason.description.isEmpty, what)
        }
    }
}
