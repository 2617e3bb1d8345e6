import XCTest

@testable import IKEv2

/// `settings.log_level` (issue 21): at "warning" the lines of negotiations going as they should are not made;
/// what goes wrong is still said; the negotiation itself is the same.
final class LogLevelTests: XCTestCase {
    func pair(_ level: LogLevel, proposal: String = "aes256gcm16-prfsha256-x25519") throws -> EnginePair {
        var settings = EngineSettings()
        settings.logLevel = level
        let a = "192.0.2.1"
        let b = "192.0.2.2"
        return EnginePair(
            initiator: [try Fixtures.connection(local: a, remote: b, proposal: proposal, esp: "aes256gcm16")],
            responder: [try Fixtures.connection(local: b, remote: a, proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")],
            initiatorAddress: IPAddress(a)!, responderAddress: IPAddress(b)!, responderSettings: settings, initiatorSettings: settings)
    }

    func negotiateAndRekey(_ pair: EnginePair) {
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        pair.run(pair.initiator.rekeyChild(connection: "c", spi: nil, now: 1), from: "initiator")
        pair.run(pair.responder.rekeyIKE(connection: "c", now: 2), from: "responder")
    }

    func testAtWarningANegotiationAndItsRekeysLogNothingAndHappenAlike() throws {
        let info = try pair(.info)
        negotiateAndRekey(info)
        let warning = try pair(.warning)
        negotiateAndRekey(warning)
        XCTAssertGreaterThanOrEqual(info.logs.count, 8, "at info: INIT, authenticated, established, rekeyed, ...")
        XCTAssertTrue(info.logs.contains { $0.line.contains("authenticated by pre-shared key") })
        XCTAssertTrue(info.logs.contains { $0.line.hasPrefix("IKE_SA_INIT from") })
        XCTAssertEqual(warning.logs.map(\.line), [], "nothing went wrong: nothing said")
        XCTAssertEqual(info.events.map(\.event.kind), warning.events.map(\.event.kind))
        XCTAssertEqual(warning.events.filter { $0.event.kind == .childRekeyed }.count, 2)
        XCTAssertEqual(warning.events.filter { $0.event.kind == .ikeRekeyed }.count, 2)
    }

    func testAtWarningWhatGoesWrongIsStillSaid() throws {
        let warning = try pair(.warning, proposal: "aes128-sha256-modp2048")
        warning.run(warning.initiator.initiate(connection: "c", now: 0), from: "initiator")
        XCTAssertTrue(warning.logs.contains { $0.line.contains("no acceptable proposal") }, "\(warning.logs)")
        XCTAssertEqual(warning.events.map(\.event.kind), [.ikeFailed])
    }
}
