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
