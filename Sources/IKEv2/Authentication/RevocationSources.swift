import X509

/// Where the status of a certificate can be learnt online, as strongSwan's revocation plugin looks: the
/// OCSP responders its Authority Information Access names, else the CRLs its distribution points name.
public enum RevocationSources {
    public enum Kind: String, Sendable {
        case ocsp = "OCSP"
        case crl = "CRL"
    }

    /// The kind and URIs for one certificate (nil when it names neither).
    public static func online(of certificate: Certificate) -> (kind: Kind, uris: [String])? {
        let ocsp = OCSPStatusCheck.responders(of: certificate)
        if !ocsp.isEmpty { return (.ocsp, ocsp) }
        let crl = CRLDistributionPoints.uris(of: certificate)
        return crl.isEmpty ? nil : (.crl, crl)
    }

    /// Every source below the trust anchor (the last certificate), as "OCSP http://..." or "CRL http://...":
    /// a certificate's OCSP responders, then its CRLs (asked when OCSP gives nothing).
    public static func described(ofChain chain: [Certificate]) -> [String] {
        chain.dropLast().flatMap { certificate in
            OCSPStatusCheck.responders(of: certificate).map { "OCSP " + $0 } + CRLDistributionPoints.uris(of: certificate).map { "CRL " + $0 }
        }
    }
}
