import Foundation
import GRDB

/// The SAs saved across restarts (sealed), sequence numbers and counters, and the negotiations a restart cut.
extension StateDatabase {
    // MARK: SAs

    public struct IKESARow: Sendable {
        public var spiInitiator: String
        public var spiResponder: String
        public var connection: String
        public var terminal: String
        public var peer: String
        public var sealedState: [UInt8]
        public var savedAt: Double
        public init(
            spiInitiator: String, spiResponder: String, connection: String, terminal: String, peer: String, sealedState: [UInt8], savedAt: Double
        ) {
            self.spiInitiator = spiInitiator
            self.spiResponder = spiResponder
            self.connection = connection
            self.terminal = terminal
            self.peer = peer
            self.sealedState = sealedState
            self.savedAt = savedAt
        }
    }

    public struct ChildSARow: Sendable, Equatable {
        public var spiOutbound: String
        public var spiInbound: String
        public var terminal: String
        public var peer: String
        public var ikeSPIInitiator: String
        public var ikeSPIResponder: String
        public var suite: String
        public var mode: String
        public var createdAt: Double
        public init(
            spiOutbound: String, spiInbound: String, terminal: String, peer: String, ikeSPIInitiator: String,
            ikeSPIResponder: String, suite: String, mode: String, createdAt: Double
        ) {
            self.spiOutbound = spiOutbound
            self.spiInbound = spiInbound
            self.terminal = terminal
            self.peer = peer
            self.ikeSPIInitiator = ikeSPIInitiator
            self.ikeSPIResponder = ikeSPIResponder
            self.suite = suite
            self.mode = mode
            self.createdAt = createdAt
        }
    }

    /// Writes changed IKE SAs (with their CHILD SA index rows) and removes gone ones, in one transaction.
    public func saveIKESAs(_ upserts: [(IKESARow, [ChildSARow])], removed: [(String, String)]) throws {
        try pool.write { db in
            for (spiI, spiR) in removed {
                try db.execute(sql: "DELETE FROM ike_sas WHERE spi_initiator = ? AND spi_responder = ?", arguments: [spiI, spiR])
                try db.execute(sql: "DELETE FROM child_sas WHERE ike_spi_initiator = ? AND ike_spi_responder = ?", arguments: [spiI, spiR])
            }
            for (sa, children) in upserts {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO ike_sas VALUES (?, ?, ?, ?, ?, ?, ?)",
                    arguments: [sa.spiInitiator, sa.spiResponder, sa.connection, sa.terminal, sa.peer, Data(sa.sealedState), sa.savedAt])
                try db.execute(
                    sql: "DELETE FROM child_sas WHERE ike_spi_initiator = ? AND ike_spi_responder = ?",
                    arguments: [sa.spiInitiator, sa.spiResponder])
                for c in children {
                    try db.execute(
                        sql: """
                            INSERT OR REPLACE INTO child_sas (spi_outbound, spi_inbound, terminal, peer, ike_spi_initiator, ike_spi_responder,
                                                              suite, mode, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                            """,
                        arguments: [
                            c.spiOutbound, c.spiInbound, c.terminal, c.peer, c.ikeSPIInitiator, c.ikeSPIResponder,
                            c.suite, c.mode, c.createdAt
                        ])
                }
            }
        }
    }

    public func ikeSAs() throws -> [IKESARow] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM ike_sas ORDER BY saved_at").map { row in
                IKESARow(
                    spiInitiator: row["spi_initiator"], spiResponder: row["spi_responder"], connection: row["connection"],
                    terminal: row["terminal"], peer: row["peer"], sealedState: Array(row["state"] as Data), savedAt: row["saved_at"])
            }
        }
    }

    public func childSAs() throws -> [ChildSARow] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM child_sas ORDER BY created_at").map { row in
                ChildSARow(
                    spiOutbound: row["spi_outbound"], spiInbound: row["spi_inbound"], terminal: row["terminal"], peer: row["peer"],
                    ikeSPIInitiator: row["ike_spi_initiator"], ikeSPIResponder: row["ike_spi_responder"], suite: row["suite"],
                    mode: row["mode"], createdAt: row["created_at"])
            }
        }
    }

    public func highestOutboundSequences() throws -> [String: UInt64] {
        try pool.read { db in
            var result: [String: UInt64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT spi_outbound, highest_outbound_sequence FROM child_sas") {
                result[row["spi_outbound"]] = UInt64(bitPattern: row["highest_outbound_sequence"])
            }
            return result
        }
    }

    /// Sequence numbers and counters, saved every few seconds.
    public func saveProgress(sequences: [String: UInt64], counters: [String: Int]) throws {
        try pool.write { db in
            for (spi, sequence) in sequences {
                try db.execute(
                    sql: "UPDATE child_sas SET highest_outbound_sequence = MAX(highest_outbound_sequence, ?) WHERE spi_outbound = ?",
                    arguments: [Int64(bitPattern: sequence), spi])
            }
            for (name, value) in counters {
                try db.execute(sql: "INSERT OR REPLACE INTO counters VALUES (?, ?)", arguments: [name, value])
            }
        }
    }

    public func counters() throws -> [String: Int] {
        try pool.read { db in
            Dictionary(
                try Row.fetchAll(db, sql: "SELECT name, value FROM counters").map { ($0["name"], $0["value"]) }, uniquingKeysWith: { a, _ in a })
        }
    }

    // MARK: negotiations under way

    public func replaceNegotiations(_ rows: [(spiInitiator: String, spiResponder: String, connection: String)], now: Double) throws {
        let plain = rows.map { [$0.spiInitiator, $0.spiResponder, $0.connection] }
        try pool.write { db in
            try db.execute(sql: "DELETE FROM negotiations")
            for row in plain {
                try db.execute(sql: "INSERT OR REPLACE INTO negotiations VALUES (?, ?, ?, ?)", arguments: [row[0], row[1], row[2], now])
            }
        }
    }

    /// The negotiations a previous run left unfinished; they are gone with it.
    public func takeNegotiations() throws -> [String] {
        try pool.write { db in
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM negotiations").map {
                "\($0["connection"] as String) (\($0["spi_initiator"] as String))"
            }
            try db.execute(sql: "DELETE FROM negotiations")
            return rows
        }
    }
}
