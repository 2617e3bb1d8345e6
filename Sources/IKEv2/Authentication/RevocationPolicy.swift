import X509

/// How a peer certificate whose revocation status cannot be learnt is treated: strongSwan's `revocation`
/// setting, with its three levels. Status comes from CRL files, from the OCSP responders (RFC 6960) that
/// certificates name in their Authority Information Access extension, and from the CRLs their CRL
/// Distribution Points name.
public enum RevocationPolicy: String, Sendable, CaseIterable {
    /// Refuse a certificate only when it is known to be revoked; no answer from a responder is no refusal.
    case relaxed
    /// Also refuse when a certificate names an OCSP responder or CRL and no valid answer came from it.
    case ifURI = "ifuri"
    /// Refuse unless every certificate below the trust anchor is known good: by an OCSP answer, a fetched
    /// CRL, or a CRL file of its issuer.
    case strict
}

/// The online part of a revocation check, asked of the I/O layer: the engine holds the exchange until
/// the answer comes back through `IKEEngine.revocationChecked(_:_:now:)`.
public struct RevocationCheckRequest: Equatable, Sendable {
    public var id: UInt64
    /// The verified chain: end entity first, trust anchor last.
    public var chain: [Certificate]
    /// The OCSP responders and CRL distribution points the chain names, as "OCSP http://..." (for the log).
    public var responders: [String]

    public init(id: UInt64, chain: [Certificate], responders: [String]) {
        self.id = id; self.chain = chain; self.responders = responders
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

