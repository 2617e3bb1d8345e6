import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL

/// A request's context with its connection, so the handler can ask TLS for the client's certificate.
public struct ManagementRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The client's address, for the per-source limit on failed authentications.
    var source: String { channel.remoteAddress?.ipAddress ?? "unknown" }

    /// The client certificate TLS verified for this connection, as DER; nil when none was presented.
    func clientCertificateDER() async -> [UInt8]? {
        guard let certificate = try? await channel.nioSSL_peerCertificate().get() else { return nil }
        return try? certificate.toDERBytes()
    }
}

/// The HTTPS management listener (docs/management.md, docs/openapi.yaml): TLS only, every route behind
/// a pinned client certificate or a bearer token, changes for the admin role only; each call goes through
/// the mailbox to the daemon.
public final class ManagementServer: @unchecked Sendable {
    public let host: String
    public let port: Int
    let authenticator: Authenticator
    let throttle: AuthenticationThrottle
    let mailbox: ManagementMailbox
    let tls: TLSConfiguration
    private var task: Task<Void, Error>?
    let log: @Sendable (String) -> Void

    /// `privateKeyPEM`, when given, is the TLS key itself (unsealed at start); else it is read from `privateKeyPath`.
    /// `clientCAPath` names the CA(s) that issue administrators' client certificates: a certificate is then
    /// asked for and, when presented, must chain to one of them (else the handshake fails); bearer-token
    /// clients need none.
    public init(
        host: String, port: Int, certificatePath: String, privateKeyPath: String, privateKeyPEM: [UInt8]? = nil,
        clientCAPath: String? = nil,
        administrators: [Administrator], mailbox: ManagementMailbox, throttle: AuthenticationThrottle = AuthenticationThrottle(),
        log: @escaping @Sendable (String) -> Void
    ) throws {
        self.host = host
        self.throttle = throttle
        self.port = port
        self.authenticator = Authenticator(administrators: administrators)
        self.mailbox = mailbox
        self.log = log
        let chain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { NIOSSLCertificateSource.certificate($0) }
        let key = try privateKeyPEM.map { try NIOSSLPrivateKey(bytes: $0, format: .pem) } ?? NIOSSLPrivateKey(file: privateKeyPath, format: .pem)
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        if let clientCAPath {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(clientCAPath))
            tls.certificateVerification = .optionalVerification
        }
        self.tls = tls
    }

    static let routes: [(HTTPRequest.Method, String, ManagementRequest.Route)] = [
        (.get, "/v1/status", .status), (.get, "/metrics", .metrics),
        (.get, "/v1/policies", .listPolicies), (.post, "/v1/policies", .addPolicy), (.delete, "/v1/policies/:parameter", .deletePolicy),
        (.put, "/v1/policies", .replacePolicy), (.delete, "/v1/policies", .revertPolicy), (.get, "/v1/profiles", .listProfiles),
        (.get, "/v1/terminals", .listTerminals), (.post, "/v1/terminals/:parameter/approve", .approveTerminal),
        (.post, "/v1/terminals", .addTerminal), (.delete, "/v1/terminals/:parameter", .removeTerminal),
        (.get, "/v1/sas", .listSAs), (.post, "/v1/sas/flush", .flushSAs), (.get, "/v1/sas/:parameter", .showSA),
        (.delete, "/v1/sas/:parameter", .deleteSA), (.post, "/v1/credentials/reload", .reloadCredentials),
        (.get, "/v1/audit", .listAudit), (.get, "/v1/traffic", .listTraffic)
    ]

    /// The console's files (docs/management.md "The console"): no data in them, so no authentication; the
    /// policy keeps the page to this listener's own script, style and API. The router reads `/ui` as `/ui/`.
    static let consoleFiles: [(path: String, contentType: String, body: String)] = [
        ("/ui/", "text/html; charset=utf-8", ConsolePage.html),
        ("/ui/console.js", "text/javascript; charset=utf-8", ConsoleScript.javascript),
        ("/ui/console.css", "text/css; charset=utf-8", ConsoleStyle.css)
    ]

    static func consoleHeaders(contentType: String) -> HTTPFields {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        headers[.contentSecurityPolicy] =
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
        headers[.xContentTypeOptions] = "nosniff"
        headers[.cacheControl] = "no-store"
        return headers
    }

    func router() -> Router<ManagementRequestContext> {
        let router = Router(context: ManagementRequestContext.self)
        for file in Self.consoleFiles {
            router.get(RouterPath(file.path)) { _, _ -> Response in
                Response(
                    status: .ok, headers: Self.consoleHeaders(contentType: file.contentType), body: .init(byteBuffer: ByteBuffer(string: file.body)))
            }
        }
        for (method, path, route) in Self.routes {
            router.on(RouterPath(path), method: method) { [authenticator, mailbox, throttle, log] request, context -> Response in
                let answer: ManagementResponse
                let certificate = await context.clientCertificateDER()
                let source = context.source
                let now = Date().timeIntervalSince1970
                if let wait = throttle.refusal(source: source, now: now) {
                    answer = .error(429, "too many failed authentications from \(source); try again in \(Int(wait.rounded(.up))) s")
                    log("management: \(request.method) \(request.uri.path) from \(source) refused (429, blocked after failed authentications)")
                } else if let (administrator, _) = authenticator.administrator(
                    authorization: request.headers[.authorization],
                    clientCertificateDER: certificate)
                {
                    throttle.recordSuccess(source: source)
                    if route.changes && administrator.role != .admin {
                        answer = .error(403, "\(administrator.name) may read but not change (role \(administrator.role.rawValue))")
                        log("management: \(administrator.name) refused \(request.method) \(request.uri.path) (403, read-only role)")
                    } else {
                        let body = try await request.body.collect(upTo: 65536)
                        let query = Dictionary(
                            request.uri.queryParameters.map { (String($0.key), String($0.value)) }, uniquingKeysWith: { first, _ in first })
                        answer = await mailbox.submit(
                            ManagementRequest(
                                route: route, parameter: context.parameters.get("parameter"), query: query,
                                body: Data(buffer: body), administrator: administrator))
                    }
                } else {
                    answer = .error(
                        401,
                        certificate == nil
                            ? "a valid bearer token is required (Authorization: Bearer <token>)"
                            : "this client certificate is not an administrator's, and no valid bearer token was given")
                    log(
                        "management: unauthenticated \(request.method) \(request.uri.path) from \(source) refused (401"
                            + (certificate.map { ", client certificate \(Self.hex(Administrator.fingerprint(certificateDER: $0))) not pinned)" }
                                ?? ")"))
                    if throttle.recordFailure(source: source, now: now) {
                        let detail =
                            "\(throttle.limit) failed authentications from \(source) within \(Int(throttle.window)) s: refused for \(Int(throttle.block)) s"
                        log("management: \(detail)")
                        _ = await mailbox.submit(
                            ManagementRequest(
                                route: .authenticationLimited, parameter: detail,
                                administrator: Administrator(name: "unauthenticated \(source)", role: .reader)))
                    }
                }
                var headers = HTTPFields()
                headers[.contentType] = answer.contentType
                if answer.status == 401 { headers[.wwwAuthenticate] = "Bearer realm=\"ikeproxy\"" }
                if answer.status == 429 { headers[.retryAfter] = String(Int(throttle.block)) }
                return Response(status: .init(code: answer.status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: answer.body + "\n")))
            }
        }
        return router
    }

    /// Starts listening; returns once the listener is bound (or throws why not).
    public func start() async throws {
        let (stream, continuation) = AsyncStream<Result<Void, Error>>.makeStream()
        let app = Application(
            router: router(), server: try .tls(.http1(), tlsConfiguration: tls),
            configuration: .init(address: .hostname(host, port: port), serverName: "ikeproxy"),
            onServerRunning: { _ in continuation.yield(.success(())) },
            logger: {
                var logger = Logger(label: "ikeproxy.management")
                logger.logLevel = .critical
                return logger
            }())
        task = Task {
            do { try await app.run() } catch {
                continuation.yield(.failure(error))
                throw error
            }
        }
        for await result in stream {
            try result.get()
            return
        }
    }

    public func stop() { task?.cancel() }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
}
