import Crypto
import Foundation

/// Someone allowed to manage the proxy: a name for the audit log, a role, and the SHA-256 of their
/// bearer token. The token itself is never stored: a stolen configuration or database does not log in.
public struct Administrator: Sendable, Equatable {
    public enum Role: String, Sendable { case admin, reader }
    public var name: String
    public var role: Role
    public var tokenSHA256: [UInt8]

    public init(name: String, role: Role, tokenSHA256: [UInt8]) {
        self.name = name; self.role = role; self.tokenSHA256 = tokenSHA256
    }

    public static func hash(token: String) -> [UInt8] { Array(SHA256.hash(data: Array(token.utf8))) }
}

/// Checks `Authorization: Bearer <token>` against the administrators' token hashes.
public struct Authenticator: Sendable {
    public let administrators: [Administrator]
    public init(administrators: [Administrator]) { self.administrators = administrators }

    /// The administrator the header proves, or nil (missing, malformed or unknown token).
    public func administrator(authorization: String?) -> Administrator? {
        guard let authorization, authorization.lowercased().hasPrefix("bearer ") else { return nil }
        let token = authorization.dropFirst(7).trimmingCharacters(in: .whitespaces)
        guard !token.isEmpty else { return nil }
        let digest = Administrator.hash(token: token)
        // Every hash is compared in full so the time taken says nothing about which one almost matched.
        var found: Administrator?
        for administrator in administrators {
            var difference: UInt8 = administrator.tokenSHA256.count == digest.count ? 0 : 1
            for (a, b) in zip(administrator.tokenSHA256, digest) { difference |= a ^ b }
            if difference == 0 { found = administrator }
        }
        return found
    }
}
