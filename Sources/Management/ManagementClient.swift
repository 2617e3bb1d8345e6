import AsyncHTTPClient
import Foundation
import HTTPTypes
import ManagementAPI
import NIOCore
import NIOSSL
import OpenAPIAsyncHTTPClient
import OpenAPIRuntime

/// What the command line uses to talk to a daemon's management API: the client generated from docs/openapi.yaml, over
/// HTTPS with the daemon's certificate (or its CA) as the only trust root, and the administrator's client certificate,
/// bearer token, or both.
public struct ManagementClient: Sendable {
    public let baseURL: String
    let token: String?
    let caFile: String?
    let clientCertificate: (certificateFile: String, keyFile: String)?

    public init(baseURL: String, token: String?, caFile: String?, clientCertificate: (certificateFile: String, keyFile: String)? = nil) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.caFile = caFile
        self.clientCertificate = clientCertificate
    }

    /// Runs one operation of the generated client. An answer outside 2xx throws `ManagementRefusal` with the API's
    /// message; a daemon that cannot be reached throws what the transport said.
    package func call<Answer: Sendable>(_ operation: @Sendable (Client) async throws -> Answer) async throws -> Answer {
        guard let url = URL(string: baseURL) else { throw ManagementRefusal(status: 0, message: "\(baseURL) is not a URL") }
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile)) }
        if let clientCertificate {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(clientCertificate.certificateFile).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: clientCertificate.keyFile, format: .pem))
        }
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: tls))
        let client = Client(
            serverURL: url, transport: AsyncHTTPClientTransport(configuration: .init(client: http, timeout: .seconds(15))),
            middlewares: [RefusalMiddleware(token: token)])
        do {
            let answer = try await operation(client)
            try await http.shutdown()
            return answer
        } catch {
            try? await http.shutdown()
            // The generated client wraps what went wrong (a refusal, the transport's error) in ClientError.
            throw (error as? ClientError)?.underlyingError ?? error
        }
    }
}

/// The API said no: its status and its `error` message.
public struct ManagementRefusal: Error, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var description: String { "HTTP \(status): \(message)" }
}

/// Adds the bearer token to every request, and turns an answer outside 2xx into `ManagementRefusal` before the
/// generated code reads it, so that every command reports refusals the same way.
struct RefusalMiddleware: ClientMiddleware {
    let token: String?

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        if let token { request.headerFields[.authorization] = "Bearer \(token)" }
        let (response, responseBody) = try await next(request, body, baseURL)
        guard response.status.kind != .successful else { return (response, responseBody) }
        var bytes = Data()
        if let responseBody { bytes = try await Data(collecting: responseBody, upTo: 1 << 20) }
        let message =
            (try? JSONDecoder().decode(Components.Schemas._Error.self, from: bytes))?.error
            ?? String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        throw ManagementRefusal(status: response.status.code, message: message)
    }
}
