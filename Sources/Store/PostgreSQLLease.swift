import PostgresNIO

/// The pair's lease as one row of the shared database, claimed and checked with the server's clock
/// (`clock_timestamp()`) in single statements, so that two claims at once cannot both win.
extension PostgreSQLStateStore: LeaseStore {
    /// Not one of the schema versions the SQLite file shares: only a shared database has a lease.
    static let leaseTable = """
        CREATE TABLE IF NOT EXISTS leadership (id SMALLINT PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL,
                                               fencing BIGINT NOT NULL, acquired_at TIMESTAMPTZ NOT NULL,
                                               expires_at TIMESTAMPTZ NOT NULL)
        """

    private static let leaseColumns = """
        holder, fencing, EXTRACT(EPOCH FROM expires_at - clock_timestamp())::float8 AS remaining,
        EXTRACT(EPOCH FROM clock_timestamp() - acquired_at)::float8 AS age
        """

    private static func record(_ row: PostgresRandomAccessRow) -> LeaseRecord {
        LeaseRecord(
            holder: row[data: "holder"].string ?? "", fencing: row[data: "fencing"].int64 ?? 0,
            remaining: row[data: "remaining"].double ?? 0, age: row[data: "age"].double ?? 0)
    }

    public func claimLease(holder: String, duration: Double) throws -> LeaseRecord {
        // Renewed by its holder while it runs (same fencing number); taken when lapsed (the number grows, also for a
        // holder coming back after its own lease lapsed: what it wrote before may have been overtaken).
        let claimed = try statement(
            """
            INSERT INTO leadership AS l (id, holder, fencing, acquired_at, expires_at)
            VALUES (1, $1, 1, clock_timestamp(), clock_timestamp() + make_interval(secs => $2))
            ON CONFLICT (id) DO UPDATE SET
                fencing = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp() THEN l.fencing ELSE l.fencing + 1 END,
                acquired_at = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp() THEN l.acquired_at
                                   ELSE clock_timestamp() END,
                holder = EXCLUDED.holder,
                expires_at = EXCLUDED.expires_at
            WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp()
            RETURNING \(Self.leaseColumns)
            """, [PostgresData(string: holder), PostgresData(double: duration)])
        if let row = claimed.first { return Self.record(row) }
        guard let current = try currentLease() else { throw Failure(description: "\(location): the lease row vanished during a claim") }
        return current
    }

    public func releaseLease(holder: String) throws {
        try statement(
            "UPDATE leadership SET expires_at = clock_timestamp() WHERE id = 1 AND holder = $1 AND expires_at > clock_timestamp()",
            [PostgresData(string: holder)])
    }

    public func currentLease() throws -> LeaseRecord? {
        try statement("SELECT \(Self.leaseColumns) FROM leadership WHERE id = 1").first.map(Self.record)
    }

    /// Inside a write's transaction: the lease row is read FOR SHARE, so that a claim by the other daemon waits
    /// until this write is committed or given up, and a write after the lease lapsed fails.
    func checkFence(_ fence: LeaseFence) throws {
        let held = try statementInTransaction(
            "SELECT 1 FROM leadership WHERE id = 1 AND holder = $1 AND fencing = $2 AND expires_at > clock_timestamp() FOR SHARE",
            [PostgresData(string: fence.holder), PostgresData(int64: fence.fencing)])
        if held.isEmpty { throw LeaseLost(fence: fence) }
    }
}
