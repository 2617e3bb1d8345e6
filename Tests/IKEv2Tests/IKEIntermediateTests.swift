import Foundation
import XCTest

@testable import IKEv2

/// IKE_INTERMEDIATE (RFC 9242) with RFC 9370's additional key exchanges between two engines, each side
/// initiating, with one and with two of them; what a responder answers to a missing, extra or wrong one.
final class IKEIntermediateTests: XCTestCase {
    static let a = "192.0.2.1"
    static let b = "192.0.2.2"

    func pair(_ proposal: String, responder: String? = nil, fragmentSize: Int? = nil) throws -> EnginePair {
        var settings = EngineSettings()
        if let fragmentSize { settings.fragmentSize = fragmentSize }
        return EnginePair(
            initiator: [try Fixtures.connection(local: Self.a, remote: Self.b, proposal: proposal, esp: "aes256gcm16")],
            responder: [try Fixtures.connection(local: Self.b, remote: Self.a, proposal: responder ?? proposal, esp: "aes256gcm16")],
            initiatorAddress: IPAddress(Self.a)!, responderAddress: IPAddress(Self.b)!, responderSettings: settings,
            initiatorSettings: settings)
    }

    /// The exchange type and message ID of each message on the link, and whether it was a fragment.
    func exchanges(_ pair: EnginePair) -> [(ExchangeType, UInt32, Bool, fragment: Bool)] {
        pair.wire.compactMap { datagram in
            let marker = datagram.source.port == 4500 || datagram.destination.port == 4500
            guard let message = try? IKEMessage.decode(Array(datagram.payload.dropFirst(marker ? 4 : 0))) else { return nil }
            var fragment = false
            if case .encryptedFragment? = message.payloads.last { fragment = true }
            return (message.header.exchangeType, message.header.messageID, message.header.isResponse, fragment)
        }
    }

    func session(_ engine: IKEEngine) throws -> IKESession { try XCTUnwrap(engine.sessions.values.first) }

    func testOneAndTwoAdditionalKeyExchangesEachSideInitiating() throws {
        for (proposal, count) in [("aes256gcm16-prfsha256-x25519-ke1_mlkem768", 1), ("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024", 2)] {
            for initiatorSide in ["initiator", "responder"] {
                let pair = try pair(proposal)
                let engine = initiatorSide == "initiator" ? pair.initiator : pair.responder
                pair.run(engine.initiate(connection: "c", now: 0), from: initiatorSide)
                let context = "\(proposal), \(initiatorSide) initiating"
                XCTAssertEqual(pair.events.filter { $0.event.kind == .childEstablished }.count, 2, context)
                XCTAssertEqual(pair.drops.count, 0, "\(context): \(pair.drops)")
                let established = pair.events.first { $0.event.kind == .ikeEstablished }?.event
                XCTAssertEqual(established?.ikeSuite?.name, proposal, context)
                for side in [pair.initiator, pair.responder] {
                    let held = try session(side)
                    XCTAssertEqual(held.intermediateExchanges, count, context)
                    XCTAssertEqual(held.pendingKeyExchanges, [], context)
                }
                XCTAssertEqual(try session(pair.initiator).keys, try session(pair.responder).keys, "\(context): the same final keys")
                // IKE_SA_INIT (0), one IKE_INTERMEDIATE per additional key exchange (1...n), then IKE_AUTH (n + 1).
                var seen: [String] = []
                for message in exchanges(pair).map({ "\($0.0) \($0.1) \($0.2 ? "response" : "request")" }) where seen.last != message {
                    seen.append(message)  // fragments of one message count once
                }
                XCTAssertEqual(
                    seen,
                    ["IKE_SA_INIT 0 request", "IKE_SA_INIT 0 response"]
                        + (1...count).flatMap { ["IKE_INTERMEDIATE \($0) request", "IKE_INTERMEDIATE \($0) response"] }
                        + ["IKE_AUTH \(count + 1) request", "IKE_AUTH \(count + 1) response"], context)
            }
        }
    }

    /// ML-KEM-1024's 1,568-octet key and ciphertext do not fit a 1,280-octet datagram: IKE_INTERMEDIATE goes in
    /// SKF fragments (RFC 7383), and IntAuth is computed over each message whole, as if unfragmented.
    func testLargeSharesTravelInFragmentsAndStillAuthenticate() throws {
        let pair = try pair("aes256gcm16-prfsha256-x25519-ke1_mlkem1024", fragmentSize: 1280)
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertEqual(pair.events.filter { $0.event.kind == .childEstablished }.count, 2)
        XCTAssertGreaterThanOrEqual(exchanges(pair).filter { $0.0 == .ikeIntermediate && $0.fragment }.count, 4, "both messages cut")
        XCTAssertEqual(try session(pair.initiator).intermediateExchanges, 1)
    }

    /// Additional key exchanges the two sides do not share: a responder that does not run them answers a
    /// peer that requires one NO_PROPOSAL_CHOSEN; one that makes it optional goes without IKE_INTERMEDIATE.
    func testOptionalAndUnsharedAdditionalKeyExchanges() throws {
        let optional = try pair("aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none", responder: "aes256gcm16-prfsha256-x25519")
        optional.run(optional.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertEqual(optional.events.filter { $0.event.kind == .childEstablished }.count, 2)
        XCTAssertFalse(exchanges(optional).contains { $0.0 == .ikeIntermediate })
        XCTAssertEqual(try session(optional.initiator).intAuth, [], "no IKE_INTERMEDIATE: RFC 7296's signed octets")

        let required = try pair("aes256gcm16-prfsha256-x25519-ke1_mlkem768", responder: "aes256gcm16-prfsha256-x25519")
        required.run(required.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertEqual(required.events.map(\.event.kind), [.ikeFailed])
    }

    /// RFC 9370 section 2.2.1: additional key exchanges only between two sides that both announced
    /// INTERMEDIATE_EXCHANGE_SUPPORTED. A request without it gets NO_PROPOSAL_CHOSEN from a responder that
    /// would choose one; a responder that chose one without announcing it fails the initiator's IKE SA.
    func testAdditionalKeyExchangesNeedIntermediateExchangeSupportedFromBothSides() throws {
        func withoutAnnouncement(_ datagram: Datagram) throws -> Datagram {
            let message = try IKEMessage.decode(datagram.payload)
            let payloads = message.payloads.filter { if case .notify(let n) = $0 { n.type != .intermediateExchangeSupported } else { true } }
            XCTAssertEqual(payloads.count, message.payloads.count - 1, "the announcement was there")
            var stripped = datagram
            stripped.payload = IKEMessage(header: message.header, payloads: payloads).encode()
            return stripped
        }
        let proposal = "aes256gcm16-prfsha256-x25519-ke1_mlkem768"
        let request = try pair(proposal)
        request.holding = true
        request.run(request.initiator.initiate(connection: "c", now: 0), from: "initiator")
        let stripped = try withoutAnnouncement(request.held.removeFirst())
        let answer = request.responder.receive(stripped.payload, from: stripped.source, to: stripped.destination, now: 0)
        let sent = try answer.compactMap { if case .send(let d) = $0 { try IKEMessage.decode(d.payload) } else { nil } }
        XCTAssertEqual(sent.first?.payloads.notifies.map(\.type), [.noProposalChosen])
        XCTAssertTrue(request.responder.sessionSummaries.isEmpty)

        let response = try pair(proposal)
        response.holding = true
        response.run(response.initiator.initiate(connection: "c", now: 0), from: "initiator")
        response.release()  // the request; the response is held
        let answered = try withoutAnnouncement(response.held.removeFirst())
        response.holding = false
        response.run(
            response.initiator.receive(answered.payload, from: answered.source, to: answered.destination, now: 0), from: "initiator")
        XCTAssertTrue(
            response.events.contains {
                $0.side == "initiator" && $0.event.kind == .ikeFailed && ($0.event.detail ?? "").contains("did not announce IKE_INTERMEDIATE")
            }, "\(response.events.map(\.event.detail))")
        XCTAssertFalse(exchanges(response).contains { $0.0 == .ikeIntermediate })
    }

    // MARK: Malformed and unexpected exchanges

    /// Runs IKE_SA_INIT and holds the first protected request on the link.
    func holdAfterInit(_ pair: EnginePair) throws -> IKESession {
        pair.holding = true
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        pair.release()  // IKE_SA_INIT request
        pair.release()  // its response; the initiator's next request is held
        XCTAssertEqual(pair.held.count, 1)
        pair.held = []
        return try session(pair.initiator)
    }

    /// The initiator sends, with the message ID `messageID`, what `send` makes; the responder's answer comes back.
    func resend(_ pair: EnginePair, _ session: IKESession, messageID: UInt32, _ send: () -> [EngineAction]) {
        session.outstanding = nil
        session.nextRequestID = messageID
        pair.holding = false
        pair.run(send(), from: "initiator")
    }

    func assertRefused(_ pair: EnginePair, _ reason: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(pair.responder.counters["intermediate_refused"], 1, file: file, line: line)
        XCTAssertTrue(pair.responder.sessionSummaries.isEmpty, "the half-open IKE SA is gone", file: file, line: line)
        XCTAssertTrue(
            pair.events.contains { $0.side == "responder" && $0.event.kind == .ikeFailed && ($0.event.detail ?? "").contains(reason) },
            "\(pair.events.map(\.event.detail))", file: file, line: line)
        XCTAssertTrue(
            pair.events.contains { $0.side == "initiator" && $0.event.kind == .ikeFailed }, "INVALID_SYNTAX ends it", file: file, line: line)
    }

    func testIKEAuthBeforeTheAdditionalKeyExchangeIsRefused() throws {
        let pair = try pair("aes256gcm16-prfsha256-x25519-ke1_mlkem768")
        let session = try holdAfterInit(pair)
        session.pendingKeyExchanges = []
        resend(pair, session, messageID: 1) { pair.initiator.sendAuthRequest(session: session, now: 0) }
        assertRefused(pair, "IKE_AUTH before the additional key exchange ML-KEM-768")
    }

    func testAnExtraIKEIntermediateIsRefused() throws {
        // After the one additional key exchange, a second IKE_INTERMEDIATE instead of IKE_AUTH.
        let hybrid = try pair("aes256gcm16-prfsha256-x25519-ke1_mlkem768")
        hybrid.holding = true
        hybrid.run(hybrid.initiator.initiate(connection: "c", now: 0), from: "initiator")
        for _ in 0..<4 { hybrid.release() }  // IKE_SA_INIT and IKE_INTERMEDIATE, both ways; IKE_AUTH is held
        XCTAssertEqual(try session(hybrid.responder).intermediateExchanges, 1)
        hybrid.held = []
        let session = try self.session(hybrid.initiator)
        session.pendingKeyExchanges = [.mlkem768]
        resend(hybrid, session, messageID: 2) { hybrid.initiator.sendNextIntermediateOrAuth(session: session, now: 0) }
        assertRefused(hybrid, "no additional key exchange is left to run")

        // No additional key exchange chosen at all.
        let plain = try pair("aes256gcm16-prfsha256-x25519")
        let plainSession = try holdAfterInit(plain)
        plainSession.pendingKeyExchanges = [.mlkem768]
        resend(plain, plainSession, messageID: 1) { plain.initiator.sendNextIntermediateOrAuth(session: plainSession, now: 0) }
        assertRefused(plain, "no additional key exchange is left to run")
    }

    func testAKEForAnotherMethodOrOfTheWrongLengthIsRefused() throws {
        let other = try pair("aes256gcm16-prfsha256-x25519-ke1_mlkem768")
        let session = try holdAfterInit(other)
        session.pendingKeyExchanges = [.mlkem1024]
        resend(other, session, messageID: 1) { other.initiator.sendNextIntermediateOrAuth(session: session, now: 0) }
        assertRefused(other, "KE for method 37 where ML-KEM-768 is due")

        for length in [0, 1183, 1185] {
            let short = try pair("aes256gcm16-prfsha256-x25519-ke1_mlkem768")
            let held = try holdAfterInit(short)
            short.holding = false
            let header = held.header(exchange: .ikeIntermediate, messageID: 1, response: false)
            let bytes = try ProtectedMessage.seal(
                header: header, payloads: [.keyExchange(KeyExchangePayload(group: 36, data: Array(repeating: 7, count: length)))],
                protection: try XCTUnwrap(held.outgoingProtection), random: SeededRandom(seed: 3))
            held.outstanding = OutstandingRequest(
                messageID: 1, datagrams: [], context: .ikeIntermediate(KeyExchangeMethod.mlkem768.initiate()), attempts: 1, nextRetransmitAt: 99)
            short.run(
                [.send(short.initiator.makeDatagram(bytes, from: held.local, to: held.remote))], from: "initiator")
            assertRefused(short, "the KE holds no valid ML-KEM-768 share (\(length) octets)")
        }
    }

    func testTheInitiatorRefusesAResponderShareOfTheWrongLength() throws {
        let pair = try pair("aes256gcm16-prfsha256-x25519-ke1_mlkem768")
        let session = try holdAfterInit(pair)
        let responderSession = try self.session(pair.responder)
        let initiation = KeyExchangeMethod.mlkem768.initiate()
        session.outstanding = OutstandingRequest(
            messageID: 1, datagrams: [], context: .ikeIntermediate(initiation), attempts: 1, nextRetransmitAt: 99)
        session.nextRequestID = 2
        let header = responderSession.header(exchange: .ikeIntermediate, messageID: 1, response: true)
        let bytes = try ProtectedMessage.seal(
            header: header, payloads: [.keyExchange(KeyExchangePayload(group: 36, data: Array(repeating: 1, count: 1087)))],
            protection: try XCTUnwrap(responderSession.outgoingProtection), random: SeededRandom(seed: 4))
        pair.holding = false
        pair.run(pair.initiator.receive(bytes, from: responderSession.local, to: responderSession.remote, now: 0), from: "initiator")
        XCTAssertTrue(
            pair.events.contains {
                $0.side == "initiator" && $0.event.kind == .ikeFailed && ($0.event.detail ?? "").contains("invalid ML-KEM-768 share")
            },
            "\(pair.events.map(\.event.detail))")
    }
}

/// The key update after an additional key exchange (RFC 9370 section 2.2.2) and IntAuth (RFC 9242 section
/// 3.3.2), step by step against Python's `cryptography` HMAC computing the RFCs' formulas itself.
final class IntermediateDerivationTests: XCTestCase {
    func bytes(_ seed: UInt64, _ count: Int) -> [UInt8] { SeededRandom(seed: seed).bytes(count) }

    static let prf = """
        import sys
        from cryptography.hazmat.primitives import hashes, hmac
        def prf(key, data):
            h = hmac.HMAC(key, hashes.SHA256())
            h.update(data)
            return h.finalize()
        def prfplus(key, seed, length):
            out, t, i = b"", b"", 1
            while len(out) < length:
                t = prf(key, t + seed + bytes([i]))
                out += t
                i += 1
            return out[:length]
        a = [bytes.fromhex(x) for x in sys.argv[1:]]
        """

    func testTheKeysAfterAnAdditionalKeyExchange() throws {
        let suite = try XCTUnwrap(
            try ProposalSpec("aes256gcm16-prfsha256-x25519-ke1_mlkem768", forIKE: true).selectIKE(
                from: try ProposalSpec("aes256gcm16-prfsha256-x25519-ke1_mlkem768", forIKE: true).proposal(number: 1, protocolID: .ike, spi: [])))
        let previous = IKESAKeys(
            deriving: KeyMaterial(bytes(1, 32)), integrityInitiator: .empty, integrityResponder: .empty,
            encryptionInitiator: KeyMaterial(bytes(2, 36)), encryptionResponder: KeyMaterial(bytes(3, 36)),
            authenticationInitiator: KeyMaterial(bytes(4, 32)), authenticationResponder: KeyMaterial(bytes(5, 32)))
        let secret = KeyMaterial(bytes(6, 32))
        let ni = Nonce(bytes(7, 32))
        let nr = Nonce(bytes(8, 32))
        let spiI = IKESPI(0x0102_0304_0506_0708)
        let spiR = IKESPI(0x1112_1314_1516_1718)
        let keys = KeyDerivation.afterAdditionalKeyExchange(
            suite: suite, previous: previous, sharedSecret: secret, nonceInitiator: ni, nonceResponder: nr, spiInitiator: spiI, spiResponder: spiR)
        let lines = try runPython(
            Self.prf + "\n" + """
                skd, ss, ni, nr, spii, spir = a
                skeyseed = prf(skd, ss + ni + nr)                      # RFC 9370 2.2.2: SKEYSEED(n)
                stream = prfplus(skeyseed, ni + nr + spii + spir, 32 * 3 + 36 * 2)
                # SK_d | SK_ai | SK_ar (none with AES-GCM) | SK_ei | SK_er | SK_pi | SK_pr
                for start, size in ((0, 32), (32, 36), (68, 36), (104, 32), (136, 32)):
                    print(stream[start:start + size].hex())
                """,
            arguments: [previous.deriving, secret].map(\.bytes.hexString) + [
                ni.octets.hexString, nr.octets.hexString, spiI.bytes.hexString, spiR.bytes.hexString
            ])
        XCTAssertEqual(
            lines,
            [keys.deriving, keys.encryptionInitiator, keys.encryptionResponder, keys.authenticationInitiator, keys.authenticationResponder]
                .map(\.bytes.hexString))
        XCTAssertEqual(keys.integrityInitiator, .empty)
    }

    func testIntAuthLinksAndTheOctetsAuthAppends() throws {
        let header = IKEHeader(
            spiInitiator: IKESPI(0x0102_0304_0506_0708), spiResponder: IKESPI(0x1112_1314_1516_1718), nextPayload: .encryptedFragment,
            exchangeType: .ikeIntermediate, flags: [.initiator], messageID: 1, length: 9999)
        let key = KeyMaterial(bytes(9, 32))
        let inner = bytes(10, 1192)
        let first = IntermediateAuthentication.link(
            prf: .hmacSHA256, key: key, previous: [], header: header, firstInner: .keyExchange, inner: inner[...])
        let second = IntermediateAuthentication.link(
            prf: .hmacSHA256, key: key, previous: first, header: header, firstInner: .keyExchange, inner: inner[...])
        let lines = try runPython(
            Self.prf + "\n" + """
                import struct
                key, inner = a
                def link(previous):
                    # A: the IKE header as if unfragmented (next payload SK = 46, length without IV, padding, ICV),
                    # then SK's generic header (next payload KE = 34, C and reserved zero, length 4 + inner)
                    header = bytes.fromhex("0102030405060708" "1112131415161718") + bytes([46, 0x20, 43, 0x08])
                    header += struct.pack(">II", 1, 28 + 4 + len(inner))
                    return prf(key, previous + header + bytes([34, 0]) + struct.pack(">H", 4 + len(inner)) + inner)
                one = link(b"")
                print(one.hex())
                print(link(one).hex())
                """, arguments: [key.bytes.hexString, inner.hexString])
        XCTAssertEqual(lines, [first.hexString, second.hexString])
        // IntAuth = IntAuth_iN | IntAuth_rN | IKE_AUTH_MID (four octets).
        XCTAssertEqual(IntermediateAuthentication.intAuth(initiator: [1], responder: [2, 3], authMessageID: 0x0102_0304), [1, 2, 3, 1, 2, 3, 4])
    }

    /// IntAuth is in the signed octets: a link either side computed differently fails IKE_AUTH.
    func testADifferentIntAuthFailsAuthentication() throws {
        let proposal = "aes256gcm16-prfsha256-x25519-ke1_mlkem768"
        let pair = EnginePair(
            initiator: [try Fixtures.connection(local: "192.0.2.1", remote: "192.0.2.2", proposal: proposal, esp: "aes256gcm16")],
            responder: [try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: proposal, esp: "aes256gcm16")],
            initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!)
        pair.holding = true
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        for _ in 0..<3 { pair.release() }  // up to the IKE_INTERMEDIATE response, held
        try XCTUnwrap(pair.responder.sessions.values.first).intAuthResponder[0] ^= 1
        pair.holding = false
        pair.releaseAll()
        XCTAssertTrue(
            pair.events.contains { $0.event.kind == .ikeFailed && ($0.event.detail ?? "").contains("AUTH") }, "\(pair.events.map(\.event.detail))")
        XCTAssertFalse(pair.events.contains { $0.event.kind == .ikeEstablished })
    }
}
