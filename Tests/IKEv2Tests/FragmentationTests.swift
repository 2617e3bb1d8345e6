import Crypto
import Foundation
import XCTest
import _CryptoExtras

@testable import IKEv2

/// IKEv2 message fragmentation (RFC 7383): large IKE_AUTH messages (RSA certificates) cut into SKF
/// fragments when both ends announce support, each fragment protected on its own, lost fragments
/// recovered by retransmission, whole messages when either end does not support it.
final class FragmentationTests: XCTestCase {
    let certificates = CertificateFixtures.self

    func rsaPair(fragmentSize: Int = 576, initiatorFragments: Bool = true, responderFragments: Bool = true) throws -> EnginePair {
        let ca = try CertificateFixtures.Authority(name: "test CA")
        var a = EngineSettings()
        var b = EngineSettings()
        a.fragmentSize = fragmentSize
        b.fragmentSize = fragmentSize
        a.fragmentation = initiatorFragments
        b.fragmentation = responderFragments
        return try certificates.pair(
            initiator: try ca.issue(address: "192.0.2.1", subjectKey: .rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048))),
            responder: try ca.issue(address: "192.0.2.2", subjectKey: .rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048))),
            initiatorTrusts: [ca.certificate], responderTrusts: [ca.certificate], settings: (a, b))
    }

    func fragments(_ pair: EnginePair) -> [(number: UInt16, total: UInt16, size: Int, fromInitiator: Bool)] {
        pair.wire.compactMap { datagram in
            let ike = datagram.destination.port == 4500 || datagram.source.port == 4500 ? Array(datagram.payload.dropFirst(4)) : datagram.payload
            guard let message = try? IKEMessage.decode(ike), case .encryptedFragment(let f)? = message.payloads.last else { return nil }
            return (f.number, f.total, datagram.payload.count, datagram.source.address == pair.initiatorAddress)
        }
    }

    func testLargeIKEAuthMessagesTravelAsFragmentsNoLargerThanTheLimit() throws {
        let pair = try rsaPair()
        XCTAssertTrue(certificates.established(pair), certificates.failure(pair))
        let seen = fragments(pair)
        XCTAssertGreaterThanOrEqual(seen.filter(\.fromInitiator).count, 2, "the IKE_AUTH request cut into fragments")
        XCTAssertGreaterThanOrEqual(seen.filter { !$0.fromInitiator }.count, 2, "the IKE_AUTH response cut into fragments")
        XCTAssertTrue(seen.allSatisfy { $0.size + 28 <= 576 }, "every fragment fits in a 576-octet IPv4 datagram: \(seen.map(\.size))")
        XCTAssertTrue(seen.allSatisfy { $0.number >= 1 && $0.number <= $0.total })
        XCTAssertGreaterThan(pair.initiator.counters["messages_fragmented", default: 0], 0)
        XCTAssertGreaterThan(pair.responder.counters["fragments_received", default: 0], 1)
        // The SA works afterwards: a CHILD SA rekey (small messages, not fragmented) goes through.
        pair.run(pair.initiator.rekeyChild(connection: "c", now: 1), from: "initiator")
        XCTAssertEqual(pair.events("responder", .childRekeyed).count, 1)
    }

    func testALostFragmentIsRecoveredByRetransmission() throws {
        let pair = try rsaPair()
        var dropped = false
        pair.deliver = { datagram in
            // Lose the second fragment of the first fragmented message, once.
            guard !dropped, let message = try? IKEMessage.decode(Array(datagram.payload.dropFirst(datagram.payload.first == 0 ? 4 : 0))),
                case .encryptedFragment(let f)? = message.payloads.last, f.number == 2
            else { return true }
            dropped = true
            return false
        }
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertTrue(dropped)
        XCTAssertEqual(pair.events("initiator", .childEstablished).count, 0, "not yet: a fragment is missing")
        pair.advance(to: 1.5)
        XCTAssertEqual(pair.events("initiator", .childEstablished).count, 1, "established after the fragments were sent again")
        XCTAssertEqual(pair.events("responder", .childEstablished).count, 1)
        XCTAssertTrue(pair.drops.isEmpty, "\(pair.drops)")
    }

    func testWithoutSupportOnEitherSideMessagesStayWhole() throws {
        for (initiator, responder) in [(false, true), (true, false)] {
            let pair = try rsaPair(initiatorFragments: initiator, responderFragments: responder)
            XCTAssertTrue(certificates.established(pair), certificates.failure(pair))
            XCTAssertTrue(fragments(pair).isEmpty)
            XCTAssertGreaterThan(pair.wire.map(\.payload.count).max() ?? 0, 1000, "IKE_AUTH sent whole")
        }
    }

    func testFragmentsAreProtectedOneByOne() throws {
        let protection = MessageProtection(
            encryption: .aesGCM16(keyBits: 256), integrity: nil,
            encryptionKey: KeyMaterial(Array(repeating: 7, count: 36)), integrityKey: KeyMaterial([]))
        let header = IKEHeader(
            spiInitiator: IKESPI(1), spiResponder: IKESPI(2), nextPayload: .none, exchangeType: .ikeAuth,
            flags: [.initiator], messageID: 1)
        let payloads: [Payload] = [.vendorID(Array(repeating: 0x5a, count: 1500)), .notify(NotifyPayload(type: .initialContact))]
        let parts = try ProtectedMessage.sealFragments(
            header: header, payloads: payloads, protection: protection, random: SeededRandom(seed: 9),
            maximumMessageSize: 500)
        XCTAssertEqual(parts.count, 4)
        XCTAssertTrue(parts.allSatisfy { $0.count <= 500 })
        var joined: [UInt8] = []
        for (index, part) in parts.enumerated() {
            let message = try IKEMessage.decode(part)
            let (fragment, piece) = try ProtectedMessage.openFragment(part, message: message, protection: protection)
            XCTAssertEqual(fragment.number, UInt16(index + 1))
            XCTAssertEqual(fragment.total, 4)
            XCTAssertEqual(fragment.firstInnerPayload, index == 0 ? .vendorID : PayloadType.none)
            XCTAssertEqual(try IKEMessage.decode(part).encode(), part, "decode and encode are inverses")
            joined += piece
        }
        XCTAssertEqual(try Payload.decodeChain(joined[...], first: .vendorID), payloads)
        // A fragment altered in transit fails its own integrity check.
        var forged = parts[2]
        forged[forged.count - 20] ^= 1
        XCTAssertThrowsError(try ProtectedMessage.openFragment(forged, message: try IKEMessage.decode(forged), protection: protection))
        // Fragment number 0 or above the total is malformed.
        var bad = parts[1]
        bad[28 + 4] = 0
        bad[28 + 5] = 9
        XCTAssertThrowsError(try IKEMessage.decode(bad))
    }
}
