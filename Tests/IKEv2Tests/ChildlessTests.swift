import XCTest

@testable import IKEv2

/// Childless IKE SAs (RFC 6023): IKE_AUTH without a CHILD SA, the CHILD SAs then made with CREATE_CHILD_SA.
final class ChildlessTests: XCTestCase {
    func pair(initiatorChildless: ChildlessMode, responderChildless: ChildlessMode = .allow, esp: String = "aes256gcm16") throws -> EnginePair {
        var a = try Fixtures.connection(local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519", esp: esp)
        a.childless = initiatorChildless
        var b = try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519", esp: esp)
        b.childless = responderChildless
        return EnginePair(initiator: [a], responder: [b], initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!)
    }

    func exchanges(_ pair: EnginePair) -> [String] {
        pair.wire.compactMap { try? IKEMessage.decode($0.payload) }.map { "\($0.header.exchangeType)\($0.header.isResponse ? " response" : "")" }
    }

    func testBothSidesAnnounceSupportInIKE_SA_INIT() throws {
        let pair = try pair(initiatorChildless: .allow)
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        let request = try IKEMessage.decode(pair.wire[0].payload)
        let response = try IKEMessage.decode(pair.wire[1].payload)
        XCTAssertNotNil(request.payloads.notify(.childlessIKEv2Supported))
        XCTAssertNotNil(response.payloads.notify(.childlessIKEv2Supported))
        // allow: the first CHILD SA still comes in IKE_AUTH, so no CREATE_CHILD_SA is needed.
        XCTAssertEqual(pair.events("initiator", .childEstablished).count, 1)
        XCTAssertFalse(exchanges(pair).contains { $0.hasPrefix("\(ExchangeType.createChildSA)") }, "\(exchanges(pair))")
    }

    func testAChildlessIKESAThenGetsItsChildWithItsOwnKeyExchange() throws {
        // The ESP proposal names a group: impossible in IKE_AUTH, possible in CREATE_CHILD_SA (PFS from the first SA on).
        let pair = try pair(initiatorChildless: .force, esp: "aes256gcm16-x25519")
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertEqual(pair.events("initiator", .ikeEstablished).count, 1)
        XCTAssertEqual(pair.events("responder", .ikeEstablished).count, 1)
        let a = try XCTUnwrap(pair.events("initiator", .childEstablished).first?.child)
        let b = try XCTUnwrap(pair.events("responder", .childEstablished).first?.child)
        XCTAssertEqual(a.spiInbound, b.spiOutbound)
        XCTAssertEqual(a.keys.encryptionOutbound, b.keys.encryptionInbound)
        XCTAssertEqual(a.suite.group, .curve25519, "the first CHILD SA ran its own key exchange")
        let create = "\(ExchangeType.createChildSA)"
        XCTAssertEqual(exchanges(pair).filter { $0.hasPrefix(create) }, [create, create + " response"], "\(exchanges(pair))")
        XCTAssertTrue(
            pair.logs.contains {
                $0.side == "initiator" && $0.line.contains("IKE_AUTH without a CHILD SA (childless, RFC 6023); 1 CHILD SA(s) follow")
            },
            "\(pair.logs)")
        XCTAssertTrue(pair.logs.contains { $0.side == "responder" && $0.line.contains("childless IKE_AUTH, RFC 6023") }, "\(pair.logs)")
    }

    func testNeverAnnouncesNoSupportSoAForcedInitiatorGivesUp() throws {
        let pair = try pair(initiatorChildless: .force, responderChildless: .never)
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertNil(try IKEMessage.decode(pair.wire[1].payload).payloads.notify(.childlessIKEv2Supported))
        XCTAssertEqual(
            pair.events("initiator", .ikeFailed).first?.detail,
            "connection 'c' is childless (force) and the responder did not announce CHILDLESS_IKEV2_SUPPORTED (RFC 6023)")
        XCTAssertTrue(pair.events("responder", .ikeEstablished).isEmpty)
    }

    /// An initiator that sends a childless IKE_AUTH all the same (here: told, falsely, that the responder supports
    /// it) is refused by `never` with INVALID_SYNTAX, as strongSwan does.
    func testNeverRefusesAChildlessIKE_AUTHWithINVALID_SYNTAX() throws {
        let pair = try pair(initiatorChildless: .force, responderChildless: .never)
        pair.holding = true
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        pair.release()
        var response = try IKEMessage.decode(pair.held[0].payload)
        response.payloads.append(.notify(NotifyPayload(type: .childlessIKEv2Supported)))
        pair.held[0].payload = response.encode()
        pair.holding = false
        pair.releaseAll()
        XCTAssertEqual(
            pair.events("responder", .ikeFailed).first?.detail,
            "connection 'c' refuses childless IKE SAs (never) and the peer's IKE_AUTH carries no CHILD SA")
        XCTAssertEqual(pair.events("initiator", .ikeFailed).first?.detail, "IKE_AUTH refused by peer: INVALID_SYNTAX")
        XCTAssertEqual(pair.responder.counters["childless_refused"], 1)
        XCTAssertTrue(pair.events("responder", .ikeEstablished).isEmpty && pair.events("initiator", .ikeEstablished).isEmpty)
    }

    /// `force` as responder takes only childless IKE SAs, as strongSwan's `childless = force` does.
    func testForceAsResponderRefusesAnIKE_AUTHCarryingACHILDSA() throws {
        let pair = try pair(initiatorChildless: .allow, responderChildless: .force)
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertEqual(
            pair.events("responder", .ikeFailed).first?.detail,
            "connection 'c' is childless (force) and the peer's IKE_AUTH carries a CHILD SA")
        XCTAssertEqual(pair.events("initiator", .ikeFailed).first?.detail, "IKE_AUTH refused by peer: INVALID_SYNTAX")
        // Both force: childless, accepted.
        let both = try self.pair(initiatorChildless: .force, responderChildless: .force)
        both.run(both.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertEqual(both.events("responder", .childEstablished).count, 1)
    }

    func testForceFailsWhenTheResponderDidNotAnnounceSupport() throws {
        let pair = try pair(initiatorChildless: .force)
        pair.holding = true
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        pair.release()
        // Strip the responder's notify from its IKE_SA_INIT response, as an implementation without RFC 6023 would send it.
        var response = try IKEMessage.decode(pair.held[0].payload)
        response.payloads.removeAll {
            if case .notify(let n) = $0 { return n.type == .childlessIKEv2Supported }
            return false
        }
        pair.held[0].payload = response.encode()
        pair.release()
        let failed = pair.events("initiator", .ikeFailed)
        XCTAssertEqual(failed.count, 1)
        XCTAssertEqual(
            failed.first?.detail, "connection 'c' is childless (force) and the responder did not announce CHILDLESS_IKEV2_SUPPORTED (RFC 6023)")
        XCTAssertTrue(pair.held.isEmpty, "no IKE_AUTH was sent")
        XCTAssertEqual(pair.initiator.counters["childless_not_supported_by_peer"], 1)
    }

    func testTheConfigurationNamesTheModes() {
        XCTAssertEqual(ChildlessMode(rawValue: "force"), .force)
        XCTAssertEqual(ChildlessMode(rawValue: "allow"), .allow)
        XCTAssertEqual(ChildlessMode(rawValue: "never"), .never)
        XCTAssertNil(ChildlessMode(rawValue: "prefer"), "strongSwan 6's prefer is not offered")
        XCTAssertEqual(ChildlessMode.choices, "allow, force or never")
    }
}
