import XCTest

@testable import IKEv2

/// Hostile and broken input: typed errors or counted drops, never a crash, never lost state.
final class MalformedMessageTests: XCTestCase {
    func established() throws -> EnginePair {
        let pair = try Fixtures.pair()
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertEqual(pair.events("responder", .childEstablished).count, 1)
        return pair
    }

    var a: Endpoint { Endpoint(IPAddress("192.0.2.1")!, 500) }
    var b: Endpoint { Endpoint(IPAddress("192.0.2.2")!, 500) }

    func testTruncatedMessagesAreTypedErrors() throws {
        let bytes = try CodecTests.fixture("strongswan-ike_sa_init-request")
        for cut in [0, 10, 27, 28, 40, bytes.count - 1] {
            XCTAssertThrowsError(try IKEMessage.decode(Array(bytes.prefix(cut))), "cut at \(cut)") { error in
                XCTAssertNotNil(error as? IKEDecodingError)
            }
        }
        // Header length says more than arrived, and payload length runs past its container.
        var longer = bytes
        longer[27] &+= 4
        XCTAssertThrowsError(try IKEMessage.decode(longer)) {
            XCTAssertEqual($0 as? IKEDecodingError, .messageLengthMismatch(declared: bytes.count + 4, actual: bytes.count))
        }
        var payloadTooLong = bytes
        payloadTooLong[31] &+= 200
        XCTAssertThrowsError(try IKEMessage.decode(payloadTooLong)) {
            guard case .lengthExceedsContainer? = $0 as? IKEDecodingError else { return XCTFail("\($0)") }
        }
        var payloadTooShort = bytes
        payloadTooShort[30] = 0
        payloadTooShort[31] = 2
        XCTAssertThrowsError(try IKEMessage.decode(payloadTooShort)) {
            guard case .lengthTooShort? = $0 as? IKEDecodingError else { return XCTFail("\($0)") }
        }
        var version = bytes
        version[17] = 0x30
        XCTAssertThrowsError(try IKEMessage.decode(version)) { XCTAssertEqual($0 as? IKEDecodingError, .invalidMajorVersion(3)) }
    }

    func testMalformedInitRequestGetsNotifyAndIsCounted() throws {
        let pair = try Fixtures.pair()
        var bytes = try CodecTests.fixture("strongswan-ike_sa_init-request")
        bytes[31] &+= 200
        let actions = pair.responder.receive(bytes, from: a, to: b, now: 0)
        XCTAssertTrue(actions.contains { if case .drop(.malformed) = $0 { return true } else { return false } })
        let reply = try XCTUnwrap(actions.compactMap { if case .send(let d) = $0 { return d } else { return nil } }.first)
        XCTAssertEqual(try IKEMessage.decode(reply.payload).payloads.notifies.first?.type, .invalidSyntax)
        XCTAssertEqual(pair.responder.counters["malformed"], 1)
    }

    func testUnknownCriticalPayloadInInitRequestIsAnswered() throws {
        let pair = try Fixtures.pair()
        let message = IKEMessage(
            header: IKEHeader(
                spiInitiator: IKESPI(42), spiResponder: .zero, nextPayload: .none, exchangeType: .ikeSAInit,
                flags: [.initiator], messageID: 0),
            payloads: [.unknown(UnknownPayload(type: PayloadType(rawValue: 222), critical: true, body: []))])
        let actions = pair.responder.receive(message.encode(), from: a, to: b, now: 0)
        let reply = try XCTUnwrap(actions.compactMap { if case .send(let d) = $0 { return d } else { return nil } }.first)
        let notify = try XCTUnwrap(try IKEMessage.decode(reply.payload).payloads.notifies.first)
        XCTAssertEqual(notify.type, .unsupportedCriticalPayload)
        XCTAssertEqual(notify.data, [222])
    }

    func testBadSPIIsDropped() throws {
        let pair = try established()
        let last = try XCTUnwrap(pair.wire.last(where: { $0.destination.address == pair.responderAddress }))
        var bytes = Array(last.payload.dropFirst(last.destination.port == 4500 ? 4 : 0))
        bytes[8] ^= 0xff  // responder SPI
        let actions = pair.responder.receive(bytes, from: last.source, to: last.destination, now: 1)
        XCTAssertTrue(actions.contains { if case .drop(.unknownSPI) = $0 { return true } else { return false } })
        XCTAssertEqual(pair.responder.counters["unknown_spi"], 1)
    }

    func testBadIntegrityIsDroppedAndStateIsKept() throws {
        let pair = try established()
        let before = pair.responder.sessionSummaries
        // A fresh liveness request from the initiator, corrupted on the wire.
        let actions = pair.initiator.checkLiveness(connection: "c", now: 1)
        guard case .send(var datagram)? = actions.first else { return XCTFail("no request") }
        datagram.payload[datagram.payload.count - 3] ^= 0x80
        let result = pair.responder.receive(datagram.payload, from: datagram.source, to: datagram.destination, now: 1)
        XCTAssertEqual(result, [.drop(.integrityCheckFailed)])
        XCTAssertEqual(pair.responder.sessionSummaries, before)
        // The retransmission (uncorrupted) is then accepted with the same message ID.
        pair.advance(to: 2.5)
        XCTAssertEqual(pair.responder.counters["integrity"], 1)
        XCTAssertNil(pair.drops.first { if case .integrityCheckFailed = $0.reason { return true } else { return false } })
    }

    func testDuplicateAndOutOfWindowMessageIDs() throws {
        let pair = try established()
        let actions = pair.initiator.checkLiveness(connection: "c", now: 1)
        guard case .send(let request)? = actions.first else { return XCTFail("no request") }
        let first = pair.responder.receive(request.payload, from: request.source, to: request.destination, now: 1)
        let duplicate = pair.responder.receive(request.payload, from: request.source, to: request.destination, now: 1)
        XCTAssertEqual(
            first.compactMap { if case .send(let d) = $0 { return d } else { return nil } },
            duplicate.compactMap { if case .send(let d) = $0 { return d } else { return nil } },
            "a duplicate request is answered with the cached response")
        XCTAssertEqual(pair.responder.counters["retransmitted_request"], 1)

        // A request two IDs ahead of the window.
        let session = try XCTUnwrap(pair.initiator.sessions.values.first)
        session.nextRequestID += 2
        session.outstanding = nil
        guard case .send(let ahead)? = pair.initiator.checkLiveness(connection: "c", now: 2).first else { return XCTFail() }
        let result = pair.responder.receive(ahead.payload, from: ahead.source, to: ahead.destination, now: 2)
        guard case .drop(.messageIDOutOfWindow(let received, let expected))? = result.first else { return XCTFail("\(result)") }
        XCTAssertEqual(received, expected + 2)

        // A response nobody asked for.
        let stale = first.compactMap { if case .send(let d) = $0 { return d } else { return nil } }[0]
        let unexpected = pair.initiator.receive(stale.payload, from: stale.source, to: stale.destination, now: 2)
        guard case .drop(.unexpectedResponse)? = unexpected.first else { return XCTFail("\(unexpected)") }
    }

    func testESPAndKeepalivesOnPort4500AreNotIKE() throws {
        let pair = try Fixtures.pair()
        let from = Endpoint(IPAddress("192.0.2.1")!, 4500)
        let to = Endpoint(IPAddress("192.0.2.2")!, 4500)
        XCTAssertEqual(pair.responder.receive([0xff], from: from, to: to, now: 0), [])
        XCTAssertEqual(pair.responder.receive([0, 0, 1, 0, 0, 0, 0, 1, 9, 9], from: from, to: to, now: 0), [.drop(.espOnIKEPort)])
    }

    /// Random corruption of real messages must never trap, whatever the engine state.
    func testRandomMutationsNeverCrash() throws {
        let pair = try established()
        let corpus =
            try ["strongswan-ike_sa_init-request", "strongswan-ike_auth-request", "strongswan-ike_sa_init-response"]
            .map(CodecTests.fixture) + pair.wire.map { Array($0.payload.dropFirst($0.destination.port == 4500 ? 4 : 0)) }
        let random = SeededRandom(seed: 77)
        for round in 0..<3000 {
            var bytes = corpus[round % corpus.count]
            let r = random.bytes(4)
            switch r[0] % 3 {
            case 0: bytes = Array(bytes.prefix(Int(r[1]) * bytes.count / 256))
            case 1: if !bytes.isEmpty { bytes[Int(r[1]) * bytes.count / 256] ^= r[2] | 1 }
            default: if bytes.count > 30 { bytes[28 + Int(r[1]) % 4] = r[2] }
            }
            _ = try? IKEMessage.decode(bytes)
            _ = pair.responder.receive(bytes, from: a, to: b, now: 3)
        }
        XCTAssertGreaterThan(pair.responder.counters.values.reduce(0, +), 100)
        XCTAssertEqual(pair.responder.sessionSummaries.filter(\.established).count, 1, "the established SA survives")
    }
}
