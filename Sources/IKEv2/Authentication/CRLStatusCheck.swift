import Foundation
import X509

/// Judges a certificate against CRLs fetched from its distribution points (RFC 5280 section 6.3): only a
/// CRL its issuer signed counts, and only while current (nextUpdate not past), so that a stale or forged
/// list proves nothing either way.
public enum CRLStatusCheck {
    public static func status(
        of certificate: Certificate, issuer: Certificate, lists: [CertificateRevocationList],
        from uri: String, at time: Date
    ) -> RevocationStatus {
        let signed = lists.filter { $0.isSigned(by: issuer) }
        guard !signed.isEmpty else {
            return .unavailable(lists.isEmpty ? "the CRL at \(uri) holds no CRL" : "the CRL at \(uri) is not signed by \(issuer.subject)")
        }
        if signed.contains(where: { $0.revokedSerialNumbers.contains(certificate.serialNumber) }) {
            return .revoked("serial \(certificate.serialNumber.hexDescription) is listed in the CRL at \(uri)")
        }
        guard signed.contains(where: { $0.thisUpdate <= time.addingTimeInterval(300) && ($0.nextUpdate.map { $0 >= time } ?? true) }) else {
            return .unavailable("the CRL at \(uri) is out of date (nextUpdate past)")
        }
        return .good
    }
}
