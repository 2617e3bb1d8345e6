import Foundation
import XCTest

@testable import Store

/// The PostgreSQL store passes every check of the SQLite one (`StateStoreContractTests`), against a real server
/// the test starts itself; and two stores on one database, as two daemons of a pair will hold, see each other's writes.
final class PostgreSQLStateStoreTests: StateStoreContractTests {
    nonisolated(unsafe) static var server: PostgreSQLServer?

    nonisolated(unsafe) static var tlsServer: PostgreSQLServer?

    override class func tearDown() {
        server?.stop()
        server = nil
        tlsServer?.stop()
        tlsServer = nil
        super.tearDown()
    }

    func database() throws -> PostgreSQLStateStore.Settings {
        if Self.server == nil { Self.server = try PostgreSQLServer() }
        return try XCTUnwrap(Self.server).newDatabase(prefix: "state")
    }

    override func makeStore() throws -> any StateStore { try PostgreSQLStateStore(settings: try database()) }

    func testTwoStoresOnOneDatabaseSeeEachOthersWritesAndMigrateOnce() throws {
        let settings = try database()
        let first = try PostgreSQLStateStore(settings: settings)
        let second = try PostgreSQLStateStore(settings: settings)
        XCTAssertEqual(try second.describe().version, StateDatabase.schemaVersion)
        XCTAssertEqual(try second.describe().journalMode, "postgresql")
        XCTAssertEqual(first.location, "postgresql://postgres@127.0.0.1:\(settings.port)/\(settings.database)")
        try first.saveApprovedTerminal(row(9, "192.0.2.9"), now: 1)
        XCTAssertEqual(try second.approvedTerminals().map(\.terminalID), [9])
        try second.setMeta("wrapped_data_key", "CCCC")
        XCTAssertEqual(try first.meta("wrapped_data_key"), "CCCC")
    }

    func testAServerThatIsNotThereIsAClearError() throws {
        XCTAssertThrowsError(
            try PostgreSQLStateStore(settings: .init(host: "127.0.0.1", port: 9, username: "postgres", database: "none"))
        ) { error in
            XCTAssertTrue("\(error)".hasPrefix("cannot connect to postgresql://postgres@127.0.0.1:9/none: "), "\(error)")
            XCTAssertTrue("\(error)".contains("refused"), "says why: \(error)")
        }
    }

    /// With `ca_file` the connection is TLS, verified against that CA: a server whose certificate another CA issued
    /// is refused before anything is sent.
    func testWithACAFileTheServerIsReachedOverVerifiedTLSOnly() throws {
        if Self.tlsServer == nil { Self.tlsServer = try PostgreSQLServer(tls: true) }
        let server = try XCTUnwrap(Self.tlsServer)
        try server.createDatabase("tls_state")
        let settings = try PostgreSQLStateStore.Settings(
            url: "postgresql://postgres@127.0.0.1:\(server.port)/tls_state", caFile: server.caFile)
        let store = try PostgreSQLStateStore(settings: settings)
        try store.setMeta("over", "tls")
        XCTAssertEqual(try store.meta("over"), "tls")
        XCTAssertEqual(try store.tlsInUse(), true, "the server's pg_stat_ssl says this connection is encrypted")
        let plain = try PostgreSQLStateStore(
            settings: .init(url: "postgresql://postgres@127.0.0.1:\(server.port)/tls_state"))
        XCTAssertEqual(try plain.tlsInUse(), false, "without ca_file, no TLS")
        var wrong = settings
        wrong.caFile = server.otherCAFile
        XCTAssertThrowsError(try PostgreSQLStateStore(settings: wrong)) { error in
            XCTAssertTrue("\(error)".contains("cannot connect to"), "\(error)")
            XCTAssertTrue("\(error)".lowercased().contains("certificate"), "says it is the certificate: \(error)")
        }
    }

    func testTheURLIsReadAsLibpqWritesItAndWhatItLacksIsNamed() throws {
        let full = try PostgreSQLStateStore.Settings(url: "postgresql://ike%20proxy:s3cret@db.example:6543/ikeproxy")
        XCTAssertEqual(full, .init(host: "db.example", port: 6543, username: "ike proxy", password: "s3cret", database: "ikeproxy"))
        XCTAssertEqual(full.location, "postgresql://ike proxy@db.example:6543/ikeproxy", "no password in log lines")
        let v6 = try PostgreSQLStateStore.Settings(url: "postgres://ikeproxy@[2001:db8::5]/state", password: "from-file", caFile: "/ca.pem")
        XCTAssertEqual(v6, .init(host: "2001:db8::5", port: 5432, username: "ikeproxy", password: "from-file", database: "state", caFile: "/ca.pem"))
        XCTAssertEqual(v6.location, "postgresql://ikeproxy@[2001:db8::5]:5432/state")
        let refused: [(String, String)] = [
            ("mysql://u@h/d", "is not a postgresql://user@host/database URL"),
            ("postgresql://u:pw@h", "names no database"),
            ("postgresql://h/d", "names no user"),
            ("postgresql://u@h/d?sslmode=require", "URL parameters (sslmode) are not read"),
            ("postgresql://u@h:0/d", "port 0 is not between 1 and 65535")
        ]
        for (url, expected) in refused {
            XCTAssertThrowsError(try PostgreSQLStateStore.Settings(url: url), url) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(url): \(error)")
                XCTAssertFalse("\(error)".contains(":pw@"), "\(url): the password is never repeated")
            }
        }
    }
}
