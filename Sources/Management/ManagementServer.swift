import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import OpenAPIHummingbird

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

    func router() throws -> Router<ManagementRequestContext> {
        try Self.router(authenticator: authenticator, throttle: throttle, mailbox: mailbox, log: log)
    }

    /// The console's files and every operation of docs/openapi.yaml, authenticated; the listener serves it over TLS.
    static func router(
        authenticator: Authenticator, throttle: AuthenticationThrottle, mailbox: ManagementMailbox, log: @escaping @Sendable (String) -> Void
    ) throws -> Router<ManagementRequestContext> {
        let router = Router(context: ManagementRequestContext.self)
        for file in Self.consoleFiles {
            router.get(RouterPath(file.path)) { _, _ -> Response in
                Response(
                    status: .ok, headers: Self.consoleHeaders(contentType: file.contentType), body: .init(byteBuffer: ByteBuffer(string: file.body)))
            }
        }
        // The API: every route, its parameters and its responses from docs/openapi.yaml (the ManagementAPI module).
        router.add(middleware: ConnectionFactsMiddleware())
        try DaemonAPI(mailbox: mailbox).registerHandlers(
            on: router,
            middlewares: [
                ErrorAnswerMiddleware(log: log),
                AuthenticationMiddleware(authenticator: authenticator, throttle: throttle, mailbox: mailbox, log: log)
            ])
        return router
    }

    /// Starts listening; returns once the listener is bound (or throws why not).
    public func start() async throws {
        let (stream, continuation) = AsyncStream<Result<Void, Error>>.makeStream()
        let app = Application(
            router: try router(), server: try .tls(.http1(), tlsConfiguration: tls),
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
