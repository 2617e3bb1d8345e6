import Foundation
import SwiftASN1
@_spi(FixedExpiryValidationTime) import X509

/// Asks the OCSP responders (RFC 6960) that a verified chain names whether its certificates are revoked.
/// Request building, the responder's signature and delegation, freshness and nonce checks are
/// swift-certificates' `OCSPVerifierPolicy`; transport is the injected requester (HTTP in production).
public enum OCSPStatusCheck {
    /// The OCSP responder URIs of a certificate's Authority Information Access extension.
    public static func responders(of certificate: Certificate) -> [String] {
        guard let access = try? certificate.extensions.authorityInformationAccess else { return [] }
        return access.compactMap { description in
            guard description.method == .ocspServer, case .uniformResourceIdentifier(let uri) = description.location else { return nil }
            return uri
        }
    }

    /// Runs the check at `time` (certificate freshness is judged against it). The policy is evaluated in
    /// its strict form so that a missing answer is told apart from a revocation; the caller's
    /// `RevocationPolicy` then decides what a missing answer means.
    public static func check<Requester: OCSPRequester>(chain: [Certificate], requester: Requester, at time: Date) async -> RevocationStatus {
        guard let leaf = chain.first, let anchor = chain.last, chain.count >= 2 else { return .good }
        let critical = Array(Set(chain.flatMap { $0.extensions.filter(\.critical).map(\.oid) }))
        var verifier = Verifier(rootCertificates: CertificateStore([anchor])) {
            JudgedElsewhere(verifyingCriticalExtensions: critical)
            OCSPVerifierPolicy(failureMode: .hard, requester: requester, fixedExpiryValidationTime: time)
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(Array(chain.dropFirst().dropLast())))
        switch result {
        case .validCertificate: return .good
        case .couldNotValidate(let failures):
            let reasons = failures.map { "\($0.policyFailureReason)" }
            if let revoked = reasons.first(where: { $0.hasPrefix("revoked through OCSP") }) { return .revoked(revoked) }
            return .unavailable(reasons.first ?? "swift-certificates built no chain to the trust anchor")
        }
    }

    /// The chain was verified before it came here (signatures, validity, CRLs); this lets the OCSP-only
    /// evaluation accept the critical extensions that check is responsible for, which the verifier would
    /// otherwise refuse as unhandled.
    struct JudgedElsewhere: VerifierPolicy {
        let verifyingCriticalExtensions: [ASN1ObjectIdentifier]
        mutating func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult { .meetsPolicy }
    }
}
