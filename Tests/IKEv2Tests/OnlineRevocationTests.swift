import Foundation
import X509
import XCTest

@testable import IKEv2

/// IKE_AUTH held for an online revocation check (OCSP, asked by the I/O layer) in both roles, between two
/// engines in memory: the answer, or its absence, decides as the connection's revocation policy says.
final class OnlineRevocationTests: XCTestCase {
    typealias Authority = CertificateFixtures.Authority
    let responderURI = "http://ocsp.example/"

    /// The initiator's certificate names an OCSP responder (the responder engine checks it) and the
    /// responder's too (the initiator engine checks it).
    func pair(policies: (RevocationPolicy, RevocationPolicy) = (.relaxed, .relaxed), withResponders: Bool = true) throws -> EnginePair {
        let ca = try Authority(name: "test CA")
        let uri = withResponders ? responderURI : nil
        return try CertificateFixtures.pair(
            initiator: try ca.issue(address: "192.0.2.1", ocspResponder: uri),
            responder: try ca.issue(address: "192.0.2.2", ocspResponder: uri),
            initiatorTrusts: [ca.certificate], responderTrusts: [ca.certificate], revocation: policies)
    }

    func testGoodAnswersLetTheSAUpAndEachSideAskedAboutThePeersChain() throws {
        let pair = try pair()
        pair.answerRevocation = { _ in .good }
        XCTAssertTrue(CertificateFixtures.established(pair), CertificateFixtures.failure(pair))
        XCTAssertEqual(pair.revocationRequests.map(\.side), ["responder", "initiator"])
        for (side, request) in pair.revocationRequests {
            XCTAssertEqual(request.responders, ["OCSP " + responderURI])
            XCTAssertEqual(request.chain.count, 2, "leaf and trust anchor")
            let peer = side == "responder" ? "host 192.0.2.1" : "host 192.0.2.2"
            XCTAssertTrue("\(request.chain[0].subject)".contains(peer), "\(side) asked about its peer's certificate")
        }
        XCTAssertTrue(pair.logs.contains { $0.line.contains("not revoked (OCSP http://ocsp.example/)") })
    }

    func testTheResponderHoldsItsAnswerUntilTheCheckReturns() throws {
        let pair = try pair()
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertEqual(pair.revocationRequests.count, 1)
        XCTAssertTrue(pair.events.isEmpty, "nothing established while the responder waits")
        let sentBefore = pair.wire.count
        // The initiator retransmits its IKE_AUTH: absorbed, not answered, not counted as out of window.
        pair.advance(to: 1.5)
        XCTAssertGreaterThan(pair.wire.count, sentBefore, "the initiator retransmitted")
        XCTAssertEqual(pair.responder.counters["retransmission_while_checking_revocation"], 1)
        XCTAssertNil(pair.responder.counters["message_id_out_of_window"])
        pair.answerRevocation = { _ in .good }
        let request = pair.revocationRequests[0].request
        pair.run(pair.responder.revocationChecked(request.id, .good, now: 2), from: "responder")
        XCTAssertEqual(pair.events("initiator", .childEstablished).count, 1, CertificateFixtures.failure(pair))
        XCTAssertEqual(pair.events("responder", .childEstablished).count, 1)
        // An answer nobody waits for any more is only logged.
        XCTAssertEqual(pair.responder.revocationChecked(request.id, .good, now: 3).count, 1)
    }

    func testARevokedPeerIsRefusedInBothRoles() throws {
        // The responder learns the initiator's certificate is revoked: AUTHENTICATION_FAILED.
        var pair = try pair()
        pair.answerRevocation = { _ in .revoked("revoked through OCSP, reason: keyCompromise") }
        XCTAssertFalse(CertificateFixtures.established(pair))
        XCTAssertTrue(
            CertificateFixtures.failure(pair).contains("is revoked (revoked through OCSP, reason: keyCompromise)"),
            CertificateFixtures.failure(pair))
        XCTAssertEqual(pair.events("initiator", .ikeFailed).count, 1, "the initiator heard AUTHENTICATION_FAILED")
        // The initiator learns the responder's is: it refuses the SA the responder already made and tells it.
        pair = try self.pair()
        pair.answerRevocation = { $0.chain[0].subject.description.contains("192.0.2.2") ? .revoked("revoked through OCSP") : .good }
        XCTAssertFalse(CertificateFixtures.established(pair))
        XCTAssertEqual(pair.events("initiator", .ikeFailed).count, 1)
        XCTAssertEqual(
            pair.events("responder", .ikeDeleted).count + pair.events("responder", .ikeFailed).count, 1,
            "the responder dropped its SA on the INFORMATIONAL with AUTHENTICATION_FAILED")
        XCTAssertTrue(pair.responder.sessionSummaries.isEmpty)
    }

    func testNoAnswerIsAcceptedWhenRelaxedAndRefusedOtherwise() throws {
        for (policy, accepted) in [(RevocationPolicy.relaxed, true), (.ifURI, false), (.strict, false)] {
            let pair = try pair(policies: (policy, policy))
            pair.answerRevocation = { _ in .unavailable("responder unreachable") }
            XCTAssertEqual(CertificateFixtures.established(pair), accepted, "\(policy): \(CertificateFixtures.failure(pair))")
            if !accepted {
                XCTAssertTrue(
                    CertificateFixtures.failure(pair).contains("no revocation status for") || pair.events("initiator", .ikeFailed).count == 1)
            } else {
                XCTAssertTrue(pair.logs.contains { $0.line.contains("accepted, revocation is relaxed") })
            }
        }
    }

    func testACheckWithoutAnswerTimesOut() throws {
        for (policy, accepted) in [(RevocationPolicy.relaxed, true), (.ifURI, false)] {
            let pair = try pair(policies: (policy, policy))
            pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
            XCTAssertEqual(pair.revocationRequests.count, 1)
            // The peer keeps retransmitting; the responder gives up waiting after revocationCheckTimeout (10 s).
            pair.answerRevocation = { _ in .good }
            for time in stride(from: 1.0, through: 12.0, by: 1.0) { pair.advance(to: time) }
            XCTAssertEqual(pair.responder.counters["revocation_unavailable"], 1, "\(policy)")
            XCTAssertEqual(pair.events("responder", .childEstablished).count == 1, accepted, "\(policy): \(CertificateFixtures.failure(pair))")
        }
    }

    func testStrictRefusesAChainWithNoStatusSourceWithoutAsking() throws {
        let pair = try pair(policies: (.strict, .strict), withResponders: false)
        XCTAssertFalse(CertificateFixtures.established(pair))
        XCTAssertTrue(CertificateFixtures.failure(pair).contains("revocation is strict, but the certificate"), CertificateFixtures.failure(pair))
        XCTAssertTrue(pair.revocationRequests.isEmpty)
        // Relaxed and ifuri need no status for a certificate that names no responder.
        for policy in [RevocationPolicy.relaxed, .ifURI] {
            let pair = try self.pair(policies: (policy, policy), withResponders: false)
            XCTAssertTrue(CertificateFixtures.established(pair), CertificateFixtures.failure(pair))
            XCTAssertTrue(pair.revocationRequests.isEmpty)
        }
    }
}
