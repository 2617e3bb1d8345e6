import SwiftASN1
import X509

/// RFC 5280 section 6.1.4 (n): an intermediate CA that has a keyUsage extension must allow keyCertSign to
/// issue the certificate below it. swift-certificates' RFC5280Policy deliberately does not police keyUsage;
/// IKE peers have no reason for the leniency web browsers need. Trust anchors are the administrator's
/// choice and are not held to it (section 6.1).
struct IssuerKeyUsagePolicy: VerifierPolicy {
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = [.X509ExtensionID.keyUsage]

    func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) -> PolicyEvaluationResult {
        guard let failure = Self.violation(in: Array(chain)) else { return .meetsPolicy }
        return .failsToMeetPolicy(reason: failure.description)
    }

    static func violation(in chain: [Certificate]) -> AuthenticationFailure? {
        for issuer in chain.dropFirst().dropLast() {
            let usage: KeyUsage?
            do { usage = try issuer.extensions.keyUsage } catch {
                return AuthenticationFailure("the CA certificate \(issuer.subject) has an unreadable keyUsage extension")
            }
            if let usage, !usage.keyCertSign {
                return AuthenticationFailure("the CA certificate \(issuer.subject) may not sign certificates (keyUsage without keyCertSign)")
            }
        }
        return nil
    }
}
