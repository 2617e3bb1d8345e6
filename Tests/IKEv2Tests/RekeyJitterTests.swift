import XCTest

@testable import IKEv2

/// Rekey times with a random part (strongSwan's rand_time): SAs made in the same moment rekey spread over
/// the jitter, never later than the rekey time, and a restored CHILD SA keeps its moment.
final class RekeyJitterTests: XCTestCase {
    /// `count` IKE SAs, each with its CHILD SA, all made at time 0 by the initiator, whose connection rekeys
    /// CHILD SAs after 100 s less up to `childJitter` and IKE SAs after 100 s less up to `ikeJitter`.
    func madeTogether(count: Int, childJitter: Double, ikeJitter: Double) throws -> EnginePair {
        var a = try Fixtures.connection(local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        a.children[0].rekeyTime = 100
        a.children[0].rekeyJitter = childJitter
        a.rekeyTime = 100
        a.rekeyJitter = ikeJitter
        let b = try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        let pair = EnginePair(initiator: [a], responder: [b], initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!)
        for _ in 0..<count { pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator") }
        XCTAssertEqual(pair.events("responder", .childEstablished).count, count)
        return pair
    }

    /// The times at which the initiator asked for rekeys whose log line starts with `prefix`, stepping the clock
    /// by half a second up to `end`.
    func rekeyTimes(_ pair: EnginePair, prefix: String, until end: Double) -> [Double] {
        var times: [Double] = []
        var step = 0.5
        while step <= end {
            let before = pair.logs.count
            pair.advance(to: step)
            times += pair.logs[before...].filter { $0.side == "initiator" && $0.line.hasPrefix(prefix) }.map { _ in step }
            step += 0.5
        }
        return times
    }

    func testCHILDSAsMadeTogetherRekeySpreadOverTheJitterNeverAfterTheRekeyTime() throws {
        let pair = try madeTogether(count: 24, childJitter: 40, ikeJitter: 0)
        let times = rekeyTimes(pair, prefix: "rekeying CHILD SA", until: 100)
        XCTAssertEqual(times.count, 24, "every CHILD SA rekeyed by its rekey time")
        XCTAssertGreaterThanOrEqual(times.min() ?? 0, 60, "none before the rekey time less the whole jitter")
        XCTAssertGreaterThan((times.max() ?? 0) - (times.min() ?? 0), 20, "spread over the jitter, not all at once: \(times)")
        XCTAssertGreaterThan(Set(times).count, 12, "at many different moments: \(times)")
        XCTAssertEqual(pair.events("responder", .childRekeyed).count, 24)
        XCTAssertTrue(
            pair.logs.contains { $0.line.hasPrefix("rekeying CHILD SA") && $0.line.contains("(age \(Int(times[0])).") },
            "the log says how old the SA was")
    }

    func testIKESAsMadeTogetherRekeySpreadOverTheJitter() throws {
        let pair = try madeTogether(count: 24, childJitter: 0, ikeJitter: 40)
        let times = rekeyTimes(pair, prefix: "rekeying IKE SA", until: 100)
        XCTAssertEqual(times.count, 24)
        XCTAssertGreaterThanOrEqual(times.min() ?? 0, 60)
        XCTAssertGreaterThan((times.max() ?? 0) - (times.min() ?? 0), 20, "\(times)")
        XCTAssertEqual(pair.events("responder", .ikeRekeyed).count, 24)
    }

    func testWithoutJitterEverySAComesDueAtTheRekeyTime() throws {
        let pair = try madeTogether(count: 8, childJitter: 0, ikeJitter: 0)
        let times = rekeyTimes(pair, prefix: "rekeying CHILD SA", until: 100)
        XCTAssertEqual(times, Array(repeating: 100, count: 8))
    }

    /// The random part of a CHILD SA's rekey time comes from its inbound SPI: a restart (snapshot, restore
    /// into an engine with another random generator) keeps the moment, and nothing extra is stored.
    func testARestoredCHILDSAKeepsItsRekeyMoment() throws {
        func responderRekeying() throws -> EnginePair {
            let a = try Fixtures.connection(local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
            var b = try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
            b.children[0].rekeyTime = 100
            b.children[0].rekeyJitter = 50
            let pair = EnginePair(
                initiator: [a], responder: [b], initiatorAddress: IPAddress("192.0.2.1")!,
                responderAddress: IPAddress("192.0.2.2")!)
            pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
            return pair
        }
        func rekeyMoment(_ pair: EnginePair) -> Double? {
            var step = 10.5
            while step <= 100 {
                pair.advance(to: step)
                if !pair.events("responder", .childRekeyed).isEmpty { return step }
                step += 0.5
            }
            return nil
        }
        let original = try responderRekeying()
        let moment = try XCTUnwrap(rekeyMoment(original))
        XCTAssertLessThan(moment, 100, "the jitter took something off")

        let restarted = try responderRekeying()
        let snapshot = try XCTUnwrap(restarted.responder.snapshots(now: 10).first)
        let engine = IKEEngine(connections: [restarted.responder.connection(named: "c")!], random: SeededRandom(seed: 99))
        try engine.restore(snapshot, now: 10)
        restarted.responder = engine
        XCTAssertEqual(rekeyMoment(restarted), moment)
    }

    /// What `ikeproxy sas` shows as REKEY IN: the SA's own moment, counted down; nothing once it is replaced,
    /// nor where the peer rekeys.
    func testTheTimeUntilACHILDSARekeysIsItsOwnMoment() throws {
        let pair = try madeTogether(count: 3, childJitter: 40, ikeJitter: 0)
        let children = pair.events("initiator", .childEstablished).compactMap(\.child)
        let waits = try children.map { try XCTUnwrap(pair.initiator.secondsUntilRekey(childInbound: $0.spiInbound, now: 10)) }
        for (child, wait) in zip(children, waits) {
            XCTAssertEqual(
                wait, RekeySchedule.childRekeyAge(pair.initiator.connection(named: "c")!.children[0], spiInbound: child.spiInbound)! - 10,
                accuracy: 1e-9)
            XCTAssertTrue((50...90).contains(wait), "\(wait)")
        }
        XCTAssertNil(pair.responder.secondsUntilRekey(childInbound: children[0].spiOutbound, now: 10), "the responder leaves it to the peer")
        XCTAssertNil(pair.initiator.secondsUntilRekey(childInbound: ChildSPI(12345), now: 10), "no such SA")
        _ = rekeyTimes(pair, prefix: "rekeying CHILD SA", until: 100)
        XCTAssertNil(pair.initiator.secondsUntilRekey(childInbound: children[0].spiInbound, now: 100), "replaced by its rekey")
    }

    func testTheFractionCoversItsRange() {
        let fractions = (UInt32(256)..<UInt32(256 + 1000)).map(RekeySchedule.fraction)
        XCTAssertTrue(fractions.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(Set(fractions.map { Int($0 * 10) }).count, 10, "SPIs handed out one after another still spread over every tenth")
    }
}
