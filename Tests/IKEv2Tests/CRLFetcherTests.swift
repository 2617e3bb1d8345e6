import Foundation
import IKEServices
import NIOCore
import X509
import XCTest

@testable import IKEv2

#if canImport(Glibc)
    import Glibc
#endif

/// The CRL fetcher against a small HTTP server on loopback: a fetched CRL judges, is kept until its
/// nextUpdate, and an unreachable point, an HTTP error or garbage prove nothing.
final class CRLFetcherTests: XCTestCase {
    /// Answers every request on 127.0.0.1 with one canned HTTP response, counting requests.
    final class CannedHTTPServer: @unchecked Sendable {
        let descriptor: Int32
        let port: UInt16
        private let lock = NSLock()
        private var served = 0
        var requests: Int {
            lock.lock()
            defer { lock.unlock() }
            return served
        }

        init(status: String, body: [UInt8]) throws {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            self.descriptor = descriptor
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) } }
            guard bound == 0, listen(descriptor, 8) == 0 else { throw POSIXError(.EADDRINUSE) }
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
            }
            port = UInt16(bigEndian: address.sin_port)
            let head = Array("HTTP/1.1 \(status)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
            Thread.detachNewThread { [self] in
                while true {
                    let client = accept(descriptor, nil, nil)
                    guard client >= 0 else { return }
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    _ = recv(client, &buffer, buffer.count, 0)
                    lock.lock()
                    served += 1
                    lock.unlock()
                    let answer = head + body
                    _ = answer.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    close(client)
                }
            }
        }

        func stop() {
            shutdown(descriptor, Int32(SHUT_RDWR))
            close(descriptor)
        }
    }

    func fixture(_ name: String) throws -> [UInt8] { try FixtureFiles.bytes("crl/\(name).pem") }
    func certificate(_ name: String) throws -> Certificate { try FixtureFiles.certificate("crl/" + name) }

    func testAFetchedCRLJudgesAndIsKeptUntilItsNextUpdate() async throws {
        let server = try CannedHTTPServer(status: "200 OK", body: try fixture("crl"))
        defer { server.stop() }
        let fetcher = CRLFetcher()
        let uri = "http://127.0.0.1:\(server.port)/ca.crl"
        let ca = try certificate("ca")
        guard case .revoked = await fetcher.status(of: try certificate("revoked"), issuer: ca, uris: [uri]) else { return XCTFail("listed") }
        let good = await fetcher.status(of: try certificate("good"), issuer: ca, uris: [uri])
        XCTAssertEqual(good, .good)
        XCTAssertEqual(server.requests, 1, "the second question was answered from the kept CRL")
        let downloads = await fetcher.downloads
        XCTAssertEqual(downloads, 1)
    }

    func testUnreachableRefusedAndGarbagePointsProveNothingAndTheNextPointIsTried() async throws {
        let ca = try certificate("ca")
        let good = try certificate("good")
        let missing = try CannedHTTPServer(status: "404 Not Found", body: [])
        let garbage = try CannedHTTPServer(status: "200 OK", body: Array("not a CRL".utf8))
        let real = try CannedHTTPServer(status: "200 OK", body: try fixture("crl"))
        defer {
            missing.stop()
            garbage.stop()
            real.stop()
        }
        let closed = try CannedHTTPServer(status: "200 OK", body: [])
        let closedPort = closed.port
        closed.stop()
        // AsyncHTTPClient keeps trying a refused connection until the deadline: a short one here.
        let fetcher = CRLFetcher(timeout: .seconds(1))
        for (uri, expected) in [
            ("http://127.0.0.1:\(missing.port)/ca.crl", "HTTP 404"), ("http://127.0.0.1:\(garbage.port)/ca.crl", "is not a CRL"),
            ("http://127.0.0.1:\(closedPort)/ca.crl", "unreachable"), ("ldap://ldap.test/cn=ca", "only http://")
        ] {
            let status = await fetcher.status(of: good, issuer: ca, uris: [uri])
            guard case .unavailable(let why) = status, why.contains(expected) else { return XCTFail("\(uri): \(status)") }
        }
        // A usable point after a failing one answers.
        let status = await fetcher.status(
            of: good, issuer: ca, uris: ["http://127.0.0.1:\(missing.port)/ca.crl", "http://127.0.0.1:\(real.port)/ca.crl"])
        XCTAssertEqual(status, .good)
    }
}
