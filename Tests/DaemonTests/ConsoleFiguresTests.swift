import XCTest

@testable import Daemon
@testable import IKEv2

/// The figures the console draws that the daemon keeps for it: each terminal's traffic over the last hour,
/// and the last failed negotiations.
final class ConsoleFiguresTests: XCTestCase {
    typealias Usage = TerminalTrafficHistory.Usage

    func totals(_ history: TerminalTrafficHistory, _ terminal: String) -> [String] {
        (history.samples[terminal] ?? []).map { "\($0.octetsIn)/\($0.octetsOut)" }
    }

    func testTotalsGrowByWhatEachSAAddedAcrossARekeyAndADeletion() {
        var history = TerminalTrafficHistory(interval: 10, span: 3_600)
        history.record(now: 0) { [Usage(terminal: "a", spi: 1, octetsIn: 100, octetsOut: 10)] }
        history.record(now: 10) { [Usage(terminal: "a", spi: 1, octetsIn: 300, octetsOut: 30)] }
        // Rekeyed: the new SA counts from zero beside the old one, which then goes.
        history.record(now: 20) {
            [Usage(terminal: "a", spi: 1, octetsIn: 350, octetsOut: 30), Usage(terminal: "a", spi: 2, octetsIn: 50, octetsOut: 5)]
        }
        history.record(now: 30) { [Usage(terminal: "a", spi: 2, octetsIn: 150, octetsOut: 5)] }
        // Every SA gone: the totals stay.
        history.record(now: 40) { [] }
        XCTAssertEqual(totals(history, "a"), ["100/10", "300/30", "400/35", "500/35", "500/35"])
    }

    func testACounterThatWentDownIsANewSAOnTheSameSPI() {
        var history = TerminalTrafficHistory(interval: 1, span: 3_600)
        history.record(now: 0) { [Usage(terminal: "a", spi: 7, octetsIn: 1_000, octetsOut: 0)] }
        history.record(now: 1) { [Usage(terminal: "a", spi: 7, octetsIn: 40, octetsOut: 0)] }
        XCTAssertEqual(history.samples["a"]?.map(\.octetsIn), [1_000, 1_040])
    }

    func testSamplesComeAtTheIntervalAndOnlyTheLastHourIsKept() {
        var history = TerminalTrafficHistory(interval: 10, span: 60)
        var reads = 0
        for second in 0...200 {
            history.record(now: Double(second)) {
                reads += 1
                return [Usage(terminal: "a", spi: 1, octetsIn: UInt64(second), octetsOut: 0), Usage(terminal: "b", spi: 2, octetsIn: 1, octetsOut: 1)]
            }
        }
        XCTAssertEqual(reads, 21, "the usage is read once per interval, not at every call")
        XCTAssertEqual(history.samples["a"]?.map(\.at), [140, 150, 160, 170, 180, 190, 200])
        XCTAssertEqual(history.samples["b"]?.count, 7, "every terminal has its own samples")
    }

    func testTheBusiestTerminalsComeFirstByWhatTheyCarriedOverTheSamplesKept() {
        var history = TerminalTrafficHistory(interval: 1, span: 3_600)
        for second in 0...2 {
            let n = UInt64(second)
            history.record(now: Double(second)) {
                [
                    Usage(terminal: "a", spi: 1, octetsIn: 10 * n, octetsOut: 0), Usage(terminal: "b", spi: 2, octetsIn: 0, octetsOut: 100 * n),
                    Usage(terminal: "c", spi: 3, octetsIn: 10 * n, octetsOut: 0), Usage(terminal: "d", spi: 4, octetsIn: 5, octetsOut: 5)
                ]
            }
        }
        XCTAssertEqual(history.busiest(3), ["b", "a", "c"], "most octets first, ties by address; d carried nothing after its first sample")
        XCTAssertEqual(history.busiest(10).count, 4)
    }

    func event(_ kind: SAEvent.Kind, _ detail: String?) -> SAEvent {
        SAEvent(
            kind: kind, connection: "t1-peer", spiInitiator: IKESPI(bytes: Array(repeating: 1, count: 8)),
            spiResponder: IKESPI(bytes: Array(repeating: 2, count: 8)),
            local: Endpoint(IPAddress("192.0.2.2")!, 500), remote: Endpoint(IPAddress("192.0.2.1")!, 500),
            ikeSuite: nil, child: nil, detail: detail)
    }

    func testOnlyFailuresAreKeptTheNewestWithinTheLimit() {
        var failures = RecentFailures(limit: 3)
        failures.note(event(.ikeEstablished, nil), at: 1)
        failures.note(event(.ikeFailed, "AUTHENTICATION_FAILED"), at: 2)
        failures.note(event(.childFailed, "NO_PROPOSAL_CHOSEN"), at: 3)
        failures.note(event(.childDeleted, nil), at: 4)
        failures.note(event(.ikeFailed, nil), at: 5)
        failures.note(event(.ikeFailed, "peer did not answer"), at: 6)
        XCTAssertEqual(failures.failures.map(\.at), [3, 5, 6])
        XCTAssertEqual(failures.failures.map(\.reason), ["NO_PROPOSAL_CHOSEN", "no reason given", "peer did not answer"])
        XCTAssertEqual(failures.failures.first?.kind, "child_sa_failed")
        XCTAssertEqual(failures.failures.first?.peer, "192.0.2.1")
    }
}
