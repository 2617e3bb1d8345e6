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
