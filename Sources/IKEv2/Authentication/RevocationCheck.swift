import X509

/// The online part of a revocation check, asked of the I/O layer: the engine holds the exchange until
/// the answer comes back through `IKEEngine.revocationChecked(_:_:now:)`.
public struct RevocationCheckRequest: Equatable, Sendable {
    public var id: UInt64
    /// The verified chain: end entity first, trust anchor last.
    public var chain: [Certificate]
    /// The OCSP responders and CRL distribution points the chain names, as "OCSP http://..." (for the log).
    public var responders: [String]

    public init(id: UInt64, chain: [Certificate], responders: [String]) {
        self.id = id
        self.chain = chain
        self.responders = responders
    }
}

/// What an online revocation check learnt about a chain.
public enum RevocationStatus: Equatable, Sendable {
    /// Every responder asked said good.
    case good
    /// A responder said revoked, or a CRL lists the certificate (signatures checked).
    case revoked(String)
    /// No valid answer: the responder unreachable, an error status, an answer out of date or wrongly
    /// signed, or no answer in time.
    case unavailable(String)
}

extension RevocationStatus {
    /// Several certificates' statuses as one: any revocation wins, then any missing answer.
    public static func combined(_ statuses: [RevocationStatus]) -> RevocationStatus {
        if let revoked = statuses.first(where: { if case .revoked = $0 { return true } else { return false } }) { return revoked }
        if let unavailable = statuses.first(where: { if case .unavailable = $0 { return true } else { return false } }) { return unavailable }
        return .good
    }
}
