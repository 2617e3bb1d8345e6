import Foundation
import PostgresNIO

/// A management request one daemon of a pair received and the other, the active one, carries out: the standby
/// holds no state of its own, so it writes the request here and waits for the answer the active writes back. An
/// administrator's change made on either node therefore takes effect, once, on the active, and reaches the
/// standby through the database like everything else.
public struct RelayedRequest: Equatable, Sendable {
    public var id: Int64
    public var route: String
    public var parameter: String?
    /// The query parameters, as a JSON object.
    public var query: String
    public var body: [UInt8]
    public var administrator: String
    public var role: String
    public init(id: Int64, route: String, parameter: String?, query: String, body: [UInt8], administrator: String, role: String) {
        self.id = id
        self.route = route
        self.parameter = parameter
        self.query = query
        self.body = body
        self.administrator = administrator
        self.role = role
    }
}

extension PostgreSQLStateStore {
    static let relayTable = """
        CREATE TABLE IF NOT EXISTS relayed_requests (id BIGSERIAL PRIMARY KEY, route TEXT NOT NULL, parameter TEXT, query TEXT NOT NULL,
                                                     body BYTEA NOT NULL, administrator TEXT NOT NULL, role TEXT NOT NULL,
                                                     created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
                                                     status BIGINT, response TEXT, content_type TEXT)
        """

    /// Writes a request for the active node; its number, to wait for the answer with.
    public func relay(_ request: RelayedRequest) throws -> Int64 {
        let rows = try statement(
            """
            INSERT INTO relayed_requests (route, parameter, query, body, administrator, role) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
            """,
            [
                PostgresData(string: request.route), request.parameter.map(PostgresData.init(string:)) ?? .null,
                PostgresData(string: request.query), PostgresData(bytes: request.body), PostgresData(string: request.administrator),
                PostgresData(string: request.role)
            ])
        guard let id = rows.first?[data: "id"].int64 else { throw Failure(description: "\(location): no number for the relayed request") }
        return id
    }

    /// The active's answer to request `id`, if it has written one.
    public func relayedAnswer(_ id: Int64) throws -> (status: Int, body: String, contentType: String)? {
        guard let row = try statement("SELECT status, response, content_type FROM relayed_requests WHERE id = $1", [PostgresData(int64: id)]).first,
            let status = row[data: "status"].int64
        else { return nil }
        return (Int(status), row[data: "response"].string ?? "", row[data: "content_type"].string ?? "application/json")
    }

    /// Requests not answered yet, oldest first; those older than `maximumAge` seconds are given up (their sender
    /// stopped waiting) and deleted with answered ones older than an hour.
    public func unansweredRelayedRequests(maximumAge: Double) throws -> [RelayedRequest] {
        try statement(
            """
            DELETE FROM relayed_requests WHERE created_at < clock_timestamp() - make_interval(secs => $1)
                                           AND (status IS NULL OR created_at < clock_timestamp() - interval '1 hour')
            """, [PostgresData(double: maximumAge)])
        return try statement(
            "SELECT id, route, parameter, query, body, administrator, role FROM relayed_requests WHERE status IS NULL ORDER BY id"
        ).map { row in
            RelayedRequest(
                id: row[data: "id"].int64 ?? 0, route: row[data: "route"].string ?? "", parameter: row[data: "parameter"].string,
                query: row[data: "query"].string ?? "{}", body: row[data: "body"].bytes ?? [], administrator: row[data: "administrator"].string ?? "",
                role: row[data: "role"].string ?? "")
        }
    }

    /// The active's answer to a relayed request.
    public func answerRelayed(_ id: Int64, status: Int, body: String, contentType: String) throws {
        try statement(
            "UPDATE relayed_requests SET status = $2, response = $3, content_type = $4 WHERE id = $1",
            [PostgresData(int64: id), PostgresData(int64: Int64(status)), PostgresData(string: body), PostgresData(string: contentType)])
    }
}
