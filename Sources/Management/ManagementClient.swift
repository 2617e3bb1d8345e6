import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL

/// What the command line uses to talk to a daemon's management API: HTTPS with the daemon's
/// certificate (or its CA) as the only trust root, and the administrator's client certificate, bearer
/// token, or both.
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

    public func call(_ method: String, _ path: String, body: Data? = nil) async throws -> (status: Int, body: String) {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile)) }
        if let clientCertificate {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(clientCertificate.certificateFile).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: clientCertificate.keyFile, format: .pem))
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: tls))
        do {
            var request = HTTPClientRequest(url: baseURL + path)
            request.method = .init(rawValue: method)
            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: body))
            }
            let response = try await client.execute(request, timeout: .seconds(15))
            let buffer = try await response.body.collect(upTo: 4 << 20)
            try await client.shutdown()
            return (Int(response.status.code), String(buffer: buffer))
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}
