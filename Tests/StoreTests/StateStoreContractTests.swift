import Foundation
import XCTest

@testable import Store

/// What every `StateStore` must do, whatever keeps the state: run here on a real SQLite file (`StateDatabase`).
/// A second backend (PostgreSQL, issue 23) subclasses this class with its own `makeStore` and must pass the same.
class StateStoreContractTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ikp-store-contract-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// An empty store at the current schema version.
    func makeStore() throws -> any StateStore { try StateDatabase(path: directory.appendingPathComponent("state.db").path) }

    func row(_ id: UInt64, _ address: String) -> StateDatabase.TerminalRow {
        StateDatabase.TerminalRow(terminalID: id, mac: nil, addresses: [address], sealedEnrollmentKey: [1, 2, 3], keyDeliveryPort: 9500)
    }

    func testItStartsEmptyAtTheCurrentSchemaVersion() throws {
        let store = try makeStore()
        XCTAssertEqual(try store.describe().version, StateDatabase.schemaVersion)
        XCTAssertFalse(store.location.isEmpty)
        XCTAssertTrue(try store.terminals().isEmpty)
        XCTAssertTrue(try store.ikeSAs().isEmpty)
        XCTAssertNil(try store.meta("wrapped_data_key"))
    }

    func testMetaValuesAreSetAndReplaced() throws {
        let store = try makeStore()
        try store.setMeta("wrapped_data_key", "AAAA")
        try store.setMeta("wrapped_data_key", "BBBB")
        XCTAssertEqual(try store.meta("wrapped_data_key"), "BBBB")
    }

    func testTheNewestAuditEntriesAreReadOldestFirst() throws {
        let store = try makeStore()
        for n in 1...7 { try store.audit(who: n.isMultiple(of: 2) ? "alice" : "bob", action: "policy.add", detail: "rule \(n)", now: Double(n)) }
        let (entries, total) = try store.recentAudit(limit: 3)
        XCTAssertEqual(total, 7)
        XCTAssertEqual(entries.map(\.detail), ["rule 5", "rule 6", "rule 7"])
        XCTAssertEqual(entries.map(\.who), ["bob", "alice", "bob"])
        XCTAssertEqual(try store.recentAudit(limit: 500).entries.count, 7)
        XCTAssertEqual(try store.auditLog().map(\.time), (1...7).map(Double.init))
    }

    /// The file's policy is replaced at each start, unless administrators changed it; reverting hands it back.
    func testThePolicyAnAdministratorSetOutlivesTheFilesUntilReverted() throws {
        let store = try makeStore()
        try store.replaceConfiguration(terminals: [], profiles: [("peer", "ike 1", [9, 9])], rules: ["file 1", "file 2"], now: 1)
        XCTAssertEqual(try store.policyRules(), ["file 1", "file 2"])
        try store.replacePolicy(rules: ["api 1"], defaultAction: "discard", who: "alice", now: 2)
        XCTAssertEqual(try store.meta("policy_default"), "discard")
        XCTAssertEqual(try store.meta("policy_source"), "api:alice:2.0")
        try store.replaceConfiguration(terminals: [], profiles: [], rules: ["file 3"], now: 3)
        XCTAssertEqual(try store.policyRules(), ["api 1"], "a start with the file keeps the administrator's policy")
        try store.revertPolicy(toFileRules: ["file 3"])
        XCTAssertEqual(try store.policyRules(), ["file 3"])
        XCTAssertNil(try store.meta("policy_source"))
        XCTAssertNil(try store.meta("policy_default"))
    }

    /// Terminals changed over the API outlive restarts: an added one supersedes the file's under its ID, a
    /// removed one stays removed until added again.
    func testTerminalsAddedAndRemovedOverTheAPIAreKept() throws {
        let store = try makeStore()
        try store.saveApprovedTerminal(row(5, "192.0.2.5"), now: 1)
        try store.replaceConfiguration(terminals: [row(5, "192.0.2.55"), row(6, "192.0.2.6")], profiles: [], rules: [], now: 2)
        XCTAssertEqual(try store.approvedTerminals().map(\.addresses), [["192.0.2.5"]], "the file does not overwrite the API's terminal 5")
        XCTAssertEqual(try store.terminals().map(\.terminalID), [5, 6])
        try store.replaceConfigurationTerminals([row(7, "192.0.2.7")])
        XCTAssertEqual(try store.terminals().map(\.terminalID), [5, 7], "a reload replaces the file's terminals only")
        try store.saveRemovedTerminal(5, who: "alice", now: 3)
        try store.saveRemovedTerminal(7, who: "bob", now: 4)
        XCTAssertTrue(try store.approvedTerminals().isEmpty, "removing forgets the API's terminal")
        XCTAssertEqual(try store.removedTerminals().map(\.terminalID), [5, 7])
        XCTAssertEqual(try store.removedTerminals().map(\.who), ["alice", "bob"])
        try store.saveApprovedTerminal(row(7, "192.0.2.77"), now: 5)
        XCTAssertEqual(try store.removedTerminals().map(\.terminalID), [5], "adding terminal 7 again ends its removal")
        XCTAssertEqual(try store.terminals().first { $0.terminalID == 7 }?.sealedEnrollmentKey, [1, 2, 3])
    }

    func testHostsAndLinkAddressesAreReplacedAndReadBack() throws {
        let store = try makeStore()
        let host = StateDatabase.HostRow(mac: "02:00:00:00:00:0a", ipv4: ["10.0.0.10"], ipv6: ["fe80::a"], learntFrom: ["arp", "dhcp"], lastSeen: 5)
        try store.saveHosts([host])
        var seen = host
        seen.lastSeen = 9
        try store.saveHosts([seen])
        XCTAssertEqual(try store.hosts(), [seen])
        let peer = StateDatabase.StationRow(address: "192.0.2.1", mac: "02:00:00:00:00:01", vlanIDs: [100, 200], side: "internet")
        let terminal = StateDatabase.StationRow(address: "2001:db8::2", mac: "02:00:00:00:d0:02", vlanIDs: [], side: "terminal")
        try store.saveStations(changed: [terminal, peer], removed: [])
        XCTAssertEqual(try store.stations(), [peer, terminal])
        try store.saveStations(changed: [], removed: [peer.address])
        XCTAssertEqual(try store.stations(), [terminal], "a removed address's row goes")
        var moved = terminal
        moved.mac = "02:00:00:00:d0:03"
        try store.saveStations(changed: [peer, moved], removed: [])
        XCTAssertEqual(try store.stations(), [peer, moved], "a change adds and rewrites rows, and keeps the others")
    }

    /// SAs are written and removed as IKE SAs with their CHILD SA rows; sequence numbers only grow.
    func testSAsSequenceNumbersCountersAndCutNegotiations() throws {
        let store = try makeStore()
        func ike(_ spi: String, saved: Double) -> StateDatabase.IKESARow {
            StateDatabase.IKESARow(
                spiInitiator: spi, spiResponder: spi + "r", connection: "c", terminal: "10.0.0.11", peer: "198.51.100.1",
                sealedState: [UInt8](repeating: 7, count: 40), savedAt: saved)
        }
        func child(_ spi: String, ike: String) -> StateDatabase.ChildSARow {
            StateDatabase.ChildSARow(
                spiOutbound: spi, spiInbound: spi + "i", terminal: "10.0.0.11", peer: "198.51.100.1", ikeSPIInitiator: ike,
                ikeSPIResponder: ike + "r", suite: "aes256gcm16", mode: "tunnel", createdAt: 1)
        }
        try store.saveIKESAs([(ike("a", saved: 1), [child("c1", ike: "a")]), (ike("b", saved: 1), [child("c2", ike: "b")])], removed: [])
        try store.saveIKESAs([(ike("a", saved: 2), [child("c1", ike: "a"), child("c3", ike: "a")])], removed: [("b", "br")])
        XCTAssertEqual(try store.ikeSAs().map(\.spiInitiator), ["a"])
        XCTAssertEqual(try store.ikeSAs().first?.savedAt, 2)
        XCTAssertEqual(Set(try store.childSAs().map(\.spiOutbound)), ["c1", "c3"], "b's CHILD SA went with it")
        try store.saveProgress(sequences: ["c1": 500, "c3": 7], counters: ["negotiations_started": 3])
        try store.saveProgress(sequences: ["c1": 100], counters: ["negotiations_started": 4])
        XCTAssertEqual(try store.highestOutboundSequences(), ["c1": 500, "c3": 7], "a lower sequence number never overwrites a higher one")
        XCTAssertEqual(try store.counters(), ["negotiations_started": 4])
        try store.replaceNegotiations([("n1", "n1r", "gateway-10.0.0.12")], now: 3)
        XCTAssertEqual(try store.takeNegotiations(), ["gateway-10.0.0.12 (n1)"])
        XCTAssertEqual(try store.takeNegotiations(), [], "taken once")
    }
}
