import Foundation
import NIOSSL
import PostgresNIO

extension PostgreSQLStateStore {
    /// Where the database is, who connects, and how the server is verified: read from the `url` and `ca_file` of
    /// the daemon's `store.postgresql` section.
    public struct Settings: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var username: String
        public var password: String?
        public var database: String
        /// PEM file of the CA that issued the server's certificate: TLS is then required and the server's name
        /// checked against it. Nil: no TLS (a database on the same host or a private link only).
        public var caFile: String?
        /// Seconds to connect, and for each statement's answer, before the call fails.
        public var timeout: Double = 10

        public init(
            host: String, port: Int = 5432, username: String, password: String? = nil, database: String, caFile: String? = nil
        ) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
            self.caFile = caFile
        }

        public struct Invalid: Error, CustomStringConvertible {
            public var description: String
        }

        /// `postgresql://user[:password]@host[:port]/database`, as libpq writes it (`postgres://` too); a password
        /// given apart (a file the operator keeps out of the configuration) takes the place of one in the URL.
        public init(url text: String, password: String? = nil, caFile: String? = nil) throws(Invalid) {
            guard let components = URLComponents(string: text), ["postgresql", "postgres"].contains(components.scheme ?? "") else {
                throw Invalid(description: "'\(Self.withoutPassword(text))' is not a postgresql://user@host/database URL")
            }
            guard let host = components.host, !host.isEmpty else { throw Invalid(description: "the URL names no host") }
            guard let user = components.user, !user.isEmpty else {
                throw Invalid(description: "the URL names no user (postgresql://USER@host/database)")
            }
            let database = String(components.path.drop { $0 == "/" })
            guard !database.isEmpty, !database.contains("/") else {
                throw Invalid(description: "the URL names no database (postgresql://user@host/DATABASE)")
            }
            if let port = components.port, !(1...65535).contains(port) { throw Invalid(description: "port \(port) is not between 1 and 65535") }
            if let query = components.queryItems, !query.isEmpty {
                throw Invalid(description: "URL parameters (\(query.map(\.name).joined(separator: ", "))) are not read: give ca_file for TLS")
            }
            self.init(
                host: host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host, port: components.port ?? 5432,
                username: user.removingPercentEncoding ?? user,
                password: password ?? components.password.map { $0.removingPercentEncoding ?? $0 },
                database: database.removingPercentEncoding ?? database, caFile: caFile)
        }

        /// The database's address, for log lines: never the password.
        public var location: String { "postgresql://\(username)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)" }

        /// The URL with its password, if any, left out: for messages and logs.
        static func withoutPassword(_ text: String) -> String {
            guard var components = URLComponents(string: text), components.password != nil else { return text }
            components.password = "***"
            return components.string ?? text
        }

        /// TLS to the server: required and verified against `caFile` when one is given.
        func connectionTLS() throws -> PostgresConnection.Configuration.TLS {
            guard let caFile else { return .disable }
            var tls = TLSConfiguration.makeClientConfiguration()
            do { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile)) } catch {
                throw Invalid(description: "ca_file \(caFile): \(error)")
            }
            tls.certificateVerification = .fullVerification
            return .require(try NIOSSLContext(configuration: tls))
        }
    }
}
