import XCTest

@testable import IKEv2

/// RFC 8784 between two engines: a PPK both hold, optional or required on either side; one side without it;
/// different PPK_IDs; the wrong PPK. The keys with the PPK mixed in are checked against Python's `cryptography`.
final class PostQuantumPresharedKeyTests: XCTestCase {
    static let ppk = KeyMaterial(Array("a post-quantum preshared key of 256 bits or more".utf8))

    func ppk(_ id: String = "ppk-1", key: KeyMaterial = ppk, required: Bool) -> PostQuantumPresharedKey {
        PostQuantumPresharedKey(identity: Array(id.utf8), key: key, required: required)
    }

    /// An IKE SA (and its CHILD SA) attempted between engines with these PPKs; the same seeds every time, so the
    /// same Diffie-Hellman and nonces, and the keys of two runs can be set side by side.
    func negotiate(initiator: PostQuantumPresharedKey?, responder: PostQuantumPresharedKey?) throws -> EnginePair {
        let pair = try Fixtures.pair()
        var a = try XCTUnwrap(pair.initiator.connection(named: "c"))
        var b = try XCTUnwrap(pair.responder.connection(named: "c"))
        a.postQuantumPresharedKey = initiator
        b.postQuantumPresharedKey = responder
        let configured = EnginePair(
            initiator: [a], responder: [b], initiatorAddress: pair.initiatorAddress, responderAddress: pair.responderAddress)
        configured.run(configured.initiator.initiate(connection: "c", now: 0), from: "initiator")
        return configured
    }

    func session(_ engine: IKEEngine) -> IKESession? { engine.sessions.values.first { $0.state == .established } }

    /// The notifies of each IKE_AUTH and IKE_SA_INIT message on the link, decrypted with the engines' keys.
    func notifies(_ pair: EnginePair, _ exchange: ExchangeType, response: Bool) throws -> [NotifyType] {
        for datagram in pair.wire {
            let bytes = Array(datagram.payload.dropFirst(datagram.destination.port == 4500 || datagram.source.port == 4500 ? 4 : 0))
            let message = try IKEMessage.decode(bytes)
            guard message.header.exchangeType == exchange, message.header.isResponse == response else { continue }
            if exchange == .ikeSAInit { return message.payloads.notifies.map(\.type) }
            let receiver = datagram.destination.address == pair.responderAddress ? pair.responder : pair.initiator
            let spi = receiver === pair.responder ? message.header.spiResponder : message.header.spiInitiator
            let incoming = try XCTUnwrap(receiver.messageProtections(ourSPI: spi)?.incoming)
            let (first, plaintext) = try ProtectedMessage.openPlaintext(bytes, message: message, protection: incoming)
            return try Payload.decodeChain(plaintext, first: first).notifies.map(\.type)
        }
        return []
    }

    func assertEstablished(_ pair: EnginePair, ppk expected: PostQuantumPresharedKey?, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(pair.events("initiator", .childEstablished).count, 1, "\(pair.logs.map(\.line))", file: file, line: line)
        XCTAssertEqual(pair.events("responder", .childEstablished).count, 1, file: file, line: line)
        XCTAssertEqual(session(pair.initiator)?.ppkUsed?.identity, expected?.identity, file: file, line: line)
        XCTAssertEqual(session(pair.responder)?.ppkUsed?.identity, expected?.identity, file: file, line: line)
        XCTAssertEqual(session(pair.initiator)?.keys, session(pair.responder)?.keys, "the same keys on both ends", file: file, line: line)
    }

    func assertRefused(_ pair: EnginePair, by side: String, _ reason: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(pair.events.allSatisfy { $0.event.kind != .childEstablished }, "no CHILD SA", file: file, line: line)
        let engine = side == "initiator" ? pair.initiator : pair.responder
        XCTAssertTrue(engine.sessionSummaries.isEmpty, "the refusing side forgot the IKE SA", file: file, line: line)
        // The other side holds at most a half-open IKE SA (the initiator's refusal comes before IKE_AUTH).
        XCTAssertTrue((pair.initiator.sessionSummaries + pair.responder.sessionSummaries).allSatisfy { !$0.established }, file: file, line: line)
        XCTAssertEqual(engine.counters["ppk_refused"], 1, file: file, line: line)
        XCTAssertTrue(
            pair.events.contains { $0.side == side && $0.event.kind == .ikeFailed && ($0.event.detail ?? "").contains(reason) },
            "\(pair.events.map { "\($0.side): \($0.event.detail ?? "")" })", file: file, line: line)
    }

    func testBothHoldingThePPKMixItIntoSKdSKpiAndSKprOptionalOrRequired() throws {
        let plain = try negotiate(initiator: nil, responder: nil)
        assertEstablished(plain, ppk: nil)
        let unmixed = try XCTUnwrap(session(plain.initiator)?.keys)
        let plainChild = try XCTUnwrap(plain.events("initiator", .childEstablished).first?.child?.keys)
        for (a, b) in [(false, false), (true, false), (false, true), (true, true)] {
            let context = "initiator \(a ? "requires" : "offers"), responder \(b ? "requires" : "offers")"
            let pair = try negotiate(initiator: ppk(required: a), responder: ppk(required: b))
            assertEstablished(pair, ppk: ppk(required: a))
            XCTAssertEqual(try notifies(pair, .ikeSAInit, response: false).filter { $0 == .usePPK }.count, 1, context)
            XCTAssertEqual(try notifies(pair, .ikeSAInit, response: true).filter { $0 == .usePPK }.count, 1, context)
            let request = try notifies(pair, .ikeAuth, response: false)
            XCTAssertTrue(request.contains(.ppkIdentity), context)
            XCTAssertEqual(request.contains(.noPPKAuth), !a, "\(context): NO_PPK_AUTH only where the PPK is optional for the initiator")
            XCTAssertTrue(try notifies(pair, .ikeAuth, response: true).contains(.ppkIdentity), "\(context): the responder confirms")
            let mixed = try XCTUnwrap(session(pair.initiator)?.keys)
            XCTAssertEqual(mixed, KeyDerivation.mixing(Self.ppk, into: unmixed, prf: .hmacSHA256), context)
            XCTAssertNotEqual(mixed.deriving, unmixed.deriving)
            XCTAssertEqual(mixed.encryptionInitiator, unmixed.encryptionInitiator, "SK_e is not mixed (RFC 8784 section 3)")
            // The CHILD SA of IKE_AUTH comes from the mixed SK_d.
            let child = try XCTUnwrap(pair.events("initiator", .childEstablished).first?.child?.keys)
            XCTAssertNotEqual(child.encryptionOutbound, plainChild.encryptionOutbound, context)
            XCTAssertTrue(pair.logs.contains { $0.line.contains("with the post-quantum preshared key 'ppk-1'") }, context)
        }
    }

    func testAnOptionalPPKGoesWithoutWhenTheResponderHasNoneOrAnother() throws {
        // The responder has no PPK: it does not answer USE_PPK, and IKE_AUTH goes as usual.
        let none = try negotiate(initiator: ppk(required: false), responder: nil)
        assertEstablished(none, ppk: nil)
        XCTAssertFalse(try notifies(none, .ikeSAInit, response: true).contains(.usePPK))
        XCTAssertFalse(try notifies(none, .ikeAuth, response: false).contains(.ppkIdentity))
        XCTAssertTrue(none.logs.contains { $0.line.contains("without the post-quantum preshared key 'ppk-1' (optional") })
        // The responder has another PPK: it checks NO_PPK_AUTH and neither end mixes a PPK in.
        let other = try negotiate(initiator: ppk(required: false), responder: ppk("ppk-2", required: false))
        assertEstablished(other, ppk: nil)
        XCTAssertTrue(try notifies(other, .ikeAuth, response: false).contains(.noPPKAuth))
        XCTAssertFalse(try notifies(other, .ikeAuth, response: true).contains(.ppkIdentity))
        XCTAssertTrue(other.logs.contains { $0.side == "responder" && $0.line.contains("its PPK 'ppk-1' is not one this side holds (NO_PPK_AUTH)") })
        XCTAssertEqual(session(other.initiator)?.keys, session(try negotiate(initiator: nil, responder: nil).initiator)?.keys)
    }

    func testARequiredPPKThatIsNotUsedFailsTheIKESA() throws {
        // The initiator requires it, the responder has none: no IKE_AUTH is sent.
        let initiator = try negotiate(initiator: ppk(required: true), responder: nil)
        assertRefused(initiator, by: "initiator", "responder did not announce USE_PPK")
        XCTAssertEqual(try notifies(initiator, .ikeAuth, response: false), [], "no IKE_AUTH request")
        // The responder requires it, the initiator has none, or another.
        assertRefused(try negotiate(initiator: nil, responder: ppk(required: true)), by: "responder", "the initiator used none")
        assertRefused(
            try negotiate(initiator: ppk("ppk-2", required: false), responder: ppk(required: true)), by: "responder",
            "the initiator's PPK_ID 'ppk-2' is not ours")
        // The initiator requires a PPK the (optional) responder does not hold: no NO_PPK_AUTH to fall back to.
        assertRefused(
            try negotiate(initiator: ppk("ppk-2", required: true), responder: ppk(required: false)), by: "responder",
            "sent no NO_PPK_AUTH")
    }

    func testTheWrongPPKIsAnAuthenticationFailureWithNoFallBack() throws {
        let wrong = KeyMaterial(Array("another post-quantum preshared key, also long enough".utf8))
        for (a, b) in [(false, false), (true, true)] {
            let pair = try negotiate(initiator: ppk(key: wrong, required: a), responder: ppk(required: b))
            XCTAssertTrue(pair.events.allSatisfy { $0.event.kind != .childEstablished })
            XCTAssertEqual(pair.responder.counters["authentication_failed"], 1)
            XCTAssertTrue(
                pair.logs.contains { $0.side == "responder" && $0.line.contains("does not verify") },
                "the responder holds the named PPK, so NO_PPK_AUTH is not looked at: \(pair.logs.map(\.line))")
            XCTAssertTrue(pair.events.contains { $0.side == "initiator" && $0.event.kind == .ikeFailed })
        }
    }

    func testPPKIdentityNamesOurPPKWithEitherTypeOctet() {
        let key = ppk(required: false)
        XCTAssertEqual(key.notifyData, [2] + Array("ppk-1".utf8), "PPK_ID_FIXED, as strongSwan and libreswan send")
        XCTAssertTrue(key.isNamed(by: [2] + Array("ppk-1".utf8)))
        XCTAssertTrue(key.isNamed(by: [1] + Array("ppk-1".utf8)))
        XCTAssertFalse(key.isNamed(by: [3] + Array("ppk-1".utf8)), "type 3 is unassigned")
        XCTAssertFalse(key.isNamed(by: Array("ppk-1".utf8)), "no type octet")
        XCTAssertFalse(key.isNamed(by: []))
        XCTAssertFalse(key.isNamed(by: [2] + Array("ppk-12".utf8)))
        XCTAssertEqual(PostQuantumPresharedKey(identity: [0, 1], key: Self.ppk, required: false).identityDescription, "0x0001")
    }

    func testTheMixedKeysAgainstPythonsHMAC() throws {
        func bytes(_ seed: UInt64, _ count: Int) -> [UInt8] { SeededRandom(seed: seed).bytes(count) }
        let keys = IKESAKeys(
            deriving: KeyMaterial(bytes(1, 48)), integrityInitiator: KeyMaterial(bytes(2, 48)), integrityResponder: KeyMaterial(bytes(3, 48)),
            encryptionInitiator: KeyMaterial(bytes(4, 32)), encryptionResponder: KeyMaterial(bytes(5, 32)),
            authenticationInitiator: KeyMaterial(bytes(6, 48)), authenticationResponder: KeyMaterial(bytes(7, 48)))
        let ppk = KeyMaterial(bytes(8, 40))
        let mixed = KeyDerivation.mixing(ppk, into: keys, prf: .hmacSHA384)
        let lines = try runPython(
            IntermediateDerivationTests.prf.replacingOccurrences(of: "hashes.SHA256()", with: "hashes.SHA384()") + "\n" + """
                ppk, skd, skpi, skpr = a
                for key in (skd, skpi, skpr):              # RFC 8784 section 3: SK_x = prf+(PPK, SK_x')
                    print(prfplus(ppk, key, len(key)).hex())
                """,
            arguments: [ppk, keys.deriving, keys.authenticationInitiator, keys.authenticationResponder].map(\.bytes.hexString))
        XCTAssertEqual(lines, [mixed.deriving, mixed.authenticationInitiator, mixed.authenticationResponder].map(\.bytes.hexString))
        XCTAssertEqual(mixed.encryptionInitiator, keys.encryptionInitiator)
        XCTAssertEqual(mixed.integrityResponder, keys.integrityResponder)
    }
}
