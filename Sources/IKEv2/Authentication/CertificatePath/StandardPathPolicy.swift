import Foundation
import SwiftASN1
@_spi(FixedExpiryValidationTime) import X509

/// RFC 5280's path rules as swift-certificates' `RFC5280Policy` applies them (version, validity of every
/// certificate at the given time, basicConstraints with path length, name constraints), with one gap
/// filled: that policy refuses every path whose CAs constrain directory names or mail addresses, which
/// RFC 5280 section 4.2.1.10 requires (DN) or recommends (email) to be judged and which strongSwan judges.
/// No library offers that judgement, so such paths are judged by `NameConstraintsCheck`.
struct StandardPathPolicy: VerifierPolicy {
    let rfc5280: RFC5280Policy
    var verifyingCriticalExtensions: [ASN1ObjectIdentifier] { rfc5280.verifyingCriticalExtensions }

    init(now: Date) { rfc5280 = RFC5280Policy(fixedExpiryValidationTime: now) }

    func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) -> PolicyEvaluationResult {
        let verdict = rfc5280.chainMeetsPolicyRequirements(chain: chain)
        guard case .failsToMeetPolicy(let reason) = verdict else { return verdict }
        guard Self.refusedOnlyForSubtreeType(reason.description), Self.constraintsAreJudgeable(Array(chain)) else {
            // swift-certificates' name-constraint reasons print raw octets and name no certificate; the
            // verdict stays its own, the log says which name of which certificate broke which CA's constraint.
            if reason.description.contains("subtree") || reason.description.contains("name constraints"),
                let explained = NameConstraintsCheck.violation(in: Array(chain))
            {
                return .failsToMeetPolicy(reason: explained.description)
            }
            return verdict
        }
        // RFC5280Policy judges version, validity and basicConstraints before name constraints, so a path it
        // refuses for an unsupported subtree type passed those; its name constraints, of every type, are judged here.
        if let violation = NameConstraintsCheck.violation(in: Array(chain)) { return .failsToMeetPolicy(reason: violation.description) }
        return .meetsPolicy
    }

    /// Whether RFC5280Policy's refusal is its blanket one for DN and email subtrees.
    static func refusedOnlyForSubtreeType(_ reason: String) -> Bool {
        reason.contains("directoryName name constraints are not supported") || reason.contains("unsupported constraint")
    }

    /// Whether every subtree in the path's name constraints is of a type `NameConstraintsCheck` judges
    /// (DNS, IP, email, DN), so that nothing is let through unjudged.
    static func constraintsAreJudgeable(_ chain: [Certificate]) -> Bool {
        chain.allSatisfy { certificate in
            guard let constraints = try? certificate.extensions.nameConstraints else { return true }
            return (Array(constraints.permittedSubtrees) + Array(constraints.excludedSubtrees)).allSatisfy {
                switch $0 {
                case .dnsName, .ipAddress, .rfc822Name, .directoryName: return true
                default: return false
                }
            }
        }
    }
}
