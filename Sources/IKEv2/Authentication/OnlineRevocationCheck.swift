import X509

/// One chain's online revocation check, planned as strongSwan's revocation plugin does: OCSP for the
/// certificates that name responders, the CRLs of those that name only distribution points, and, when
/// OCSP gives no answer, the CRLs of the OCSP certificates that name some too. The asking itself (HTTP,
/// caches) is injected, so the plan is tested without a network.
public enum OnlineRevocationCheck {
    /// The combined status, and what the log should say about how it was reached (a fallback, if any).
    public static func run(
        chain: [Certificate],
        ocsp: ([Certificate]) async -> RevocationStatus,
        crl: (_ certificate: Certificate, _ issuer: Certificate, _ uris: [String]) async -> RevocationStatus
    ) async
        -> (status: RevocationStatus, note: String?)
    {
        var statuses: [RevocationStatus] = []
        var note: String?
        let below = Array(chain.indices.dropLast())
        let ocspCertificates = below.filter { !OCSPStatusCheck.responders(of: chain[$0]).isEmpty }
        if !ocspCertificates.isEmpty {
            let status = await ocsp(chain)
            let fallback = ocspCertificates.map { CRLDistributionPoints.uris(of: chain[$0]) }
            if case .unavailable(let why) = status, fallback.allSatisfy({ !$0.isEmpty }) {
                for (index, uris) in zip(ocspCertificates, fallback) {
                    statuses.append(await crl(chain[index], chain[index + 1], uris))
                }
                note = "no OCSP answer (\(why)); judged by the CRL the certificate names"
            } else {
                statuses.append(status)
            }
        }
        for index in below where !ocspCertificates.contains(index) {
            let uris = CRLDistributionPoints.uris(of: chain[index])
            guard !uris.isEmpty else { continue }
            statuses.append(await crl(chain[index], chain[index + 1], uris))
        }
        return (.combined(statuses), note)
    }
}
