import Foundation
import Hummingbird
import HummingbirdTesting
import ManagementAPI
import XCTest

@testable import Management

/// The routes generated from docs/openapi.yaml, in front of a stand-in for the daemon's loop: every operation reaches
/// its daemon route, a request the document does not allow never reaches the daemon, and an answer the document does
/// not describe never leaves as if it were documented. The real daemon behind the real TLS listener is
/// tests/interop/management_api.py (schemathesis among it).
final class GeneratedRoutesTests: XCTestCase {
    static let adminToken = "admin-token-0123456789"
    static let readerToken = "reader-token-0123456789"

    /// Answers the mailbox as the daemon's loop would, from `answer`, and keeps what it was asked.
    final class LoopStandIn: @unchecked Sendable {
        let mailbox = ManagementMailbox()
        private let lock = NSLock()
        private var asked: [ManagementRequest] = []
        private var running = true
        private let answer: @Sendable (ManagementRequest) -> ManagementResponse

        init(answer: @escaping @Sendable (ManagementRequest) -> ManagementResponse) {
            self.answer = answer
            Thread.detachNewThread { [self] in
                while lock.withLock({ running }) {
                    var descriptor = pollfd(fd: mailbox.wakeDescriptor, events: Int16(POLLIN), revents: 0)
                    _ = poll(&descriptor, 1, 20)
                    mailbox.drain { request in
                        lock.withLock { asked.append(request) }
                        return self.answer(request)
                    }
                }
            }
        }

        var requests: [ManagementRequest] { lock.withLock { asked } }
        func stop() { lock.withLock { running = false } }
    }

    /// What each route answers when it succeeds, as the document says.
    static func success(_ request: ManagementRequest) -> ManagementResponse {
        switch request.route {
        case .metrics: return ManagementResponse(status: 200, body: "# a metric\n", contentType: "text/plain")
        case .addPolicy, .addTerminal: return ManagementResponse(status: 201, body: "{}")
        case .removeTerminal, .flushSAs, .deleteSA: return ManagementResponse(status: 202, body: "{}")
        default: return ManagementResponse(status: 200, body: "{}")
        }
    }

    func withAPI(
        answer: @escaping @Sendable (ManagementRequest) -> ManagementResponse = GeneratedRoutesTests.success,
        _ test: @escaping @Sendable (any TestClientProtocol, LoopStandIn) async throws -> Void
    ) async throws {
        let loop = LoopStandIn(answer: answer)
        defer { loop.stop() }
        let router = try ManagementServer.router(
            authenticator: Authenticator(administrators: [
                Administrator(name: "alice", role: .admin, tokenSHA256: Administrator.hash(token: Self.adminToken)),
                Administrator(name: "rob", role: .reader, tokenSHA256: Administrator.hash(token: Self.readerToken))
            ]),
            throttle: AuthenticationThrottle(), mailbox: loop.mailbox, log: { _ in })
        try await Application(router: router).test(.router) { client in try await test(client, loop) }
    }

    static func bearer(_ token: String, json: Bool = false) -> HTTPFields {
        var headers = HTTPFields()
        headers[.authorization] = "Bearer \(token)"
        if json { headers[.contentType] = "application/json" }
        return headers
    }

    static func object(_ body: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
    }

    func testEveryOperationOfTheDocumentReachesItsDaemonRoute() async throws {
        let calls: [(HTTPRequest.Method, String, String?, ManagementRequest.Route, String?)] = [
            (.get, "/v1/status", nil, .status, nil), (.get, "/metrics", nil, .metrics, nil),
            (.get, "/v1/policies", nil, .listPolicies, nil), (.post, "/v1/policies", #"{"rule": {"action": "bypass"}}"#, .addPolicy, nil),
            (.put, "/v1/policies", #"{"rules": []}"#, .replacePolicy, nil), (.delete, "/v1/policies", nil, .revertPolicy, nil),
            (.delete, "/v1/policies/3", nil, .deletePolicy, "3"), (.get, "/v1/profiles", nil, .listProfiles, nil),
            (.get, "/v1/terminals", nil, .listTerminals, nil),
            (.post, "/v1/terminals", #"{"terminal_id": 7, "addresses": ["192.0.2.7"], "enrollment_key_hex": "77"}"#, .addTerminal, nil),
            (.delete, "/v1/terminals/7", nil, .removeTerminal, "7"),
            (
                .post, "/v1/terminals/02:00:00:00:d0:32/approve", #"{"terminal_id": 3, "enrollment_key_hex": "33"}"#, .approveTerminal,
                "02:00:00:00:d0:32"
            ),
            (.get, "/v1/sas", nil, .listSAs, nil), (.post, "/v1/sas/flush", nil, .flushSAs, nil),
            (.get, "/v1/sas/0a0b0c0d", nil, .showSA, "0a0b0c0d"), (.delete, "/v1/sas/0a0b0c0d", nil, .deleteSA, "0a0b0c0d"),
            (.post, "/v1/credentials/reload", nil, .reloadCredentials, nil), (.get, "/v1/audit", nil, .listAudit, nil),
            (.get, "/v1/traffic", nil, .listTraffic, nil)
        ]
        XCTAssertEqual(
            Set(calls.map(\.3.rawValue)), Set(ManagementRequest.Route.allCases.filter { $0 != .authenticationLimited }.map(\.rawValue)),
            "every daemon route is an operation of the document")
        try await withAPI { client, loop in
            for (method, path, body, route, parameter) in calls {
                let response = try await client.execute(
                    uri: path, method: method, headers: Self.bearer(Self.adminToken, json: body != nil), body: body.map { ByteBuffer(string: $0) })
                XCTAssertEqual(
                    response.status.code, Self.success(ManagementRequest(route: route, administrator: .init(name: "", role: .admin))).status, path)
                let asked = loop.requests.last
                XCTAssertEqual(asked?.route, route, "\(method) \(path)")
                XCTAssertEqual(asked?.parameter, parameter, "\(method) \(path)")
                XCTAssertEqual(asked?.administrator.name, "alice")
                XCTAssertEqual(asked.map { String(decoding: $0.body, as: UTF8.self) }, body ?? "", "the body reaches the daemon as sent")
            }
            XCTAssertEqual(loop.requests.count, calls.count)
        }
    }

    func testQueryParametersReachTheDaemonTyped() async throws {
        try await withAPI { client, loop in
            var response = try await client.execute(
                uri: "/v1/sas?terminal=192.0.2.2&peer=192.0.2.1", method: .get, headers: Self.bearer(Self.readerToken))
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual(loop.requests.last?.query, ["terminal": "192.0.2.2", "peer": "192.0.2.1"])
            response = try await client.execute(uri: "/v1/traffic?limit=5", method: .get, headers: Self.bearer(Self.readerToken))
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual(loop.requests.last?.query, ["limit": "5"])
            response = try await client.execute(uri: "/v1/traffic?limit=many", method: .get, headers: Self.bearer(Self.readerToken))
            XCTAssertEqual(response.status, .badRequest, "a limit that is not an integer is refused by the document's type")
            XCTAssertEqual(loop.requests.count, 2)
        }
    }

    func testARequestTheDocumentDoesNotAllowGets400AndNeverReachesTheDaemon() async throws {
        try await withAPI { client, loop in
            let refused: [(HTTPRequest.Method, String, String?, String)] = [
                (.post, "/v1/policies", "{x", "not JSON"), (.post, "/v1/policies", #"{"position": 1}"#, "rule"),
                (.post, "/v1/policies", #"{"rule": {"action": "maybe"}}"#, "action"),
                (.post, "/v1/terminals", #"{"terminal_id": "seven", "addresses": [], "enrollment_key_hex": "77"}"#, "terminal_id"),
                (.delete, "/v1/policies/first", nil, "position"), (.delete, "/v1/terminals/t1", nil, "terminal"),
                (.put, "/v1/policies", nil, "body")
            ]
            for (method, path, body, why) in refused {
                let response = try await client.execute(
                    uri: path, method: method, headers: Self.bearer(Self.adminToken, json: true), body: body.map { ByteBuffer(string: $0) })
                XCTAssertEqual(response.status, .badRequest, "\(method) \(path) \(body ?? ""): \(why)")
                let message = Self.object(response.body)["error"] as? String ?? ""
                XCTAssertTrue(message.hasPrefix("malformed request for "), "\(message) is a message in the document's Error schema")
            }
            let named = try await client.execute(
                uri: "/v1/policies", method: .post, headers: Self.bearer(Self.adminToken, json: true), body: ByteBuffer(string: #"{"position": 1}"#))
            XCTAssertTrue((Self.object(named.body)["error"] as? String ?? "").contains("rule is required"), "the message names the field")
            XCTAssertTrue(loop.requests.isEmpty, "none reached the daemon")
        }
    }

    func testAnAnswerOutsideTheDocumentIsA500AndNotPassedOn() async throws {
        let answers: [String: ManagementResponse] = [
            "/v1/status": ManagementResponse(status: 418, body: #"{"error": "teapot"}"#),
            "/v1/profiles": ManagementResponse(status: 200, body: #"{"profiles": [{"name": 7}]}"#),
            "/v1/terminals": ManagementResponse(status: 200, body: #"{"terminals": [{"status": "lost"}]}"#),
            "/v1/policies": ManagementResponse(status: 404, body: #"{"error": "no policy"}"#)
        ]
        let paths: [ManagementRequest.Route: String] = [
            .status: "/v1/status", .listProfiles: "/v1/profiles", .listTerminals: "/v1/terminals", .listPolicies: "/v1/policies"
        ]
        let answer: @Sendable (ManagementRequest) -> ManagementResponse = { answers[paths[$0.route] ?? ""] ?? GeneratedRoutesTests.success($0) }
        try await withAPI(answer: answer) { client, _ in
            for path in answers.keys.sorted() {
                let response = try await client.execute(uri: path, method: .get, headers: Self.bearer(Self.readerToken))
                XCTAssertEqual(response.status, .internalServerError, path)
                let message = Self.object(response.body)["error"] as? String ?? ""
                XCTAssertTrue(message.contains("is not as docs/openapi.yaml describes it"), "\(path): \(message)")
                XCTAssertFalse(String(buffer: response.body).contains("teapot"), "the undocumented body is not passed on")
            }
        }
    }

    func testAFieldWithoutAValueIsLeftOut() async throws {
        let terminals = #"{"terminals": [{"mac": null, "status": "pending", "terminal_id": null, "ipv4": ["192.0.2.9"], "ipv6": []}]}"#
        let answer: @Sendable (ManagementRequest) -> ManagementResponse = {
            $0.route == .listTerminals ? ManagementResponse(status: 200, body: terminals) : GeneratedRoutesTests.success($0)
        }
        try await withAPI(answer: answer) { client, _ in
            let response = try await client.execute(uri: "/v1/terminals", method: .get, headers: Self.bearer(Self.readerToken))
            XCTAssertEqual(response.status, .ok)
            let row = (Self.object(response.body)["terminals"] as? [[String: Any]])?.first ?? [:]
            XCTAssertEqual(Set(row.keys), ["status", "ipv4", "ipv6"])
            XCTAssertEqual(row["ipv4"] as? [String], ["192.0.2.9"])
        }
    }

    func testCredentialsAreCheckedBeforeTheDocumentsTypes() async throws {
        try await withAPI { client, loop in
            var response = try await client.execute(uri: "/v1/policies", method: .post, headers: [:], body: ByteBuffer(string: "{x"))
            XCTAssertEqual(response.status, .unauthorized, "a stranger learns nothing about what the body should be")
            XCTAssertEqual(response.headers[.wwwAuthenticate], "Bearer realm=\"ikeproxy\"")
            response = try await client.execute(uri: "/v1/status", method: .get, headers: Self.bearer("not-a-token"))
            XCTAssertEqual(response.status, .unauthorized)
            response = try await client.execute(
                uri: "/v1/policies", method: .post, headers: Self.bearer(Self.readerToken, json: true),
                body: ByteBuffer(string: #"{"rule": {"action": "bypass"}}"#))
            XCTAssertEqual(response.status, .forbidden)
            XCTAssertEqual(Self.object(response.body)["error"] as? String, "rob may read but not change (role reader)")
            response = try await client.execute(uri: "/ui/", method: .get)
            XCTAssertEqual(response.status, .ok, "the console's files need no credential")
            XCTAssertTrue(loop.requests.isEmpty)
        }
    }
}
