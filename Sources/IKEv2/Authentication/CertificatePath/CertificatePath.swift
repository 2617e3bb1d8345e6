import Dispatch
import Foundation
import SwiftASN1
@_spi(FixedExpiryValidationTime) import X509

/// The peer's certificate path (RFC 5280 section 6), built and judged by swift-certificates' `Verifier`.
/// Every candidate issuer is tried, from the peer's CERT payloads and from the trust anchors (a cross-signed
/// CA, a renewed CA under the same name), and a path stands only if every policy of `PeerCertificatePolicy`
/// accepts it. A certificate with a critical extension none of those policies enforces refuses the path.
enum CertificatePath {
    /// The verified path, end entity first and trust anchor last, or why there is none.
    static func validate(
        leaf: Certificate, intermediates: [Certificate], anchors: [Certificate],
        revocationLists: [CertificateRevocationList] = [], identity: IdentificationPayload? = nil, now: Date
    ) -> Result<[Certificate], AuthenticationFailure> {
        let handled = PeerCertificatePolicy.verifier(anchors: [], now: now, revocationLists: [], identity: identity)
            .policy.verifyingCriticalExtensions
        let outcome = SynchronousAsync.run {
            var verifier = PeerCertificatePolicy.verifier(anchors: anchors, now: now, revocationLists: revocationLists, identity: identity)
            return await verifier.validate(leaf: leaf, intermediates: CertificateStore(intermediates))
        }
        switch outcome {
        case .validCertificate(let chain):
            return .success(Array(chain))
        case .couldNotValidate(let failures):
            if let unknown = unhandledCriticalExtension(in: leaf, handled: handled) { return .failure(unknown) }
            if let first = failures.first {
                return .failure(AuthenticationFailure(readable(first.policyFailureReason.description, chain: Array(first.chain))))
            }
            // No candidate path reached a trust anchor: name the issuer that stopped it, or the extension that did.
            let issuerNames = [leaf.issuer] + intermediates.map(\.issuer)
            for issuer in intermediates + anchors where issuerNames.contains(issuer.subject) {
                if let unknown = unhandledCriticalExtension(in: issuer, handled: handled) { return .failure(unknown) }
            }
            let tip = deepestIssuedTip(from: leaf, intermediates: intermediates)
            return .failure(AuthenticationFailure("the certificate \(tip.subject) does not chain to a trusted CA (issuer \(tip.issuer))"))
        }
    }

    /// The log line for a certificate that carries a critical extension no policy here enforces.
    static func unhandledCriticalExtension(in certificate: Certificate, handled: [ASN1ObjectIdentifier]) -> AuthenticationFailure? {
        let unknown = certificate.extensions.filter { $0.critical && !handled.contains($0.oid) }.map(\.oid)
        guard !unknown.isEmpty else { return nil }
        return AuthenticationFailure(
            "the certificate \(certificate.subject) carries the critical extension "
                + unknown.map { "\($0)" }.joined(separator: ", ")
                + ", which is not understood here; RFC 5280 section 4.2 refuses such a certificate")
    }

    /// The highest certificate reachable from the leaf through the peer's intermediates by name, for the
    /// message that says where the path broke off.
    static func deepestIssuedTip(from leaf: Certificate, intermediates: [Certificate]) -> Certificate {
        var tip = leaf
        var seen = [leaf]
        while let next = intermediates.first(where: { $0.subject == tip.issuer && !seen.contains($0) }) {
            tip = next
            seen.append(next)
        }
        return tip
    }

    /// swift-certificates' reasons print whole certificates; the log names them by subject.
    static func readable(_ reason: String, chain: [Certificate]) -> String {
        var text = reason
        for certificate in chain { text = text.replacingOccurrences(of: "\(certificate)", with: "\(certificate.subject)") }
        if text.hasPrefix("RFC5280Policy: ") { text = String(text.dropFirst("RFC5280Policy: ".count)) }
        return text
    }
}

/// Runs async work that does not suspend (the verifier with synchronous policies only) on the calling
/// thread, for the engine, which is a pure synchronous state machine. Should the work suspend after all,
/// the caller waits for it on a semaphore rather than getting no answer.
enum SynchronousAsync {
    private final class Outcome<T: Sendable>: @unchecked Sendable {
        let lock = NSLock()
        var value: T?
        let done = DispatchSemaphore(value: 0)
    }

    static func run<T: Sendable>(_ work: @escaping @Sendable () async -> T) -> T {
        let outcome = Outcome<T>()
        Task.immediate {
            let value = await work()
            outcome.lock.withLock { outcome.value = value }
            outcome.done.signal()
        }
        if let value = outcome.lock.withLock({ outcome.value }) { return value }
        outcome.done.wait()
        return outcome.lock.withLock { outcome.value! }
    }
}

/// The same judgement for an operator (`ikeproxy certificate-check`) and for tests that compare it with
/// other implementations: a chain as a peer would send it (end entity first), the anchors of
/// `ca_certificates`, the CRL files, and the identity the peer would claim.
public enum PeerCertificateCheck {
    public static func judge(
        chain: [Certificate], anchors: [Certificate], revocationLists: [CertificateRevocationList] = [], identity: Identity?, at time: Date
    ) -> Result<[Certificate], AuthenticationFailure> {
        guard let leaf = chain.first else { return .failure(AuthenticationFailure("no certificate to judge")) }
        return CertificatePath.validate(
            leaf: leaf, intermediates: Array(chain.dropFirst()), anchors: anchors, revocationLists: revocationLists,
            identity: identity?.payload, now: time)
    }
}
