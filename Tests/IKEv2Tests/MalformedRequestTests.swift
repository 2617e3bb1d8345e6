import XCTest

@testable import IKEv2

/// Malformed requests on an authenticated IKE SA (RFC 7296 sections 2.5 and 2.21.3): each one passes the
/// integrity check, so it is answered at once, the answer uses up its message ID, and the error decides what
/// follows: UNSUPPORTED_CRITICAL_PAYLOAD and TS_UNACCEPTABLE leave the IKE SA up (the next request is answered);
/// INVALID_SYNTAX ends it on both sides, and a new one can be made.
final class MalformedRequestTests: XCTestCase {
    func established() throws -> (EnginePair, IKESession) { try ForgedRequests.established() }
    func send(_ payloads: [Payload], exchange: ExchangeType, pair: EnginePair, session: IKESession) throws -> [Payload] {
        try ForgedRequests.send(payloads, exchange: exchange, pair: pair, session: session)
    }
    func raw(_ type: PayloadType, _ body: [UInt8]) -> Payload { ForgedRequests.raw(type, body) }
    func selectors(type: UInt8 = 7, length: UInt8 = 16) -> [UInt8] { ForgedRequests.selectors(type: type, length: length) }
    func assertStillUp(_ pair: EnginePair, file: StaticString = #filePath, line: UInt = #line) {
        ForgedRequests.assertStillUp(pair, file: file, line: line)
    }

    func testUnknownCriticalPayloadIsAnsweredAndUsesUpItsMessageID() throws {
        let (pair, session) = try established()
        let answer = try send(
            [.unknown(UnknownPayload(type: PayloadType(rawValue: 222), critical: true, body: [1, 2]))], exchange: .informational, pair: pair,
            session: session)
        XCTAssertEqual(answer.notifies.map(\.type), [.unsupportedCriticalPayload])
        XCTAssertEqual(answer.notifies.first?.data, [222], "the notify names the payload type")
        assertStillUp(pair)
    }

    func testRetransmittedMalformedRequestGetsTheSameAnswer() throws {
        let (pair, session) = try established()
        let sentBefore = pair.wire.count
        _ = try send(
            [.unknown(UnknownPayload(type: PayloadType(rawValue: 222), critical: true, body: []))], exchange: .informational, pair: pair,
            session: session)
        let request = try XCTUnwrap(pair.wire[sentBefore...].first { $0.destination.address == pair.responderAddress })
        let answer = try XCTUnwrap(pair.wire[sentBefore...].last { $0.destination.address == pair.initiatorAddress })
        let again = pair.responder.receive(request.payload, from: request.source, to: request.destination, now: pair.now)
        XCTAssertEqual(again.compactMap { if case .send(let datagram) = $0 { return datagram.payload } else { return nil } }, [answer.payload])
        XCTAssertEqual(pair.responder.counters["retransmitted_request"], 1)
    }

    func testUnknownSelectorTypeInCreateChildIsTSUnacceptableAndTheIKESAStays() throws {
        let (pair, session) = try established()
        let answer = try send(
            [raw(.trafficSelectorInitiator, selectors(type: 13)), raw(.trafficSelectorResponder, selectors())], exchange: .createChildSA,
            pair: pair, session: session)
        XCTAssertEqual(answer.notifies.map(\.type), [.tsUnacceptable])
        assertStillUp(pair)
    }

    /// Each kind of malformed request: INVALID_SYNTAX, the IKE SA closed on both sides, a new one possible.
    func testMalformedRequestsAreInvalidSyntaxAndEndTheIKESAOnBothSides() throws {
        let kinds: [(String, ExchangeType, [Payload])] = [
            ("Delete with SPI size 255", .informational, [raw(.delete, [3, 255, 0, 1, 1, 2, 3, 4])]),
            ("Delete with fewer SPIs than announced", .informational, [raw(.delete, [3, 4, 0, 2, 1, 2, 3, 4])]),
            ("traffic selector of length 17", .createChildSA, [raw(.trafficSelectorInitiator, selectors(length: 17))]),
            ("8-octet nonce", .createChildSA, [raw(.nonce, [UInt8](repeating: 7, count: 8))]),
            ("notify with a length past its payload", .informational, [raw(.notify, [0, 0, 0])]),
            // Well-formed but incomplete or misplaced: the exchange's checks, not the codec's, with the same outcome.
            ("CREATE_CHILD_SA with neither SA nor nonce", .createChildSA, [.notify(NotifyPayload(type: NotifyType(40_000)))]),
            ("an exchange type no request may have", ExchangeType(rawValue: 99), [.notify(NotifyPayload(type: NotifyType(40_000)))]),
            // RFC 9242: IKE_INTERMEDIATE comes before IKE_AUTH only.
            ("IKE_INTERMEDIATE on an established IKE SA", .ikeIntermediate, [.keyExchange(KeyExchangePayload(group: 36, data: [1]))]),
            // RFC 9370 section 2.2.4: an IKE_FOLLOWUP_KE request carries the responder's link.
            ("IKE_FOLLOWUP_KE without ADDITIONAL_KEY_EXCHANGE", .ikeFollowupKE, [.keyExchange(KeyExchangePayload(group: 36, data: [1]))])
        ]
        for (name, exchange, payloads) in kinds {
            let (pair, session) = try established()
            let answer = try send(payloads, exchange: exchange, pair: pair, session: session)
            XCTAssertEqual(answer.notifies.map(\.type), [.invalidSyntax], name)
            XCTAssertEqual(pair.responder.counters["invalid_syntax_sent"], 1, name)
            XCTAssertEqual(pair.initiator.counters["invalid_syntax_received"], 1, name)
            XCTAssertEqual(pair.events("responder", .ikeDeleted).count, 1, "\(name): the responder closed the IKE SA")
            XCTAssertEqual(pair.events("initiator", .ikeDeleted).count, 1, "\(name): the initiator closed it on the answer")
            XCTAssertEqual(pair.events("responder", .childDeleted).count, 1, "\(name): and its CHILD SA is reported gone")
            XCTAssertTrue(pair.initiator.sessions.isEmpty && pair.responder.sessions.isEmpty, name)
            pair.run(pair.initiator.initiate(connection: "c", now: pair.now), from: "initiator")
            XCTAssertEqual(pair.events("responder", .childEstablished).count, 2, "\(name): a new IKE SA comes up")
        }
    }

    /// RFC 9370 section 2.2.4: a link the responder does not hold (its state lost or expired, or never made) is
    /// answered STATE_NOT_FOUND, which is not fatal: the message ID is used up and the IKE SA stays.
    func testFollowUpForAnUnknownLinkIsStateNotFoundAndLeavesTheIKESAUp() throws {
        let (pair, session) = try established()
        let answer = try send(
            [
                .keyExchange(KeyExchangePayload(group: 36, data: [1])),
                .notify(NotifyPayload(type: .additionalKeyExchange, data: [1, 2, 3, 4]))
            ], exchange: .ikeFollowupKE, pair: pair, session: session)
        XCTAssertEqual(answer.notifies.map(\.type), [.stateNotFound])
        XCTAssertEqual(pair.responder.counters["follow_up_refused"], 1)
        assertStillUp(pair)
    }

    func testGarbageThatFailsTheIntegrityCheckIsStillDroppedSilently() throws {
        let (pair, _) = try established()
        pair.holding = true
        pair.run(pair.initiator.checkLiveness(connection: "c", now: pair.now), from: "initiator")
        let request = try XCTUnwrap(pair.held.first)
        var bytes = request.payload
        bytes[bytes.count - 1] ^= 0x01
        let actions = pair.responder.receive(bytes, from: request.source, to: request.destination, now: pair.now)
        XCTAssertFalse(
            actions.contains { if case .send = $0 { return true } else { return false } }, "section 2.21.2: no answer to what fails the ICV")
        XCTAssertEqual(pair.responder.counters["integrity"], 1)
        pair.holding = false
        pair.releaseAll()
        XCTAssertNil(pair.initiator.sessions.values.first?.outstanding, "the genuine request after it is answered: its message ID was not used up")
    }
}

/// Requests made by hand on an established IKE SA between two engines in memory: protected with the initiator's
/// keys like any request, but with whatever payloads (raw ones where they must be malformed) the test gives.
enum ForgedRequests {
    static func established() throws -> (EnginePair, IKESession) {
        let pair = try Fixtures.pair()
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        let session = try XCTUnwrap(pair.initiator.sessions.values.first { $0.state == .established })
        return (pair, session)
    }

    /// Sends `payloads` (raw where malformed) as a request of `exchange` on the initiator's IKE SA; returns the
    /// payloads of the responder's answer, decrypted with the initiator's keys.
    static func send(_ payloads: [Payload], exchange: ExchangeType, pair: EnginePair, session: IKESession) throws -> [Payload] {
        let protection = try XCTUnwrap(session.incomingProtection)
        let sentBefore = pair.wire.count
        pair.run(
            pair.initiator.sendRequest(session: session, exchange: exchange, payloads: payloads, context: .liveness, now: pair.now), from: "initiator"
        )
        let answer = try XCTUnwrap(pair.wire[sentBefore...].last { $0.destination.address == pair.initiatorAddress }, "the request was answered")
        let bytes = Array(answer.payload.dropFirst(answer.destination.port == 4500 ? 4 : 0))
        let message = try IKEMessage.decode(bytes)
        XCTAssertTrue(message.header.isResponse)
        return try ProtectedMessage.open(bytes, message: message, protection: protection)
    }

    static func raw(_ type: PayloadType, _ body: [UInt8]) -> Payload { .unknown(UnknownPayload(type: type, critical: false, body: body)) }

    /// An IPv4 traffic selector payload's body with one selector of `type` and `length` (16 is right for IPv4).
    static func selectors(type: UInt8 = 7, length: UInt8 = 16) -> [UInt8] {
        [1, 0, 0, 0, type, 0, 0, length, 0, 0, 255, 255, 10, 0, 0, 1, 10, 0, 0, 1] + [UInt8](repeating: 0, count: max(0, Int(length) - 16))
    }

    /// The IKE SA stays: the next request on it is answered and nothing is dropped as out of the window.
    static func assertStillUp(_ pair: EnginePair, file: StaticString = #filePath, line: UInt = #line) {
        let answeredBefore = pair.logs.count
        pair.run(pair.initiator.checkLiveness(connection: "c", now: pair.now), from: "initiator")
        XCTAssertFalse(
            pair.drops.contains { if case .messageIDOutOfWindow = $0.reason { return true } else { return false } },
            "the answer used up the message ID", file: file, line: line)
        XCTAssertEqual(pair.responder.sessions.values.filter { $0.state == .established }.count, 1, file: file, line: line)
        XCTAssertNil(pair.initiator.sessions.values.first?.outstanding, "the liveness check was answered", file: file, line: line)
        XCTAssertGreaterThanOrEqual(pair.logs.count, answeredBefore, file: file, line: line)
    }
}
