import AsyncHTTPClient
import Foundation
import NIOCore
import X509

/// Carries OCSP requests to responders over HTTP (RFC 6960 appendix A.1: a POST of the DER request as
/// application/ocsp-request); the OCSP status cache uses it as its transport.
public struct OCSPHTTPRequester: Sendable {
    /// Per responder; the whole check has its own limit in swift-certificates (10 s).
    public var timeout: TimeAmount = .seconds(5)
    public init() {}

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The responder's answer to `request`, as bytes.
    public func post(_ request: [UInt8], to uri: String) async -> Result<[UInt8], Error> {
        guard uri.lowercased().hasPrefix("http://") else {
            return .failure(Failure(description: "responder \(uri): only http:// responders are asked (RFC 6960 A.1)"))
        }
        var http = HTTPClientRequest(url: uri)
        http.method = .POST
        http.headers.add(name: "Content-Type", value: "application/ocsp-request")
        http.headers.add(name: "Accept", value: "application/ocsp-response")
        http.body = .bytes(ByteBuffer(bytes: request))
        do {
            let response = try await HTTPClient.shared.execute(http, timeout: timeout)
            guard response.status == .ok else {
                return .failure(Failure(description: "responder \(uri) answered HTTP \(response.status.code)"))
            }
            let body = try await response.body.collect(upTo: 1 << 20)
            return .success(Array(buffer: body))
        } catch {
            return .failure(Failure(description: "responder \(uri) unreachable: \(error)"))
        }
    }
}
