import BigInt
import Crypto
import Foundation
import SwiftASN1
import X509
import XCTest
import _CryptoExtras

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
    func fragment(_ number: UInt16, of total: UInt16, pair: EnginePair, session: IKESession, messageID: UInt32, content: [UInt8] = [])
        throws -> [Datagram]
    {
        let protection = try XCTUnwrap(session.outgoingProtection)
        let header = session.header(exchange: .informational, messageID: messageID, response: false)
        let bytes = try ProtectedMessage.sealPart(
            header: header, payloadType: .encryptedFragment, next: .none, fragment: (number, total), inner: content, protection: protection,
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

    /// The fragment flood of an authenticated peer (RFC 7383 section 2.6 leaves the bound to the receiver): fragments
    /// that would take an IKE SA past `maximumReassemblySize`, or all of them past `maximumReassemblyMemory`, are
    /// discarded and counted; what is held is given back when the message completes or the IKE SA goes.
    func testFragmentFloodIsBoundedPerSAAndInAll() throws {
        for (perSA, inAll) in [(3_000, 1 << 20), (1 << 20, 3_000)] {
            var settings = EngineSettings()
            settings.maximumReassemblySize = perSA
            settings.maximumReassemblyMemory = inAll
            let pair = try Fixtures.pair(responderSettings: settings)
            pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
            let session = try XCTUnwrap(pair.initiator.sessions.values.first { $0.state == .established })
            let id = session.nextRequestID
            session.nextRequestID &+= 1
            let piece = [UInt8](repeating: 0, count: 1_200)
            for number: UInt16 in 1...3 {
                XCTAssertTrue(try fragment(number, of: 100, pair: pair, session: session, messageID: id, content: piece).isEmpty)
            }
            XCTAssertEqual(pair.responder.counters["reassembly_limit"], 1, "the third 1,200 octets pass 3,000 (\(perSA), \(inAll))")
            XCTAssertEqual(pair.responder.counters["fragments_received"], 2)
            XCTAssertEqual(pair.responder.reassemblyOctets, 2_400)
            XCTAssertEqual(pair.responder.reassemblyOctetsPeak, 2_400)
            // The IKE SA goes: what it held is given back.
            pair.run(pair.responder.deleteIKE(connection: "c", now: pair.now), from: "responder")
            XCTAssertTrue(pair.responder.sessions.isEmpty)
            XCTAssertEqual(pair.responder.reassemblyOctets, 0)
            XCTAssertEqual(pair.responder.reassemblyOctetsPeak, 2_400, "the high-water mark stays")
        }
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

    /// strongSwan CVE-2023-41913 again, after authentication: a CREATE_CHILD_SA with PFS, and an IKE SA rekey, whose
    /// KE data is 10,000 octets for the group are answered INVALID_SYNTAX with the message ID used up; the error is
    /// fatal (RFC 7296 section 2.21.3), so the IKE SA goes on both sides and a new one can be made.
    func testCVE_2023_41913_OversizedKeyExchangeInCreateChildSAIsInvalidSyntax() throws {
        for group in ["x25519", "ecp256", "ecp384", "ecp521", "modp2048"] {
            for rekeyingIKE in [false, true] {
                let label = "\(group), \(rekeyingIKE ? "IKE SA rekey" : "CHILD SA with PFS")"
                let pair = try Fixtures.pair(proposal: "aes256gcm16-prfsha256-\(group)", esp: "aes256gcm16-\(group)")
                pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
                let session = try XCTUnwrap(pair.initiator.sessions.values.first { $0.state == .established }, label)
                let oversized = [UInt8](repeating: 0x41, count: 10_000)
                var payloads: [Payload]
                if rekeyingIKE {
                    let keyGroup = try XCTUnwrap(session.suite?.group)
                    let proposals = pair.initiator.ikeProposals(
                        connection: session.connection, spi: [UInt8](repeating: 7, count: 8), preferring: keyGroup)
                    payloads = [
                        .securityAssociation(SecurityAssociationPayload(proposals: proposals)), .nonce(NoncePayload(pair.initiator.newNonce())),
                        .keyExchange(KeyExchangePayload(group: keyGroup.rawValue, data: oversized))
                    ]
                } else {
                    let request = pair.initiator.makeChildRequest(session: session, configuration: session.connection.children[0], rekeying: nil)
                    let keyGroup = try XCTUnwrap(request.keyExchange?.group, "\(label): the CHILD SA asks for PFS")
                    payloads = pair.initiator.childRequestPayloads(request, includeGroups: true)
                    let ts = try XCTUnwrap(payloads.firstIndex { $0.type == .trafficSelectorInitiator })
                    payloads.insert(
                        contentsOf: [
                            .nonce(NoncePayload(request.nonce)), .keyExchange(KeyExchangePayload(group: keyGroup.rawValue, data: oversized))
                        ], at: ts)
                }
                let answer = try helper.send(payloads, exchange: .createChildSA, pair: pair, session: session)
                XCTAssertEqual(answer.notifies.map(\.type), [.invalidSyntax], label)
                XCTAssertEqual(pair.responder.counters["invalid_ke_value"], 1, label)
                XCTAssertTrue(pair.responder.sessions.values.allSatisfy { $0.state == .closed }, "\(label): the responder's IKE SA is gone")
                XCTAssertTrue(pair.initiator.sessions.values.allSatisfy { $0.state == .closed }, "\(label): the initiator's IKE SA is gone")
                pair.run(pair.initiator.initiate(connection: "c", now: pair.now + 1), from: "initiator")
                XCTAssertEqual(pair.responder.sessions.values.filter { $0.state == .established }.count, 1, "\(label): a new IKE SA is made")
            }
        }
    }

    /// libreswan CVE-2026-50721/50722 (a PKCS#1 v1.5 signature whose DigestInfo held a short hash or bad DER was
    /// accepted or crashed pluto): signatures made with the RSA private key over encodings that are not exactly the
    /// DigestInfo of the signed octets' hash (a truncated hash, a wrong length inside the DER, a different hash
    /// OID, trailing octets, missing NULL parameters, a short padding) all fail to verify, for AUTH methods 1 and 14;
    /// the exact encoding verifies, so the forgeries are the only difference.
    func testCVE_2026_50721_PKCS1DigestInfoWithShortHashOrBadDERIsRefused() throws {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let raw = try RawRSA(key)
        let publicKey = Certificate.PublicKey(key.publicKey)
        let octets = Array("the octets IKE_AUTH signs".utf8)
        let sha256OID: [UInt8] = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]
        let sha1OID: [UInt8] = [0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a]
        func digestInfo(_ oid: [UInt8], _ hash: [UInt8], null: Bool = true, innerFix: Int = 0, outerFix: Int = 0) -> [UInt8] {
            let algorithm = [0x30, UInt8(oid.count + (null ? 2 : 0))] + oid + (null ? [0x05, 0x00] : [])
            let digest = [0x04, UInt8(hash.count + innerFix)] + hash
            return [0x30, UInt8(algorithm.count + digest.count + outerFix)] + algorithm + digest
        }
        let sha256 = Array(SHA256.hash(data: octets))
        let sha1 = Array(Insecure.SHA1.hash(data: octets))
        let rsaSHA256 = SignatureAlgorithmIdentifier.rsaSHA256.der
        func method14(_ signature: [UInt8]) -> AuthenticationPayload {
            AuthenticationPayload(method: .digitalSignature, data: [UInt8(rsaSHA256.count)] + rsaSHA256 + signature)
        }
        func method1(_ signature: [UInt8]) -> AuthenticationPayload { AuthenticationPayload(method: .rsaDigitalSignature, data: signature) }
        // The genuine encodings verify: the raw signer is right.
        XCTAssertTrue(
            SignatureAuthentication.signatureIsValid(method14(raw.sign(digestInfo(sha256OID, sha256))), publicKey: publicKey, octets: octets))
        XCTAssertTrue(SignatureAuthentication.signatureIsValid(method1(raw.sign(digestInfo(sha1OID, sha1))), publicKey: publicKey, octets: octets))
        let forgeries: [(String, [UInt8], Bool)] = [
            ("SHA-256 OID with a 20-octet hash", digestInfo(sha256OID, Array(sha256.prefix(20))), true),
            ("SHA-256 OID with a 1-octet hash", digestInfo(sha256OID, Array(sha256.prefix(1))), true),
            ("OCTET STRING length one past the hash", digestInfo(sha256OID, sha256, innerFix: 1), true),
            ("SEQUENCE length one short", digestInfo(sha256OID, sha256, outerFix: -1), true),
            ("trailing octets after the DigestInfo", digestInfo(sha256OID, sha256) + [0, 0, 0, 0], true),
            ("no NULL parameters", digestInfo(sha256OID, sha256, null: false), true),
            ("SHA-1 DigestInfo under method 14 with SHA-256", digestInfo(sha1OID, sha1), true),
            ("SHA-256 DigestInfo under method 1", digestInfo(sha256OID, sha256), false),
            ("SHA-1 OID with a 12-octet hash under method 1", digestInfo(sha1OID, Array(sha1.prefix(12))), false)
        ]
        for (what, encoding, underMethod14) in forgeries {
            let signature = raw.sign(encoding)
            let auth = underMethod14 ? method14(signature) : method1(signature)
            XCTAssertFalse(SignatureAuthentication.signatureIsValid(auth, publicKey: publicKey, octets: octets), what)
        }
        // A padding with fewer than eight 0xff octets (RFC 8017 section 9.2 requires them) is refused as well.
        let genuine = digestInfo(sha256OID, sha256)
        XCTAssertFalse(
            SignatureAuthentication.signatureIsValid(method14(raw.sign(genuine, padding: 4)), publicKey: publicKey, octets: octets),
            "short padding")
    }

    /// libreswan CVE-2026-14957 (a CERT payload whose public key could not be read was used anyway): an end
    /// entity certificate whose key does not parse (an EC point off its encoding, an RSA key of garbage) refuses
    /// the peer with a reason that says so, and an unreadable intermediate is left out of the path.
    func testCVE_2026_14957_CertificateWhosePublicKeyCannotBeReadRefusesThePeer() throws {
        let ca = try CertificateFixtures.Authority(name: "CVE CA")
        let credential = try ca.issue(address: "192.0.2.1")
        var serializer = DER.Serializer()
        try serializer.serialize(credential.chain[0])
        let good = serializer.serializedBytes
        // The SubjectPublicKeyInfo's BIT STRING holds 0x04 | X | Y for P-256: make the point's form octet 0x07.
        let point = try XCTUnwrap(ForgedCertificates.indexOfECPoint(in: good))
        var badPoint = good
        badPoint[point] = 0x07
        let identity = Identity("192.0.2.1").payload
        for (what, der) in [("EC point of an unknown form", badPoint), ("truncated certificate", Array(good.prefix(good.count / 2)))] {
            let result = SignatureAuthentication.verify(
                auth: AuthenticationPayload(method: .digitalSignature, data: [0]), certificates: [CertificatePayload(encoding: 4, data: der)],
                identity: identity, octets: [1, 2, 3], trustAnchors: [ca.certificate], now: Date())
            guard case .failure(let failure) = result else { return XCTFail("\(what): accepted") }
            XCTAssertTrue(failure.description.contains("is unreadable"), "\(what): \(failure)")
        }
        // The same as an intermediate: dropped, so the (good) leaf above it has no path through it.
        let leaf = CertificatePayload(encoding: 4, data: good)
        let result = SignatureAuthentication.verify(
            auth: AuthenticationPayload(method: .digitalSignature, data: [0]), certificates: [leaf, CertificatePayload(encoding: 4, data: badPoint)],
            identity: identity, octets: [1, 2, 3], trustAnchors: [ca.certificate], now: Date())
        guard case .failure(let failure) = result else { return XCTFail("a signature of one octet was accepted") }
        XCTAssertTrue(failure.description.contains("AUTH"), "the path is judged without the unreadable one, then the AUTH fails: \(failure)")
    }
}

/// Raw RSA private-key operations for tests that must sign encodings swift-crypto would never make: a
/// signature over any octets, padded by hand (RFC 8017 section 9.2 EMSA-PKCS1-v1_5 with `padding` 0xff octets).
/// swift-crypto has no raw RSA, so the modular exponentiation is BigInt's; test code only.
struct RawRSA {
    let modulus: BigUInt
    let primes: (p: BigUInt, q: BigUInt)
    let exponents: (p: BigUInt, q: BigUInt)
    let coefficient: BigUInt
    let size: Int

    init(_ key: _RSA.Signing.PrivateKey) throws {
        // PKCS#1 RSAPrivateKey: version, n, e, d, p, q, d mod (p-1), d mod (q-1), q^-1 mod p.
        let node = try DER.parse(Array(key.derRepresentation))
        guard case .constructed(let children) = node.content else { throw CredentialError("not a SEQUENCE") }
        let integers = children.map { child -> BigUInt in
            guard case .primitive(let bytes) = child.content else { return 0 }
            return BigUInt(Data(bytes))
        }
        modulus = integers[1]
        primes = (integers[4], integers[5])
        exponents = (integers[6], integers[7])
        coefficient = integers[8]
        size = (modulus.bitWidth + 7) / 8
    }

    func sign(_ encoding: [UInt8], padding: Int? = nil) -> [UInt8] {
        let fill = padding ?? (size - encoding.count - 3)
        let message = BigUInt(Data([0x00, 0x01] + [UInt8](repeating: 0xff, count: fill) + [0x00] + encoding))
        // The Chinese remainder theorem, as RFC 8017 section 5.1.2 computes it: four times faster than m^d mod n.
        let m1 = message.power(exponents.p, modulus: primes.p)
        let m2 = message.power(exponents.q, modulus: primes.q)
        let h = (coefficient * ((m1 + primes.p - m2 % primes.p) % primes.p)) % primes.p
        let bytes = Array((m2 + h * primes.q).serialize())
        return [UInt8](repeating: 0, count: size - bytes.count) + bytes
    }
}

/// Where things sit inside a DER certificate, for tests that corrupt them.
enum ForgedCertificates {
    /// The index of the EC point's form octet (0x04) in a P-256 certificate's SubjectPublicKeyInfo: after the
    /// id-ecPublicKey and prime256v1 OIDs, a BIT STRING of 66 octets (unused-bits 0, then 0x04).
    static func indexOfECPoint(in der: [UInt8]) -> Int? {
        let marker: [UInt8] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04]
        guard der.count > marker.count else { return nil }
        for index in 0...(der.count - marker.count) where Array(der[index..<index + marker.count]) == marker { return index + marker.count - 1 }
        return nil
    }
}
