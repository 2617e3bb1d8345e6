/// What the daemon keeps across restarts: the configuration tables, what administrators changed over the API, the
/// SAs (sealed), sequence numbers and counters, link addresses and the audit log. The daemon and
/// `ProxyStateStore` speak to this protocol only, so that a second backend can stand where SQLite
/// (`StateDatabase`) does: PostgreSQL, shared by a pair of daemons (issue 23). Every secret is sealed before
/// it gets here.
public protocol StateStore: AnyObject, Sendable {
    typealias TerminalRow = StateDatabase.TerminalRow
    typealias HostRow = StateDatabase.HostRow
    typealias StationRow = StateDatabase.StationRow
    typealias IKESARow = StateDatabase.IKESARow
    typealias ChildSARow = StateDatabase.ChildSARow

    /// Where the state is, for log lines: a file path or a database's address.
    var location: String { get }
    /// The schema version the store is at, and how it writes (SQLite's journal mode).
    func describe() throws -> (version: Int, journalMode: String)

    // Management: settings of the daemon's own, the policy and terminals administrators changed, the audit log.
    func meta(_ key: String) throws -> String?
    func setMeta(_ key: String, _ value: String) throws
    func replacePolicy(rules: [String], defaultAction: String, who: String, now: Double) throws
    func revertPolicy(toFileRules rules: [String]) throws
    func policyRules() throws -> [String]
    func saveApprovedTerminal(_ t: TerminalRow, now: Double) throws
    func saveRemovedTerminal(_ terminalID: UInt64, who: String, now: Double) throws
    func removedTerminals() throws -> [(terminalID: UInt64, who: String, at: Double)]
    func approvedTerminals() throws -> [TerminalRow]
    func audit(who: String, action: String, detail: String, now: Double) throws
    func auditLog() throws -> [(time: Double, who: String, action: String, detail: String)]
    func recentAudit(limit: Int) throws -> (entries: [(time: Double, who: String, action: String, detail: String)], total: Int)

    // The configuration file's tables, replaced at each start and reload.
    func replaceConfiguration(
        terminals: [TerminalRow], profiles: [(name: String, definition: String, sealedPreSharedKey: [UInt8])], rules: [String], now: Double
    ) throws
    func replaceConfigurationTerminals(_ terminals: [TerminalRow]) throws
    func terminals() throws -> [TerminalRow]

    // Discovery and the link addresses the proxy speaks from.
    func saveHosts(_ hosts: [HostRow]) throws
    func hosts() throws -> [HostRow]
    func saveStations(changed: [StationRow], removed: [String]) throws
    func stations() throws -> [StationRow]

    // SAs, sequence numbers, counters and the negotiations a restart cut.
    func saveIKESAs(_ upserts: [(IKESARow, [ChildSARow])], removed: [(String, String)]) throws
    func ikeSAs() throws -> [IKESARow]
    func childSAs() throws -> [ChildSARow]
    func highestOutboundSequences() throws -> [String: UInt64]
    func saveProgress(sequences: [String: UInt64], counters: [String: Int]) throws
    func counters() throws -> [String: Int]
    func replaceNegotiations(_ rows: [(spiInitiator: String, spiResponder: String, connection: String)], now: Double) throws
    func takeNegotiations() throws -> [String]
}

extension StateDatabase: StateStore {
    public var location: String { path }
}
