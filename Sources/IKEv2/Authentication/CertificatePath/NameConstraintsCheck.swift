import SwiftASN1
import X509

/// RFC 5280 section 4.2.1.10: a CA that carries name constraints may vouch only for names inside its
/// permitted subtrees and outside its excluded ones, for every certificate below it. Checked for the
/// names IKE identities use: IP addresses, DNS names and mail addresses of subjectAltName, and the
/// subject DN. A name type a CA does not constrain is free. Used only for the paths swift-certificates
/// refuses to judge (DN and email subtrees, see `StandardPathPolicy`), which hold no other subtree types.
enum NameConstraintsCheck {
    /// The first violation in a path (end entity first): each CA's constraints bind every certificate below it.
    static func violation(in chain: [Certificate]) -> AuthenticationFailure? {
        for index in chain.indices.dropFirst() {
            for certificate in chain[..<index] {
                if let failure = violation(of: chain[index], by: certificate) { return failure }
            }
        }
        return nil
    }

    /// Why `certificate` breaks the constraints of `authority` (a CA above it in the path), or nil.
    static func violation(of authority: Certificate, by certificate: Certificate) -> AuthenticationFailure? {
        let constraints: NameConstraints?
        do { constraints = try authority.extensions.nameConstraints } catch {
            return AuthenticationFailure("the CA certificate \(authority.subject) has an unreadable nameConstraints extension")
        }
        guard let constraints else { return nil }
        var names = (try? certificate.extensions.subjectAlternativeNames).map { Array($0) } ?? []
        if !certificate.subject.isEmpty { names.append(.directoryName(certificate.subject)) }
        for name in names {
            if let excluded = constraints.excludedSubtrees.first(where: { matches(name, $0) == true }) {
                return AuthenticationFailure(
                    "\(describe(name)) in \(certificate.subject) is excluded by the name constraints of \(authority.subject) (\(describe(excluded)))")
            }
            let sameType = constraints.permittedSubtrees.filter { matches(name, $0) != nil }
            if !sameType.isEmpty, !sameType.contains(where: { matches(name, $0) == true }) {
                return AuthenticationFailure(
                    "\(describe(name)) in \(certificate.subject) is outside the names \(authority.subject) may vouch for ("
                        + sameType.map(describe).joined(separator: ", ") + ")")
            }
        }
        return nil
    }

    /// Whether `name` lies in `subtree`: nil when they are of different types (the subtree says nothing).
    static func matches(_ name: GeneralName, _ subtree: GeneralName) -> Bool? {
        switch (name, subtree) {
        case (.ipAddress(let address), .ipAddress(let range)):
            let a = Array(address.bytes)
            let r = Array(range.bytes)
            guard r.count == 2 * a.count else { return false }
            return (0..<a.count).allSatisfy { a[$0] & r[a.count + $0] == r[$0] & r[a.count + $0] }
        case (.dnsName(let host), .dnsName(let domain)):
            let h = host.lowercased()
            let d = domain.lowercased()
            if d.isEmpty { return true }
            if d.hasPrefix(".") { return h.hasSuffix(d) }
            return h == d || h.hasSuffix("." + d)
        case (.rfc822Name(let mailbox), .rfc822Name(let constraint)):
            let m = mailbox.lowercased()
            let c = constraint.lowercased()
            if c.contains("@") { return m == c }
            guard let host = m.split(separator: "@").last.map(String.init) else { return false }
            return c.hasPrefix(".") ? host.hasSuffix(c) : host == c
        case (.directoryName(let dn), .directoryName(let subtree)):
            return Array(dn.prefix(subtree.count)) == Array(subtree)
        default:
            return nil
        }
    }

    static func describe(_ name: GeneralName) -> String {
        switch name {
        case .ipAddress(let octets):
            let b = Array(octets.bytes)
            switch b.count {
            case 4: return "IP \(b.map(String.init).joined(separator: "."))"
            case 16: return "IP \(IPAddress(bytes: b).map { "\($0)" } ?? "?")"
            case 8: return "IP \(b[0..<4].map(String.init).joined(separator: "."))/\(b[4..<8].map(String.init).joined(separator: "."))"
            case 32: return "IP \(IPAddress(bytes: Array(b[0..<16])).map { "\($0)" } ?? "?")/\(b[16...].reduce(0) { $0 + $1.nonzeroBitCount })"
            default: return "IP (\(b.count) octets)"
            }
        case .dnsName(let host): return "DNS \(host)"
        case .rfc822Name(let mail): return "email \(mail)"
        case .directoryName(let dn): return "DN \(dn)"
        default: return "\(name)"
        }
    }
}
