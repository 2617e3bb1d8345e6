import SwiftASN1
import X509

/// What IKE adds to a path (RFC 7296 section 3.5, RFC 4945 section 3.1): the end entity certificate must
/// name the identity the peer claims in its ID payload, in subjectAltName or, for a DN, as its subject.
/// It enforces subjectAltName, so a certificate that marks that extension critical is not refused for it.
struct PeerIdentityPolicy: VerifierPolicy {
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = [.X509ExtensionID.subjectAlternativeName]
    let identity: IdentificationPayload

    func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) -> PolicyEvaluationResult {
        guard !Self.certificate(chain.leaf, names: identity) else { return .meetsPolicy }
        return .failsToMeetPolicy(
            reason: "the certificate (\(chain.leaf.subject)) does not name the peer's identity \(Identity(payload: identity))")
    }

    /// Whether the certificate names the identity: in its subjectAltName, or as its subject for a DN.
    static func certificate(_ certificate: Certificate, names identity: IdentificationPayload) -> Bool {
        let names = (try? certificate.extensions.subjectAlternativeNames).flatMap { $0 }.map(Array.init) ?? []
        switch identity.type {
        case .ipv4Address, .ipv6Address:
            return names.contains { if case .ipAddress(let octets) = $0 { return Array(octets.bytes) == identity.data } else { return false } }
        case .fqdn:
            let name = String(decoding: identity.data, as: UTF8.self).lowercased()
            return names.contains { if case .dnsName(let dns) = $0 { return dns.lowercased() == name } else { return false } }
        case .rfc822Address:
            let name = String(decoding: identity.data, as: UTF8.self).lowercased()
            return names.contains { if case .rfc822Name(let mail) = $0 { return mail.lowercased() == name } else { return false } }
        case .derASN1DN:
            var serializer = DER.Serializer()
            guard (try? serializer.serialize(certificate.subject)) != nil else { return false }
            return serializer.serializedBytes == identity.data
        default:
            return false
        }
    }
}
