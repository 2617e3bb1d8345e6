import Foundation
import GRDB

/// The proxy's state on disk: one SQLite file in WAL mode, schema by numbered migrations (the version is
/// also in `PRAGMA user_version` for outside tools). It only ever sees sealed secrets: the columns that
/// hold keys (`ike_sas.state`, `terminals.enrollment_key`, `profiles.pre_shared_key`) are sealed boxes.
public final class StateDatabase: @unchecked Sendable {
    public let path: String
    let pool: DatabasePool
    public static let schemaVersion = 5

    public init(path: String) throws {
        self.path = path
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // Every commit reaches the disk before it returns: a crash or power loss keeps what was saved.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(pool)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: configuration, SAs, counters, audit log") { db in
            try db.execute(
                sql: """
                    CREATE TABLE terminals (terminal_id INTEGER PRIMARY KEY, mac TEXT, addresses TEXT NOT NULL,
                                            enrollment_key BLOB NOT NULL, key_delivery_port INTEGER NOT NULL, updated_at REAL NOT NULL);
                    CREATE TABLE profiles (name TEXT PRIMARY KEY, definition TEXT NOT NULL, pre_shared_key BLOB NOT NULL);
                    CREATE TABLE policy_rules (position INTEGER PRIMARY KEY, rule TEXT NOT NULL);
                    CREATE TABLE ike_sas (spi_initiator TEXT NOT NULL, spi_responder TEXT NOT NULL, connection TEXT NOT NULL,
                                          terminal TEXT NOT NULL, peer TEXT NOT NULL, state BLOB NOT NULL, saved_at REAL NOT NULL,
                                          PRIMARY KEY (spi_initiator, spi_responder));
                    CREATE TABLE child_sas (spi_outbound TEXT PRIMARY KEY, spi_inbound TEXT NOT NULL, terminal TEXT NOT NULL,
                                            peer TEXT NOT NULL, ike_spi_initiator TEXT NOT NULL, ike_spi_responder TEXT NOT NULL,
                                            suite TEXT NOT NULL, mode TEXT NOT NULL, created_at REAL NOT NULL,
                                            highest_outbound_sequence INTEGER NOT NULL DEFAULT 0);
                    CREATE TABLE negotiations (spi_initiator TEXT NOT NULL, spi_responder TEXT NOT NULL, connection TEXT NOT NULL,
                                               started_at REAL NOT NULL, PRIMARY KEY (spi_initiator, spi_responder));
                    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                    CREATE TABLE audit_log (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, who TEXT NOT NULL,
                                            action TEXT NOT NULL, detail TEXT NOT NULL);
                    PRAGMA user_version = 1;
                    """)
        }
        migrator.registerMigration("v2: hosts learnt by terminal discovery") { db in
            try db.execute(
                sql: """
                    CREATE TABLE discovered_hosts (mac TEXT PRIMARY KEY, ipv4 TEXT NOT NULL, ipv6 TEXT NOT NULL,
                                                   learnt_from TEXT NOT NULL, last_seen REAL NOT NULL);
                    PRAGMA user_version = 2;
                    """)
        }
        migrator.registerMigration("v3: what the management API changed outlives the configuration file") { db in
            try db.execute(
                sql: """
                    ALTER TABLE terminals ADD COLUMN source TEXT NOT NULL DEFAULT 'configuration';
                    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                    PRAGMA user_version = 3;
                    """)
        }
        migrator.registerMigration("v4: terminals removed over the management API") { db in
            try db.execute(
                sql: """
                    CREATE TABLE removed_terminals (terminal_id INTEGER PRIMARY KEY, who TEXT NOT NULL, removed_at REAL NOT NULL);
                    PRAGMA user_version = 4;
                    """)
        }
        migrator.registerMigration("v5: link addresses of the peers and terminals the proxy speaks to") { db in
            try db.execute(
                sql: """
                    CREATE TABLE stations (address TEXT PRIMARY KEY, mac TEXT NOT NULL, vlans TEXT NOT NULL, side TEXT NOT NULL);
                    PRAGMA user_version = 5;
                    """)
        }
        return migrator
    }

    // MARK: management

    public func meta(_ key: String) throws -> String? {
        try pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]) }
    }

    public func setMeta(_ key: String, _ value: String) throws {
        try pool.write { db in try db.execute(sql: "INSERT OR REPLACE INTO meta VALUES (?, ?)", arguments: [key, value]) }
    }

    /// The policy as the administrators left it: rules (JSON text) in order, marked as managed over the API.
    public func replacePolicy(rules: [String], defaultAction: String, who: String, now: Double) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM policy_rules")
            for (position, rule) in rules.enumerated() {
                try db.execute(sql: "INSERT INTO policy_rules VALUES (?, ?)", arguments: [position, rule])
            }
            try db.execute(sql: "INSERT OR REPLACE INTO meta VALUES ('policy_source', ?)", arguments: ["api:\(who):\(now)"])
            try db.execute(sql: "INSERT OR REPLACE INTO meta VALUES ('policy_default', ?)", arguments: [defaultAction])
        }
    }

    /// The policy goes back to the configuration file's (these rules), which later starts and reloads take again.
    public func revertPolicy(toFileRules rules: [String]) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM policy_rules; DELETE FROM meta WHERE key IN ('policy_source', 'policy_default')")
            for (position, rule) in rules.enumerated() {
                try db.execute(sql: "INSERT INTO policy_rules VALUES (?, ?)", arguments: [position, rule])
            }
        }
    }

    public func policyRules() throws -> [String] {
        try pool.read { db in try String.fetchAll(db, sql: "SELECT rule FROM policy_rules ORDER BY position") }
    }

    /// A terminal an administrator approved (source 'api'): kept across restarts and configuration changes.
    public func saveApprovedTerminal(_ t: TerminalRow, now: Double) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM terminals WHERE terminal_id = ?", arguments: [Int64(bitPattern: t.terminalID)])
            try db.execute(sql: "DELETE FROM removed_terminals WHERE terminal_id = ?", arguments: [Int64(bitPattern: t.terminalID)])
            try db.execute(
                sql: "INSERT INTO terminals VALUES (?, ?, ?, ?, ?, ?, 'api')",
                arguments: [
                    Int64(bitPattern: t.terminalID), t.mac, t.addresses.joined(separator: ","),
                    Data(t.sealedEnrollmentKey), Int(t.keyDeliveryPort), now
                ])
        }
    }

    /// A terminal an administrator removed: its approval (if any) is forgotten, and one from the configuration
    /// file stays removed across restarts until an administrator adds or approves it again.
    public func saveRemovedTerminal(_ terminalID: UInt64, who: String, now: Double) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM terminals WHERE terminal_id = ? AND source = 'api'", arguments: [Int64(bitPattern: terminalID)])
            try db.execute(sql: "INSERT OR REPLACE INTO removed_terminals VALUES (?, ?, ?)", arguments: [Int64(bitPattern: terminalID), who, now])
        }
    }

    public func removedTerminals() throws -> [(terminalID: UInt64, who: String, at: Double)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM removed_terminals ORDER BY terminal_id").map {
                (UInt64(bitPattern: $0["terminal_id"]), $0["who"], $0["removed_at"])
            }
        }
    }

    public func approvedTerminals() throws -> [TerminalRow] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM terminals WHERE source = 'api' ORDER BY terminal_id").map(TerminalRow.init(row:))
        }
    }

    public func auditLog() throws -> [(time: Double, who: String, action: String, detail: String)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit_log ORDER BY id").map { ($0["time"], $0["who"], $0["action"], $0["detail"]) }
        }
    }

    /// The newest `limit` audit entries, oldest first, and how many there are in all.
    public func recentAudit(limit: Int) throws -> (entries: [(time: Double, who: String, action: String, detail: String)], total: Int) {
        try pool.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", arguments: [limit])
            let total = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_log") ?? 0
            return (rows.reversed().map { ($0["time"], $0["who"], $0["action"], $0["detail"]) }, total)
        }
    }

    // MARK: discovery

    public struct HostRow: Sendable, Equatable {
        public var mac: String
        public var ipv4: [String]
        public var ipv6: [String]
        public var learntFrom: [String]
        public var lastSeen: Double
        public init(mac: String, ipv4: [String], ipv6: [String], learntFrom: [String], lastSeen: Double) {
            self.mac = mac
            self.ipv4 = ipv4
            self.ipv6 = ipv6
            self.learntFrom = learntFrom
            self.lastSeen = lastSeen
        }
    }

    public func saveHosts(_ hosts: [HostRow]) throws {
        try pool.write { db in
            for h in hosts {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO discovered_hosts VALUES (?, ?, ?, ?, ?)",
                    arguments: [
                        h.mac, h.ipv4.joined(separator: ","), h.ipv6.joined(separator: ","),
                        h.learntFrom.joined(separator: ","), h.lastSeen
                    ])
            }
        }
    }

    public func hosts() throws -> [HostRow] {
        func list(_ text: String) -> [String] { text.split(separator: ",").map(String.init) }
        return try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM discovered_hosts ORDER BY mac").map { row in
                HostRow(
                    mac: row["mac"], ipv4: list(row["ipv4"]), ipv6: list(row["ipv6"]), learntFrom: list(row["learnt_from"]),
                    lastSeen: row["last_seen"])
            }
        }
    }

    /// Where an address sits on the wire (StationTable), kept so that after a restart the proxy can send in a
    /// terminal's name (a rekey, a liveness check, a Delete) before the peer has sent anything.
    public struct StationRow: Sendable, Equatable {
        public var address: String
        public var mac: String
        public var vlanIDs: [UInt16]
        public var side: String
        public init(address: String, mac: String, vlanIDs: [UInt16], side: String) {
            self.address = address
            self.mac = mac
            self.vlanIDs = vlanIDs
            self.side = side
        }
    }

    /// Saves what changed in the link addresses: `changed` rows written (added, or moved), the rows of
    /// `removed` addresses deleted; the rest stays as saved. A burst of new SAs then writes its new
    /// stations, not every station each time (1,000 rows per batch in a 1,000-terminal burst before).
    public func saveStations(changed: [StationRow], removed: [String]) throws {
        guard !changed.isEmpty || !removed.isEmpty else { return }
        try pool.write { db in
            for address in removed { try db.execute(sql: "DELETE FROM stations WHERE address = ?", arguments: [address]) }
            for s in changed {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO stations VALUES (?, ?, ?, ?)",
                    arguments: [s.address, s.mac, s.vlanIDs.map(String.init).joined(separator: ","), s.side])
            }
        }
    }

    public func stations() throws -> [StationRow] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM stations ORDER BY address").map { row in
                StationRow(
                    address: row["address"], mac: row["mac"],
                    vlanIDs: (row["vlans"] as String).split(separator: ",").compactMap { UInt16($0) }, side: row["side"])
            }
        }
    }

    /// The schema version the file is at, and the journal mode (expected: wal).
    public func describe() throws -> (version: Int, journalMode: String) {
        try pool.read { db in
            (try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0, try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "?")
        }
    }

    // MARK: configuration tables

    public struct TerminalRow: Sendable {
        public var terminalID: UInt64
        public var mac: String?
        public var addresses: [String]
        public var sealedEnrollmentKey: [UInt8]
        public var keyDeliveryPort: UInt16
        public init(terminalID: UInt64, mac: String?, addresses: [String], sealedEnrollmentKey: [UInt8], keyDeliveryPort: UInt16) {
            self.terminalID = terminalID
            self.mac = mac
            self.addresses = addresses
            self.sealedEnrollmentKey = sealedEnrollmentKey
            self.keyDeliveryPort = keyDeliveryPort
        }

        init(row: Row) {
            self.init(
                terminalID: UInt64(bitPattern: row["terminal_id"]), mac: row["mac"],
                addresses: (row["addresses"] as String).split(separator: ",").map(String.init),
                sealedEnrollmentKey: Array(row["enrollment_key"] as Data), keyDeliveryPort: UInt16(row["key_delivery_port"] as Int))
        }
    }

    /// Replaces the policy, profiles and terminal tables (the configuration file is read at each start).
    public func replaceConfiguration(
        terminals: [TerminalRow], profiles: [(name: String, definition: String, sealedPreSharedKey: [UInt8])],
        rules: [String], now: Double
    ) throws {
        let profileRows = profiles.map { ($0.name, $0.definition, Data($0.sealedPreSharedKey)) }
        try pool.write { db in
            let policyFromAPI = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'policy_source'") != nil
            try db.execute(sql: "DELETE FROM terminals WHERE source = 'configuration'; DELETE FROM profiles")
            if !policyFromAPI { try db.execute(sql: "DELETE FROM policy_rules") }
            for t in terminals {
                // A terminal an administrator added or approved over the API under the same ID supersedes the file's.
                try db.execute(
                    sql: "INSERT OR IGNORE INTO terminals VALUES (?, ?, ?, ?, ?, ?, 'configuration')",
                    arguments: [
                        Int64(bitPattern: t.terminalID), t.mac, t.addresses.joined(separator: ","),
                        Data(t.sealedEnrollmentKey), Int(t.keyDeliveryPort), now
                    ])
            }
            for (name, definition, key) in profileRows {
                try db.execute(sql: "INSERT INTO profiles VALUES (?, ?, ?)", arguments: [name, definition, key])
            }
            if !policyFromAPI {
                for (position, rule) in rules.enumerated() {
                    try db.execute(sql: "INSERT INTO policy_rules VALUES (?, ?)", arguments: [position, rule])
                }
            }
        }
    }

    /// Replaces the configuration file's terminals (a reload read a changed list); the API's stay.
    public func replaceConfigurationTerminals(_ terminals: [TerminalRow]) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM terminals WHERE source = 'configuration'")
            for t in terminals {
                try db.execute(
                    sql: "INSERT OR IGNORE INTO terminals VALUES (?, ?, ?, ?, ?, ?, 'configuration')",
                    arguments: [
                        Int64(bitPattern: t.terminalID), t.mac, t.addresses.joined(separator: ","),
                        Data(t.sealedEnrollmentKey), Int(t.keyDeliveryPort), Date().timeIntervalSince1970
                    ])
            }
        }
    }

    public func terminals() throws -> [TerminalRow] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM terminals ORDER BY terminal_id").map(TerminalRow.init(row:))
        }
    }

    // MARK: audit

    public func audit(who: String, action: String, detail: String, now: Double) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO audit_log (time, who, action, detail) VALUES (?, ?, ?, ?)", arguments: [now, who, action, detail])
        }
    }
}
