import XCTest

@testable import IKEv2

/// ADDITIONAL_KEY_EXCHANGE_1..7 in proposals (RFC 9370 section 2.2.1), in strongSwan's notation ("ke1_mlkem768"),
/// and how a peer's are chosen: a proposal that requires an additional key exchange this side does not run is
/// not chosen (before, its unknown transform types were overlooked and it was chosen without them).
final class AdditionalKeyExchangeProposalTests: XCTestCase {
    func spec(_ text: String, forIKE: Bool = true) throws -> ProposalSpec { try ProposalSpec(text, forIKE: forIKE) }

    func offer(_ text: String, forIKE: Bool = true) throws -> Proposal {
        try spec(text, forIKE: forIKE).proposal(number: 1, protocolID: forIKE ? .ike : .esp, spi: forIKE ? [] : [1, 2, 3, 4])
    }

    func testTheNotationIsReadAndWrittenAgain() throws {
        let hybrid = try spec("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024-ke2_none")
        XCTAssertEqual(hybrid.additionalKeyExchanges[1]?.map { $0 }, [.mlkem768])
        XCTAssertEqual(hybrid.additionalKeyExchanges[2]?.map { $0 }, [.mlkem1024, nil])
        XCTAssertEqual(hybrid.text, "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024-ke2_none")
        XCTAssertEqual(try spec("aes256gcm16-prfsha256-x25519-ke7_ecp384").additionalKeyExchanges[7]?.map { $0 }, [.group(.ecp384)])
        for wrong in ["ke0_mlkem768", "ke8_mlkem768", "ke1_mlkem512", "ke1", "kex_none", "ke1_"] {
            XCTAssertThrowsError(try spec("aes256gcm16-prfsha256-x25519-\(wrong)"), wrong) {
                XCTAssertEqual($0 as? ProposalSpecError, .unknownAlgorithm(wrong, in: "aes256gcm16-prfsha256-x25519-\(wrong)"))
            }
        }
        // Offered as Transform Types 6 (ADDITIONAL_KEY_EXCHANGE_1) and 7 with the registry's IDs, NONE as 0.
        let transforms = try offer("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024-ke2_none").transforms
        XCTAssertEqual(
            transforms.filter { $0.type.additionalKeyExchangeNumber != nil }.map { [UInt16($0.type.rawValue), $0.identifier] },
            [[6, 36], [7, 37], [7, 0]])
    }

    func testAPeersAdditionalKeyExchangesAreChosenAsRFC9370Says() throws {
        let plain = try spec("aes256gcm16-prfsha256-x25519")
        // Required by the peer, not run here: not chosen.
        XCTAssertNil(plain.selectIKE(from: try offer("aes256gcm16-prfsha256-x25519-ke1_mlkem768")))
        // Optional for the peer: chosen without it, and the answer leaves the NONE out.
        let optional = try XCTUnwrap(plain.selectIKE(from: try offer("aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none")))
        XCTAssertEqual(optional.additionalKeyExchanges, [AdditionalKeyExchange(number: 1, method: nil)])
        XCTAssertFalse(optional.transforms.contains { $0.type.additionalKeyExchangeNumber != nil })
        XCTAssertEqual(optional.name, "aes256gcm16-prfsha256-x25519")

        let hybrid = try spec("aes256gcm16-prfsha256-x25519-ke1_mlkem768")
        // The first offered that this side accepts.
        let chosen = try XCTUnwrap(hybrid.selectIKE(from: try offer("aes256gcm16-prfsha256-x25519-ke1_mlkem1024-ke1_mlkem768")))
        XCTAssertEqual(chosen.additionalKeyExchanges, [AdditionalKeyExchange(number: 1, method: .mlkem768)])
        XCTAssertEqual(chosen.name, "aes256gcm16-prfsha256-x25519-ke1_mlkem768")
        XCTAssertEqual(chosen.transforms.last, Transform(type: .additionalKeyExchange(1), identifier: 36))
        // Required here, not offered (or offered only as another method): not chosen.
        XCTAssertNil(hybrid.selectIKE(from: try offer("aes256gcm16-prfsha256-x25519")))
        XCTAssertNil(hybrid.selectIKE(from: try offer("aes256gcm16-prfsha256-x25519-ke1_mlkem1024")))
        // Optional here: a peer without it is chosen; one that offers it gets it.
        let maybe = try spec("aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none")
        XCTAssertEqual(try XCTUnwrap(maybe.selectIKE(from: try offer("aes256gcm16-prfsha256-x25519"))).additionalKeyExchanges, [])
        XCTAssertEqual(
            try XCTUnwrap(maybe.selectIKE(from: try offer("aes256gcm16-prfsha256-x25519-ke1_mlkem768"))).additionalKeyExchanges,
            [AdditionalKeyExchange(number: 1, method: .mlkem768)])
        // An unknown method ID in an additional type is not taken for NONE.
        var unknown = try offer("aes256gcm16-prfsha256-x25519")
        unknown.transforms.append(Transform(type: .additionalKeyExchange(3), identifier: 999))
        XCTAssertNil(plain.selectIKE(from: unknown))
        unknown.transforms.append(Transform(type: .additionalKeyExchange(3), identifier: 0))
        XCTAssertEqual(try XCTUnwrap(plain.selectIKE(from: unknown)).additionalKeyExchanges, [AdditionalKeyExchange(number: 3, method: nil)])
    }

    func testAChildProposalThatRequiresAnAdditionalKeyExchangeIsNotChosenYet() throws {
        let esp = try spec("aes256gcm16-x25519", forIKE: false)
        XCTAssertNil(esp.selectChild(from: try offer("aes256gcm16-x25519-ke1_mlkem768", forIKE: false), pfs: true))
        XCTAssertNotNil(esp.selectChild(from: try offer("aes256gcm16-x25519-ke1_mlkem768-ke1_none", forIKE: false), pfs: true))
    }

    /// A peer that offers only a hybrid proposal (strongSwan 6 with "x25519-ke1_mlkem768") is answered
    /// NO_PROPOSAL_CHOSEN by an engine without additional key exchanges, instead of an IKE SA the two sides
    /// would derive different keys for.
    func testAnEngineAnswersAHybridOnlyPeerNoProposalChosen() throws {
        let pair = try Fixtures.pair()
        var hybrid = try Fixtures.connection(
            local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519-ke1_mlkem768", esp: "aes256gcm16")
        hybrid.name = "c"
        pair.initiator.setConnection(hybrid)
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertTrue(pair.logs.contains { $0.side == "responder" && $0.line.contains("no acceptable proposal") }, "\(pair.logs)")
        XCTAssertEqual(pair.events.map(\.event.kind), [.ikeFailed])
        XCTAssertTrue(pair.responder.sessionSummaries.isEmpty)
    }
}
