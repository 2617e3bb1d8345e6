import Foundation
import X509

/// The policies a peer's certificate path must meet, composed as swift-certificates composes policies:
/// RFC 5280 (`StandardPathPolicy`), keyCertSign on intermediates, the connection's CRL files, and the
/// identity the peer claims. The order is the order of the log's reasons: the first refusal is reported.
enum PeerCertificatePolicy {
    static func verifier(
        anchors: [Certificate], now: Date, revocationLists: [CertificateRevocationList], identity: IdentificationPayload?
    ) -> Verifier<some VerifierPolicy> {
        Verifier(rootCertificates: CertificateStore(anchors)) {
            StandardPathPolicy(now: now)
            IssuerKeyUsagePolicy()
            CRLFilePolicy(lists: revocationLists)
            if let identity { PeerIdentityPolicy(identity: identity) }
        }
    }
}
