import Foundation
import XCTest

@testable import IKEv2

/// An established IKE SA survives its engine: snapshot, JSON round trip, restore into a new engine,
/// and the peer cannot tell: liveness, CHILD SA rekey, IKE SA rekey and delete all go on.
final class SnapshotTests: XCTestCase {
    func testARestoredIKESAGoesOnWithLivenessRekeysAndDelete() throws {
        for (proposal, esp) in [
            ("aes256gcm16-prfsha256-x25519", "aes256gcm16"), ("aes256-sha256-modp2048", "aes256-sha256"),
            ("chacha20poly1305-prfsha512-ecp384", "chacha20poly1305")
        ] {
            let pair = try Fixtures.pair(proposal: proposal, esp: esp)
            pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
            XCTAssertEqual(pair.events("responder", .childEstablished).count, 1, proposal)
            pair.now = 5
            pair.run(pair.initiator.checkLiveness(connection: "c", now: 5), from: "initiator")

            let snapshots = pair.responder.snapshots(now: 5)
            XCTAssertEqual(snapshots.count, 1)
            let stored = try JSONDecoder().decode([IKESASnapshot].self, from: JSONEncoder().encode(snapshots))
            XCTAssertEqual(stored, snapshots, "the snapshot survives a JSON round trip")
            XCTAssertEqual(stored[0].expectedRequestID, 3, "IKE_SA_INIT (0), IKE_AUTH (1) and the liveness check (2) were answered")

            let before = pair.responder.sessionSummaries
            let restarted = IKEEngine(
                connections: [try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: proposal, esp: esp)],
                random: SeededRandom(seed: 3))
            try restarted.restore(stored[0], now: 5)
            XCTAssertEqual(restarted.sessionSummaries, before)
            XCTAssertThrowsError(try restarted.restore(stored[0], now: 5)) { XCTAssertEqual($0 as? SnapshotRestoreError, .alreadyPresent) }
            pair.responder = restarted

            // The peer checks liveness and rekeys the CHILD SA: the restored engine answers both.
            pair.now = 6
            pair.run(pair.initiator.checkLiveness(connection: "c", now: 6), from: "initiator")
            pair.run(pair.initiator.rekeyChild(connection: "c", now: 6), from: "initiator")
            XCTAssertEqual(pair.events("responder", .childRekeyed).count, 1, "\(proposal): CHILD SA rekeyed with the restored engine")
            XCTAssertEqual(pair.events("initiator", .childRekeyed).count, 1)
            // The restored side starts exchanges itself too: an IKE SA rekey, then a delete.
            pair.run(restarted.rekeyIKE(connection: "c", now: 7), from: "responder")
            XCTAssertEqual(pair.events("initiator", .ikeRekeyed).count, 1, "\(proposal): IKE SA rekey started by the restored engine")
            pair.run(restarted.deleteIKE(connection: "c", now: 8), from: "responder")
            XCTAssertEqual(pair.events("initiator", .ikeDeleted).count, 1)
            XCTAssertTrue(pair.drops.isEmpty, "\(pair.drops)")
        }
    }

    /// The answer to the peer's last request is part of the snapshot: a peer whose answer was lost retransmits the
    /// request, and the engine restored from the snapshot (a daemon that took over) answers it with the same octets
    /// (RFC 7296 section 2.1), instead of dropping it as an old message ID.
    func testARestoredIKESAAnswersARetransmittedLastRequestFromTheSnapshot() throws {
        let pair = try Fixtures.pair()
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        let request = try XCTUnwrap(pair.takeRequest(pair.initiator.checkLiveness(connection: "c", now: 1)))
        let sent = EnginePair.sent(pair.responder.receive(request.payload, from: request.source, to: request.destination, now: 1))
        XCTAssertEqual(sent.count, 1, "answered once; the answer is lost on its way")
        let stored = try JSONDecoder().decode([IKESASnapshot].self, from: JSONEncoder().encode(pair.responder.snapshots(now: 1)))
        XCTAssertEqual(stored.first?.lastResponseID, 2)
        let restarted = IKEEngine(
            connections: [
                try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
            ],
            random: SeededRandom(seed: 9))
        try restarted.restore(try XCTUnwrap(stored.first), now: 2)
        let resent = EnginePair.sent(restarted.receive(request.payload, from: request.source, to: request.destination, now: 2))
        XCTAssertEqual(resent, sent, "the same answer, from the restored engine")
        var older = try XCTUnwrap(stored.first)
        older.lastResponseID = nil
        older.lastResponse = nil
        let withoutIt = IKEEngine(
            connections: [
                try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
            ],
            random: SeededRandom(seed: 9))
        try withoutIt.restore(older, now: 2)
        XCTAssertTrue(
            EnginePair.sent(withoutIt.receive(request.payload, from: request.source, to: request.destination, now: 2)).isEmpty,
            "a snapshot saved before it was kept cannot answer it (what the HA test met)")
    }

    /// Issue 22: a hybrid IKE SA (X25519 + ML-KEM-768) with a post-quantum preshared key, and a CHILD SA rekeyed with
    /// IKE_FOLLOWUP_KE, come back with every key exchange and the PPK's name, and rekey on with them.
    func testAQuantumSafeIKESAComesBackWithItsKeyExchangesAndPPK() throws {
        let (ike, esp) = ("aes256gcm16-prfsha256-x25519-ke1_mlkem768", "aes256gcm16-x25519-ke1_mlkem768")
        func connection(_ local: String, _ remote: String) throws -> ConnectionConfiguration {
            var connection = try Fixtures.connection(local: local, remote: remote, proposal: ike, esp: esp)
            connection.postQuantumPresharedKey = PostQuantumPresharedKey(
                identity: Array("ppk-1".utf8), key: KeyMaterial(Array("a post-quantum preshared key of 256 bits or more".utf8)), required: true)
            return connection
        }
        let pair = EnginePair(
            initiator: [try connection("192.0.2.1", "192.0.2.2")], responder: [try connection("192.0.2.2", "192.0.2.1")],
            initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!)
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        pair.run(pair.initiator.rekeyChild(connection: "c", now: 1), from: "initiator")
        XCTAssertEqual(pair.events("responder", .childRekeyed).first?.child?.suite.name, esp)
        let stored = try JSONDecoder().decode([IKESASnapshot].self, from: JSONEncoder().encode(pair.responder.snapshots(now: 2)))
        XCTAssertEqual(stored.first?.ppkIdentity, Array("ppk-1".utf8))
        let restarted = IKEEngine(connections: [try connection("192.0.2.2", "192.0.2.1")], random: SeededRandom(seed: 3))
        let events = try restarted.restore(try XCTUnwrap(stored.first), now: 2)
        XCTAssertEqual(events.first?.ikeSuite?.name, ike, "the IKE SA's additional key exchange is kept")
        XCTAssertEqual(events.first?.child?.suite.name, esp, "and the CHILD SA's")
        XCTAssertEqual(events.first?.ppkIdentity, "ppk-1", "and the PPK's name")
        XCTAssertEqual(restarted.sessions.values.first?.keys, pair.responder.sessions.values.first { $0.state == .established }?.keys)
        // A snapshot saved before the PPK was kept still reads.
        var old = try XCTUnwrap(stored.first)
        old.ppkIdentity = nil
        var json = try XCTUnwrap(String(data: JSONEncoder().encode(old), encoding: .utf8))
        json = json.replacingOccurrences(of: ",\"ppkIdentity\":null", with: "")
        XCTAssertNil(try JSONDecoder().decode(IKESASnapshot.self, from: Data(json.utf8)).ppkIdentity)
        // The restored side rekeys on, with IKE_FOLLOWUP_KE.
        pair.responder = restarted
        pair.now = 3
        pair.run(restarted.rekeyChild(connection: "c", now: 3), from: "responder")
        XCTAssertEqual(pair.events("initiator", .childRekeyed).count, 2)
        pair.run(restarted.rekeyIKE(connection: "c", now: 4), from: "responder")
        XCTAssertEqual(pair.events("initiator", .ikeRekeyed).first?.ikeSuite?.name, ike)
        XCTAssertTrue(pair.drops.isEmpty, "\(pair.drops)")
    }

    func testARestoreNeedsItsConnectionAndAWellFormedSnapshot() throws {
        let pair = try Fixtures.pair()
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        var snapshot = try XCTUnwrap(pair.responder.snapshots(now: 1).first)
        let empty = IKEEngine(connections: [])
        XCTAssertThrowsError(try empty.restore(snapshot, now: 0)) { XCTAssertEqual($0 as? SnapshotRestoreError, .unknownConnection("c")) }
        let engine = IKEEngine(connections: [
            try Fixtures.connection(
                local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519",
                esp: "aes256gcm16")
        ])
        snapshot.suite = "nonsense"
        XCTAssertThrowsError(try engine.restore(snapshot, now: 0)) { XCTAssertEqual($0 as? SnapshotRestoreError, .malformed("IKE suite 'nonsense'")) }
    }
}
