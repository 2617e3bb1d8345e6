import AsyncHTTPClient
import Foundation
import IKEv2
import NIOCore
import X509

/// Fetches CRLs from the distribution points certificates name (HTTP GET, PEM or DER) and keeps each
/// until its nextUpdate (an hour when it has none), as a CRL is meant to be used: a busy proxy does not
/// download the same list for every IKE_AUTH. The signature and freshness are judged on every use.
public actor CRLFetcher {
    private var cache: [String: (lists: [CertificateRevocationList], until: Date)] = [:]
    private let timeout: TimeAmount
    public private(set) var downloads = 0

    public init(timeout: TimeAmount = .seconds(5)) { self.timeout = timeout }

    /// The status of `certificate` from the first distribution point that gives a usable answer.
    public func status(of certificate: Certificate, issuer: Certificate, uris: [String], at time: Date = Date()) async -> RevocationStatus {
        var last = RevocationStatus.unavailable("the certificate names no CRL distribution point")
        for uri in uris {
            switch await lists(from: uri, at: time) {
            case .failure(let failure): last = .unavailable(failure.description)
            case .success(let lists):
                let status = CRLStatusCheck.status(of: certificate, issuer: issuer, lists: lists, from: uri, at: time)
                if case .unavailable = status {
                    last = status
                    continue
                }
                return status
            }
        }
        return last
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    func lists(from uri: String, at time: Date) async -> Result<[CertificateRevocationList], Failure> {
        if let cached = cache[uri], cached.until > time { return .success(cached.lists) }
        guard uri.lowercased().hasPrefix("http://") else {
            return .failure(Failure(description: "CRL distribution point \(uri): only http:// is fetched (RFC 5280 4.2.1.13)"))
        }
        var http = HTTPClientRequest(url: uri)
        http.method = .GET
        let body: [UInt8]
        do {
            let response = try await HTTPClient.shared.execute(http, timeout: timeout)
            guard response.status == .ok else { return .failure(Failure(description: "CRL at \(uri): HTTP \(response.status.code)")) }
            body = Array(buffer: try await response.body.collect(upTo: 16 << 20))
        } catch {
            return .failure(Failure(description: "CRL at \(uri) unreachable: \(error)"))
        }
        downloads += 1
        let lists: [CertificateRevocationList]
        do { lists = try CertificateRevocationList.lists(pemOrDER: body) } catch {
            return .failure(Failure(description: "CRL at \(uri) is not a CRL: \(error)"))
        }
        cache[uri] = (lists, lists.compactMap(\.nextUpdate).min() ?? time.addingTimeInterval(3600))
        return .success(lists)
    }
}
