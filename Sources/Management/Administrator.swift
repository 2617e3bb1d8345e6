import Crypto
import Foundation

/// Someone allowed to manage the proxy: a name for the audit log, a role, and how they prove it: the
/// SHA-256 of their bearer token, of their client certificate, or both. Neither secret is stored: a
/// stolen configuration or database does not log in.
public struct Administrator: Sendable, Equatable {
    public enum Role: String, Sendable { case admin, reader }
    public var name: String
    public var role: Role
    public var tokenSHA256: [UInt8]?
    /// SHA-256 of the administrator's client certificate (DER), pinned on top of the CA check.
    public var certificateSHA256: [UInt8]?

    public init(name: String, role: Role, tokenSHA256: [UInt8]? = nil, certificateSHA256: [UInt8]? = nil) {
        self.name = name
        self.role = role
        self.tokenSHA256 = tokenSHA256
        self.certificateSHA256 = certificateSHA256
    }

    public static func hash(token: String) -> [UInt8] { Array(SHA256.hash(data: Array(token.utf8))) }
    public static func fingerprint(certificateDER: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: certificateDER)) }
}

/// How a request proved who sent it.
public enum Credential: Sendable, Equatable {
    case bearerToken
    case clientCertificate
}

/// Finds the administrator a request proves: a client certificate the TLS layer verified against the
/// administrators' CA and whose fingerprint is pinned, else `Authorization: Bearer <token>`.
public struct Authenticator: Sendable {
    public let administrators: [Administrator]
    public init(administrators: [Administrator]) { self.administrators = administrators }

    /// The administrator and how they proved it, or nil (nothing, or nothing known, presented).
    public func administrator(authorization: String?, clientCertificateDER: [UInt8]? = nil) -> (Administrator, Credential)? {
        if let der = clientCertificateDER,
            let found = match(Administrator.fingerprint(certificateDER: der), \.certificateSHA256)
        {
            return (found, .clientCertificate)
        }
        guard let authorization, authorization.lowercased().hasPrefix("bearer ") else { return nil }
        let token = authorization.dropFirst(7).trimmingCharacters(in: .whitespaces)
        guard !token.isEmpty, let found = match(Administrator.hash(token: token), \.tokenSHA256) else { return nil }
        return (found, .bearerToken)
    }

    /// Every stored digest is compared in full so the time taken says nothing about which one almost matched.
    private func match(_ digest: [UInt8], _ stored: KeyPath<Administrator, [UInt8]?>) -> Administrator? {
        var found: Administrator?
        for administrator in administrators {
            guard let candidate = administrator[keyPath: stored] else { continue }
            var difference: UInt8 = candidate.count == digest.count ? 0 : 1
            for (a, b) in zip(candidate, digest) { difference |= a ^ b }
            if difference == 0 { found = administrator }
        }
        return found
    }
}
