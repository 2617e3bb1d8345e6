import SwiftASN1
import X509

/// The CRL files of the connection (`revocationLists`): a certificate is refused when a CRL signed by its
/// issuer in this path lists its serial number. Only the issuer's signature makes a CRL count; a revoked
/// certificate stays revoked even past the CRL's nextUpdate. Online sources (OCSP, CRL distribution
/// points) are asked later, outside the engine.
struct CRLFilePolicy: VerifierPolicy {
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = []
    let lists: [CertificateRevocationList]

    func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) -> PolicyEvaluationResult {
        guard let failure = Self.revocation(in: Array(chain), lists: lists) else { return .meetsPolicy }
        return .failsToMeetPolicy(reason: failure.description)
    }

    static func revocation(in chain: [Certificate], lists: [CertificateRevocationList]) -> AuthenticationFailure? {
        for (certificate, issuer) in zip(chain, chain.dropFirst())
        where lists.contains(where: { $0.revokedSerialNumbers.contains(certificate.serialNumber) && $0.isSigned(by: issuer) }) {
            return AuthenticationFailure(
                "the certificate \(certificate.subject) (serial \(certificate.serialNumber.hexDescription)) is revoked by the CRL of \(issuer.subject)"
            )
        }
        return nil
    }
}
