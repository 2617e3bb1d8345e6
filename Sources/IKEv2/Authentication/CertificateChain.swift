import Crypto
import Foundation
import SwiftASN1
import X509
import _CryptoExtras

/// The peer's certificate path (RFC 5280 section 6) from what it sent to a trust anchor, and whether the end
/// entity's names match the identity it claims (RFC 7296 section 3.5).
extension SignatureAuthentication {
    /// Walks issuer by issuer, checking each signature, validity period and the issuer's CRL, to one of the
    /// anchors; returns the path, leaf first and anchor last.
    static func chain(
        from leaf: Certificate, intermediates: [Certificate], anchors: [Certificate],
        revocationLists: [CertificateRevocationList] = [], now: Date
    ) -> Result<[Certificate], AuthenticationFailure> {
        var current = leaf
        var path = [leaf]
        func revoked(_ certificate: Certificate, by issuer: Certificate) -> AuthenticationFailure? {
            // Only a CRL its issuer signed counts; a revoked certificate stays revoked even past the CRL's nextUpdate.
            guard revocationLists.contains(where: { $0.revokedSerialNumbers.contains(certificate.serialNumber) && $0.isSigned(by: issuer) }) else {
                return nil
            }
            return AuthenticationFailure(
                "the certificate \(certificate.subject) (serial \(certificate.serialNumber.hexDescription)) is revoked by the CRL of \(issuer.subject)"
            )
        }
        // A CA's name constraints bind every certificate below it in the path (RFC 5280 section 6.1.3 (b)).
        func nameConstraintsBroken(below authority: Certificate) -> AuthenticationFailure? {
            for certificate in path { if let failure = NameConstraintsCheck.violation(of: authority, by: certificate) { return failure } }
            return nil
        }
        for _ in 0..<8 {
            guard current.notValidBefore <= now, now <= current.notValidAfter else {
                return .failure(
                    AuthenticationFailure(
                        "the certificate \(current.subject) is not valid now (valid \(current.notValidBefore) to \(current.notValidAfter))"))
            }
            if let anchor = anchors.first(where: { $0.subject == current.issuer && $0.publicKey.isValidSignature(current.signature, for: current) }) {
                if let failure = revoked(current, by: anchor) { return .failure(failure) }
                if let failure = nameConstraintsBroken(below: anchor) { return .failure(failure) }
                guard anchor.notValidBefore <= now, now <= anchor.notValidAfter else {
                    return .failure(AuthenticationFailure("the trusted CA \(anchor.subject) is not valid now"))
                }
                return .success(path + [anchor])
            }
            guard
                let issuer = intermediates.first(where: {
                    $0.subject == current.issuer && $0.publicKey.isValidSignature(current.signature, for: current)
                }),
                issuer != current
            else {
                return .failure(AuthenticationFailure("the certificate \(current.subject) does not chain to a trusted CA (issuer \(current.issuer))"))
            }
            if let failure = notAnIssuer(issuer, intermediatesBelow: path.count - 1) { return .failure(failure) }
            if let failure = nameConstraintsBroken(below: issuer) { return .failure(failure) }
            if let failure = revoked(current, by: issuer) { return .failure(failure) }
            current = issuer
            path.append(issuer)
        }
        return .failure(AuthenticationFailure("the certificate chain of \(leaf.subject) is too long"))
    }

    /// Why an intermediate certificate may not issue the one below it (RFC 5280 section 6.1.4 (k)-(n)): it
    /// must be a CA (basicConstraints cA), allowed to sign certificates if it has a keyUsage, and its path
    /// length limit must admit the intermediates already below it. Without this check any end-entity
    /// certificate of a trusted CA could mint certificates for any identity. Trust anchors are the
    /// administrator's choice and are not held to it (section 6.1).
    static func notAnIssuer(_ issuer: Certificate, intermediatesBelow: Int) -> AuthenticationFailure? {
        let constraints: BasicConstraints?
        do { constraints = try issuer.extensions.basicConstraints } catch {
            return AuthenticationFailure("the intermediate certificate \(issuer.subject) has an unreadable basicConstraints extension")
        }
        guard case .isCertificateAuthority(let maxPathLength)? = constraints else {
            return AuthenticationFailure("the certificate \(issuer.subject) signed another but is not a CA (no basicConstraints cA)")
        }
        if let usage = try? issuer.extensions.keyUsage, !usage.keyCertSign {
            return AuthenticationFailure("the CA certificate \(issuer.subject) may not sign certificates (keyUsage without keyCertSign)")
        }
        if let maxPathLength, intermediatesBelow > maxPathLength {
            return AuthenticationFailure(
                "the CA certificate \(issuer.subject) allows \(maxPathLength) intermediate(s) below it, the chain has \(intermediatesBelow)")
        }
        return nil
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

    /// SIGNATURE_HASH_ALGORITHMS (RFC 7427 section 4): SHA2-256, SHA2-384, SHA2-512, and Identity for Ed25519 (RFC 8420).
    static let hashAlgorithmsNotify = NotifyPayload(type: .signatureHashAlgorithms, data: SignatureHashAlgorithms.ours.notifyData)
}
