import Foundation

/// One authenticated API call, handed to the daemon's loop: the route, its path parameter, the body.
public struct ManagementRequest: Sendable {
    public enum Route: String, Sendable, CaseIterable {
        case status, metrics
        case listPolicies, addPolicy, deletePolicy, replacePolicy, revertPolicy
        case listProfiles
        case listTerminals, approveTerminal, addTerminal, removeTerminal
        case listSAs, showSA, deleteSA, flushSAs
        case reloadCredentials
        case listAudit
        case listTraffic
        /// Not an HTTP route: the server telling the daemon to audit a source blocked after failed authentications
        /// (the parameter says which and why).
        case authenticationLimited

        /// Routes that change something: administrators with the admin role only, and audited.
        public var changes: Bool {
            [
                .addPolicy, .deletePolicy, .replacePolicy, .revertPolicy, .approveTerminal, .addTerminal, .removeTerminal, .deleteSA, .flushSAs,
                .reloadCredentials
            ].contains(self)
        }
        public static var allChanging: [Route] { allCases.filter(\.changes) }
    }
    public var route: Route
    public var parameter: String?
    /// The URL's query parameters (`GET /v1/sas?terminal=192.0.2.2`), the first of each name.
    public var query: [String: String]
    public var body: Data
    public var administrator: Administrator

    public init(route: Route, parameter: String? = nil, query: [String: String] = [:], body: Data = Data(), administrator: Administrator) {
        self.route = route
        self.parameter = parameter
        self.query = query
        self.body = body
        self.administrator = administrator
    }
}

/// What the daemon answers: an HTTP status and a JSON (or Prometheus text) body.
public struct ManagementResponse: Sendable, Equatable {
    public var status: Int
    public var body: String
    public var contentType: String

    public init(status: Int, body: String, contentType: String = "application/json") {
        self.status = status
        self.body = body
        self.contentType = contentType
    }

    public static func json(_ object: Any, status: Int = 200) -> ManagementResponse {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])) ?? Data("{}".utf8)
        return ManagementResponse(status: status, body: String(decoding: data, as: UTF8.self))
    }

    public static func error(_ status: Int, _ message: String) -> ManagementResponse { .json(["error": message], status: status) }
}
