import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresNIO

/// The daemon's state in PostgreSQL, for a pair of daemons that share it (issue 23): the same tables and schema
/// versions as the SQLite file (`StateDatabase`), in PostgreSQL's dialect, every secret sealed before it gets here.
/// The daemon's loop is synchronous, so each call waits for its answer on a connection of its own event loop
/// (never a Swift concurrency thread); one call at a time, each change in one transaction.
public final class PostgreSQLStateStore: StateStore, @unchecked Sendable {
    public let settings: Settings
    public var location: String { settings.location }

    /// What went wrong with the database, said in full: postgres-nio's own description of an error hides the
    /// server's message (it may hold data), but ours only ever carries sealed secrets.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The server's message and code when it gave one; else the error as postgres-nio describes it for debugging.
    static func explain(_ error: Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                return message + (error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        return String(describing: error)
    }
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    /// Nil after a failure that may have left it unusable (a timeout, a lost connection): the next statement
    /// connects again.
    private var connection: PostgresConnection?
    private let lock = NIOLock()
    /// Set by the holder of the pair's lease: every change then checks, in its own transaction, that the lease is
    /// still this holder's, under this fencing number and not expired, or changes nothing (`LeaseStore`).
    private var fence: LeaseFence?

    public init(settings: Settings) throws {
        self.settings = settings
        do { try connect() } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        try migrate()
    }

    deinit {
        try? connection?.close().wait()
        try? group.syncShutdownGracefully()
    }

    private func connect() throws {
        var configuration = PostgresConnection.Configuration(
            host: settings.host, port: settings.port, username: settings.username, password: settings.password,
            database: settings.database, tls: try settings.connectionTLS())
        configuration.options.connectTimeout = .milliseconds(Int64(settings.timeout * 1000))
        do {
            connection = try PostgresConnection.connect(
                on: group.next(), configuration: configuration, id: 1, logger: Logger(label: "ikeproxy.store.postgresql")
            ).wait()
        } catch {
            throw Failure(description: "cannot connect to \(settings.location): \(Self.explain(error))")
        }
    }

    // MARK: queries

    /// One statement; `$1`, `$2`... take `binds`. An answer that does not come within `settings.timeout` (the
    /// server or the path to it gone: TCP alone would wait minutes) fails the statement, and the connection is
    /// dropped so that the next statement starts on a new one.
    @discardableResult
    private func run(_ sql: String, _ binds: [PostgresData] = []) throws -> [PostgresRandomAccessRow] {
        if connection == nil { try connect() }
        guard let connection else { throw Failure(description: "\(location): not connected") }
        let loop = connection.eventLoop
        let answer = loop.makePromise(of: PostgresQueryResult.self)
        let timer = loop.scheduleTask(in: .milliseconds(Int64(settings.timeout * 1000))) {
            answer.fail(Failure(description: "\(self.location): no answer within \(self.settings.timeout) s"))
        }
        connection.query(sql, binds).cascade(to: answer)
        do {
            let result = try answer.futureResult.wait()
            timer.cancel()
            return result.rows.map { $0.makeRandomAccess() }
        } catch {
            timer.cancel()
            if !(error is PSQLError) || (error as? PSQLError)?.serverInfo == nil {
                // Not an answer from the server: the connection cannot be trusted any more.
                self.connection = nil
                // Kept until closed: postgres-nio requires a connection to be closed before it goes.
                connection.close().whenComplete { _ in withExtendedLifetime(connection) {} }
            }
            if let error = error as? Failure { throw error }
            throw Failure(description: "\(location): \(Self.explain(error))")
        }
    }

    /// Statements in one transaction, one caller at a time.
    private func transaction<T>(_ body: () throws -> T) throws -> T {
        try lock.withLock {
            try run("BEGIN")
            do {
                if let fence { try checkFence(fence) }
                let result = try body()
                try run("COMMIT")
                return result
            } catch {
                _ = try? run("ROLLBACK")
                throw error
            }
        }
    }

    private func read<T>(_ body: () throws -> T) throws -> T { try lock.withLock { try body() } }

    /// One statement on its own, one caller at a time (the lease's).
    @discardableResult
    func statement(_ sql: String, _ binds: [PostgresData] = []) throws -> [PostgresRandomAccessRow] {
        try lock.withLock { try run(sql, binds) }
    }

    /// One statement inside a `transaction` already under way (the lock is held).
    func statementInTransaction(_ sql: String, _ binds: [PostgresData]) throws -> [PostgresRandomAccessRow] { try run(sql, binds) }

    public func fenceWrites(_ fence: LeaseFence?) { lock.withLock { self.fence = fence } }

    private static func text(_ value: String) -> PostgresData { PostgresData(string: value) }
    private static func text(_ value: String?) -> PostgresData { value.map(PostgresData.init(string:)) ?? .null }
    private static func bytes(_ value: [UInt8]) -> PostgresData { PostgresData(bytes: value) }
    private static func number(_ value: Double) -> PostgresData { PostgresData(double: value) }
    private static func integer(_ value: Int64) -> PostgresData { PostgresData(int64: value) }

    // MARK: schema

    /// The migrations of `StateDatabase`, same versions, in PostgreSQL's types: BYTEA for blobs, DOUBLE PRECISION
    /// for times, BIGINT for integers.
    static let migrations: [(version: Int, sql: [String])] = [
        (
            1,
            [
                """
                CREATE TABLE terminals (terminal_id BIGINT PRIMARY KEY, mac TEXT, addresses TEXT NOT NULL, enrollment_key BYTEA NOT NULL,
                                        key_delivery_port BIGINT NOT NULL, updated_at DOUBLE PRECISION NOT NULL)
                """,
                "CREATE TABLE profiles (name TEXT PRIMARY KEY, definition TEXT NOT NULL, pre_shared_key BYTEA NOT NULL)",
                "CREATE TABLE policy_rules (position BIGINT PRIMARY KEY, rule TEXT NOT NULL)",
                """
                CREATE TABLE ike_sas (spi_initiator TEXT NOT NULL, spi_responder TEXT NOT NULL, connection TEXT NOT NULL, terminal TEXT NOT NULL,
                                      peer TEXT NOT NULL, state BYTEA NOT NULL, saved_at DOUBLE PRECISION NOT NULL,
                                      PRIMARY KEY (spi_initiator, spi_responder))
                """,
                """
                CREATE TABLE child_sas (spi_outbound TEXT PRIMARY KEY, spi_inbound TEXT NOT NULL, terminal TEXT NOT NULL, peer TEXT NOT NULL,
                                        ike_spi_initiator TEXT NOT NULL, ike_spi_responder TEXT NOT NULL, suite TEXT NOT NULL, mode TEXT NOT NULL,
                                        created_at DOUBLE PRECISION NOT NULL, highest_outbound_sequence BIGINT NOT NULL DEFAULT 0)
                """,
                """
                CREATE TABLE negotiations (spi_initiator TEXT NOT NULL, spi_responder TEXT NOT NULL, connection TEXT NOT NULL,
                                           started_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (spi_initiator, spi_responder))
                """,
                "CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
                """
                CREATE TABLE audit_log (id BIGSERIAL PRIMARY KEY, time DOUBLE PRECISION NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL,
                                        detail TEXT NOT NULL)
                """
            ]
        ),
        (
            2,
            [
                """
                CREATE TABLE discovered_hosts (mac TEXT PRIMARY KEY, ipv4 TEXT NOT NULL, ipv6 TEXT NOT NULL, learnt_from TEXT NOT NULL,
                                               last_seen DOUBLE PRECISION NOT NULL)
                """
            ]
        ),
        (
            3,
            [
                "ALTER TABLE terminals ADD COLUMN source TEXT NOT NULL DEFAULT 'configuration'",
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            ]
        ),
        (4, ["CREATE TABLE removed_terminals (terminal_id BIGINT PRIMARY KEY, who TEXT NOT NULL, removed_at DOUBLE PRECISION NOT NULL)"]),
        (5, ["CREATE TABLE stations (address TEXT PRIMARY KEY, mac TEXT NOT NULL, vlans TEXT NOT NULL, side TEXT NOT NULL)"])
    ]

    /// Brings the database to the current schema, each version in its own transaction; a second daemon starting
    /// at the same moment waits on the lock table rather than migrating twice.
    private func migrate() throws {
        try run("CREATE TABLE IF NOT EXISTS schema_versions (version BIGINT PRIMARY KEY)")
        try run(Self.leaseTable)
        try run(Self.relayTable)
        for (version, statements) in Self.migrations {
            try transaction {
                try run("LOCK TABLE schema_versions IN EXCLUSIVE MODE")
                guard try run("SELECT 1 FROM schema_versions WHERE version = $1", [Self.integer(Int64(version))]).isEmpty else { return }
                for statement in statements { try run(statement) }
                try run("INSERT INTO schema_versions VALUES ($1)", [Self.integer(Int64(version))])
            }
        }
    }

    /// Whether the server says this connection is encrypted (`pg_stat_ssl`).
    public func tlsInUse() throws -> Bool {
        try read { try run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") }.first?[data: "ssl"].bool ?? false
    }

    public func describe() throws -> (version: Int, journalMode: String) {
        let rows = try read { try run("SELECT MAX(version) AS version FROM schema_versions") }
        return (Int(rows.first?[data: "version"].int64 ?? 0), "postgresql")
    }

    // MARK: management

    public func meta(_ key: String) throws -> String? {
        try read { try run("SELECT value FROM meta WHERE key = $1", [Self.text(key)]).first?[data: "value"].string }
    }

    private func upsertMeta(_ key: String, _ value: String) throws {
        try run(
            "INSERT INTO meta VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", [Self.text(key), Self.text(value)])
    }

    public func setMeta(_ key: String, _ value: String) throws { try transaction { try upsertMeta(key, value) } }

    private func insertRules(_ rules: [String]) throws {
        for (position, rule) in rules.enumerated() {
            try run("INSERT INTO policy_rules VALUES ($1, $2)", [Self.integer(Int64(position)), Self.text(rule)])
        }
    }

    public func replacePolicy(rules: [String], defaultAction: String, who: String, now: Double) throws {
        try transaction {
            try run("DELETE FROM policy_rules")
            try insertRules(rules)
            try upsertMeta("policy_source", "api:\(who):\(now)")
            try upsertMeta("policy_default", defaultAction)
        }
    }

    public func revertPolicy(toFileRules rules: [String]) throws {
        try transaction {
            try run("DELETE FROM policy_rules")
            try run("DELETE FROM meta WHERE key IN ('policy_source', 'policy_default')")
            try insertRules(rules)
        }
    }

    public func policyRules() throws -> [String] {
        try read { try run("SELECT rule FROM policy_rules ORDER BY position").compactMap { $0[data: "rule"].string } }
    }

    private func insertTerminal(_ t: TerminalRow, now: Double, source: String, onConflict: String = "") throws {
        try run(
            "INSERT INTO terminals VALUES ($1, $2, $3, $4, $5, $6, $7) \(onConflict)",
            [
                Self.integer(Int64(bitPattern: t.terminalID)), Self.text(t.mac), Self.text(t.addresses.joined(separator: ",")),
                Self.bytes(t.sealedEnrollmentKey), Self.integer(Int64(t.keyDeliveryPort)), Self.number(now), Self.text(source)
            ])
    }

    private static func terminal(_ row: PostgresRandomAccessRow) -> TerminalRow {
        TerminalRow(
            terminalID: UInt64(bitPattern: row[data: "terminal_id"].int64 ?? 0), mac: row[data: "mac"].string,
            addresses: (row[data: "addresses"].string ?? "").split(separator: ",").map(String.init),
            sealedEnrollmentKey: row[data: "enrollment_key"].bytes ?? [], keyDeliveryPort: UInt16(row[data: "key_delivery_port"].int64 ?? 0))
    }

    public func saveApprovedTerminal(_ t: TerminalRow, now: Double) throws {
        let id = Self.integer(Int64(bitPattern: t.terminalID))
        try transaction {
            try run("DELETE FROM terminals WHERE terminal_id = $1", [id])
            try run("DELETE FROM removed_terminals WHERE terminal_id = $1", [id])
            try insertTerminal(t, now: now, source: "api")
        }
    }

    public func saveRemovedTerminal(_ terminalID: UInt64, who: String, now: Double) throws {
        let id = Self.integer(Int64(bitPattern: terminalID))
        try transaction {
            try run("DELETE FROM terminals WHERE terminal_id = $1 AND source = 'api'", [id])
            try run(
                "INSERT INTO removed_terminals VALUES ($1, $2, $3) ON CONFLICT (terminal_id) DO UPDATE SET who = EXCLUDED.who, removed_at = EXCLUDED.removed_at",
                [id, Self.text(who), Self.number(now)])
        }
    }

    public func removedTerminals() throws -> [(terminalID: UInt64, who: String, at: Double)] {
        try read {
            try run("SELECT * FROM removed_terminals ORDER BY terminal_id").map {
                (UInt64(bitPattern: $0[data: "terminal_id"].int64 ?? 0), $0[data: "who"].string ?? "", $0[data: "removed_at"].double ?? 0)
            }
        }
    }

    public func approvedTerminals() throws -> [TerminalRow] {
        try read { try run("SELECT * FROM terminals WHERE source = 'api' ORDER BY terminal_id").map(Self.terminal) }
    }

    public func audit(who: String, action: String, detail: String, now: Double) throws {
        try transaction {
            try run(
                "INSERT INTO audit_log (time, who, action, detail) VALUES ($1, $2, $3, $4)",
                [Self.number(now), Self.text(who), Self.text(action), Self.text(detail)])
        }
    }

    private static func auditEntry(_ row: PostgresRandomAccessRow) -> (time: Double, who: String, action: String, detail: String) {
        (row[data: "time"].double ?? 0, row[data: "who"].string ?? "", row[data: "action"].string ?? "", row[data: "detail"].string ?? "")
    }

    public func auditLog() throws -> [(time: Double, who: String, action: String, detail: String)] {
        try read { try run("SELECT * FROM audit_log ORDER BY id").map(Self.auditEntry) }
    }

    public func recentAudit(limit: Int) throws -> (entries: [(time: Double, who: String, action: String, detail: String)], total: Int) {
        try read {
            let rows = try run("SELECT * FROM audit_log ORDER BY id DESC LIMIT $1", [Self.integer(Int64(limit))])
            let total = try run("SELECT COUNT(*) AS total FROM audit_log").first?[data: "total"].int64 ?? 0
            return (rows.reversed().map(Self.auditEntry), Int(total))
        }
    }

    // MARK: configuration tables

    public func replaceConfiguration(
        terminals: [TerminalRow], profiles: [(name: String, definition: String, sealedPreSharedKey: [UInt8])], rules: [String], now: Double
    ) throws {
        try transaction {
            let policyFromAPI = !(try run("SELECT 1 FROM meta WHERE key = 'policy_source'").isEmpty)
            try run("DELETE FROM terminals WHERE source = 'configuration'")
            try run("DELETE FROM profiles")
            if !policyFromAPI { try run("DELETE FROM policy_rules") }
            // A terminal an administrator added or approved over the API under the same ID supersedes the file's.
            for t in terminals { try insertTerminal(t, now: now, source: "configuration", onConflict: "ON CONFLICT (terminal_id) DO NOTHING") }
            for profile in profiles {
                try run(
                    "INSERT INTO profiles VALUES ($1, $2, $3)",
                    [Self.text(profile.name), Self.text(profile.definition), Self.bytes(profile.sealedPreSharedKey)])
            }
            if !policyFromAPI { try insertRules(rules) }
        }
    }

    public func replaceConfigurationTerminals(_ terminals: [TerminalRow]) throws {
        let now = Date().timeIntervalSince1970
        try transaction {
            try run("DELETE FROM terminals WHERE source = 'configuration'")
            for t in terminals { try insertTerminal(t, now: now, source: "configuration", onConflict: "ON CONFLICT (terminal_id) DO NOTHING") }
        }
    }

    public func terminals() throws -> [TerminalRow] {
        try read { try run("SELECT * FROM terminals ORDER BY terminal_id").map(Self.terminal) }
    }

    // MARK: discovery

    public func saveHosts(_ hosts: [HostRow]) throws {
        try transaction {
            for h in hosts {
                try run(
                    """
                    INSERT INTO discovered_hosts VALUES ($1, $2, $3, $4, $5) ON CONFLICT (mac) DO UPDATE SET ipv4 = EXCLUDED.ipv4,
                    ipv6 = EXCLUDED.ipv6, learnt_from = EXCLUDED.learnt_from, last_seen = EXCLUDED.last_seen
                    """,
                    [
                        Self.text(h.mac), Self.text(h.ipv4.joined(separator: ",")), Self.text(h.ipv6.joined(separator: ",")),
                        Self.text(h.learntFrom.joined(separator: ",")), Self.number(h.lastSeen)
                    ])
            }
        }
    }

    public func hosts() throws -> [HostRow] {
        func list(_ data: PostgresData) -> [String] { (data.string ?? "").split(separator: ",").map(String.init) }
        return try read {
            try run("SELECT * FROM discovered_hosts ORDER BY mac").map { row in
                HostRow(
                    mac: row[data: "mac"].string ?? "", ipv4: list(row[data: "ipv4"]), ipv6: list(row[data: "ipv6"]),
                    learntFrom: list(row[data: "learnt_from"]), lastSeen: row[data: "last_seen"].double ?? 0)
            }
        }
    }

    public func saveStations(changed: [StationRow], removed: [String]) throws {
        guard !changed.isEmpty || !removed.isEmpty else { return }
        try transaction {
            for address in removed { try run("DELETE FROM stations WHERE address = $1", [Self.text(address)]) }
            for s in changed {
                try run(
                    """
                    INSERT INTO stations VALUES ($1, $2, $3, $4) ON CONFLICT (address) DO UPDATE SET mac = EXCLUDED.mac, vlans = EXCLUDED.vlans,
                    side = EXCLUDED.side
                    """,
                    [Self.text(s.address), Self.text(s.mac), Self.text(s.vlanIDs.map(String.init).joined(separator: ",")), Self.text(s.side)])
            }
        }
    }

    public func stations() throws -> [StationRow] {
        try read {
            try run("SELECT * FROM stations ORDER BY address").map { row in
                StationRow(
                    address: row[data: "address"].string ?? "", mac: row[data: "mac"].string ?? "",
                    vlanIDs: (row[data: "vlans"].string ?? "").split(separator: ",").compactMap { UInt16($0) }, side: row[data: "side"].string ?? "")
            }
        }
    }

    // MARK: SAs

    public func saveIKESAs(_ upserts: [(IKESARow, [ChildSARow])], removed: [(String, String)]) throws {
        try transaction {
            for (spiI, spiR) in removed {
                try run("DELETE FROM ike_sas WHERE spi_initiator = $1 AND spi_responder = $2", [Self.text(spiI), Self.text(spiR)])
                try run("DELETE FROM child_sas WHERE ike_spi_initiator = $1 AND ike_spi_responder = $2", [Self.text(spiI), Self.text(spiR)])
            }
            for (sa, children) in upserts {
                try run(
                    """
                    INSERT INTO ike_sas VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (spi_initiator, spi_responder) DO UPDATE SET
                    connection = EXCLUDED.connection, terminal = EXCLUDED.terminal, peer = EXCLUDED.peer, state = EXCLUDED.state,
                    saved_at = EXCLUDED.saved_at
                    """,
                    [
                        Self.text(sa.spiInitiator), Self.text(sa.spiResponder), Self.text(sa.connection), Self.text(sa.terminal),
                        Self.text(sa.peer), Self.bytes(sa.sealedState), Self.number(sa.savedAt)
                    ])
                try run(
                    "DELETE FROM child_sas WHERE ike_spi_initiator = $1 AND ike_spi_responder = $2",
                    [Self.text(sa.spiInitiator), Self.text(sa.spiResponder)])
                for c in children {
                    // As SQLite's INSERT OR REPLACE: a row rewritten starts again from sequence 0 (saveProgress raises it).
                    try run(
                        """
                        INSERT INTO child_sas (spi_outbound, spi_inbound, terminal, peer, ike_spi_initiator, ike_spi_responder, suite, mode,
                                               created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                        ON CONFLICT (spi_outbound) DO UPDATE SET spi_inbound = EXCLUDED.spi_inbound, terminal = EXCLUDED.terminal,
                        peer = EXCLUDED.peer, ike_spi_initiator = EXCLUDED.ike_spi_initiator, ike_spi_responder = EXCLUDED.ike_spi_responder,
                        suite = EXCLUDED.suite, mode = EXCLUDED.mode, created_at = EXCLUDED.created_at, highest_outbound_sequence = 0
                        """,
                        [
                            Self.text(c.spiOutbound), Self.text(c.spiInbound), Self.text(c.terminal), Self.text(c.peer),
                            Self.text(c.ikeSPIInitiator), Self.text(c.ikeSPIResponder), Self.text(c.suite), Self.text(c.mode),
                            Self.number(c.createdAt)
                        ])
                }
            }
        }
    }

    public func ikeSAs() throws -> [IKESARow] {
        try read {
            try run("SELECT * FROM ike_sas ORDER BY saved_at").map { row in
                IKESARow(
                    spiInitiator: row[data: "spi_initiator"].string ?? "", spiResponder: row[data: "spi_responder"].string ?? "",
                    connection: row[data: "connection"].string ?? "", terminal: row[data: "terminal"].string ?? "",
                    peer: row[data: "peer"].string ?? "", sealedState: row[data: "state"].bytes ?? [], savedAt: row[data: "saved_at"].double ?? 0)
            }
        }
    }

    public func childSAs() throws -> [ChildSARow] {
        try read {
            try run("SELECT * FROM child_sas ORDER BY created_at").map { row in
                ChildSARow(
                    spiOutbound: row[data: "spi_outbound"].string ?? "", spiInbound: row[data: "spi_inbound"].string ?? "",
                    terminal: row[data: "terminal"].string ?? "", peer: row[data: "peer"].string ?? "",
                    ikeSPIInitiator: row[data: "ike_spi_initiator"].string ?? "", ikeSPIResponder: row[data: "ike_spi_responder"].string ?? "",
                    suite: row[data: "suite"].string ?? "", mode: row[data: "mode"].string ?? "", createdAt: row[data: "created_at"].double ?? 0)
            }
        }
    }

    public func highestOutboundSequences() throws -> [String: UInt64] {
        try read {
            var result: [String: UInt64] = [:]
            for row in try run("SELECT spi_outbound, highest_outbound_sequence FROM child_sas") {
                result[row[data: "spi_outbound"].string ?? ""] = UInt64(bitPattern: row[data: "highest_outbound_sequence"].int64 ?? 0)
            }
            return result
        }
    }

    public func saveProgress(sequences: [String: UInt64], counters: [String: Int]) throws {
        try transaction {
            for (spi, sequence) in sequences {
                try run(
                    "UPDATE child_sas SET highest_outbound_sequence = GREATEST(highest_outbound_sequence, $1) WHERE spi_outbound = $2",
                    [Self.integer(Int64(bitPattern: sequence)), Self.text(spi)])
            }
            for (name, value) in counters {
                try run(
                    "INSERT INTO counters VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                    [Self.text(name), Self.integer(Int64(value))])
            }
        }
    }

    public func counters() throws -> [String: Int] {
        try read {
            Dictionary(
                try run("SELECT name, value FROM counters").map { ($0[data: "name"].string ?? "", Int($0[data: "value"].int64 ?? 0)) },
                uniquingKeysWith: { a, _ in a })
        }
    }

    public func replaceNegotiations(_ rows: [(spiInitiator: String, spiResponder: String, connection: String)], now: Double) throws {
        try transaction {
            try run("DELETE FROM negotiations")
            for row in rows {
                try run(
                    "INSERT INTO negotiations VALUES ($1, $2, $3, $4) ON CONFLICT (spi_initiator, spi_responder) DO NOTHING",
                    [Self.text(row.spiInitiator), Self.text(row.spiResponder), Self.text(row.connection), Self.number(now)])
            }
        }
    }

    public func takeNegotiations() throws -> [String] {
        try transaction {
            let rows = try run("SELECT * FROM negotiations").map {
                "\($0[data: "connection"].string ?? "") (\($0[data: "spi_initiator"].string ?? ""))"
            }
            try run("DELETE FROM negotiations")
            return rows
        }
    }
}
