import Crypto
import Foundation
import SwiftASN1
import X509
import _CryptoExtras

@testable import IKEv2

/// A CA made in the test, the certificates it issues, and two engines that authenticate with them.
enum CertificateFixtures {
    struct Authority {
        let key = P256.Signing.PrivateKey()
        /// Set for a CA that signs with Ed25519 (RFC 8410) instead of ECDSA P-256.
        let ed25519Key: Curve25519.Signing.PrivateKey?
        let certificate: Certificate
        var issuerKey: Certificate.PrivateKey { ed25519Key.map { .init($0) } ?? .init(key) }
        var signatureAlgorithm: Certificate.SignatureAlgorithm { ed25519Key == nil ? .ecdsaWithSHA256 : .ed25519 }

        init(
            name: String, validFrom: Date = Date(timeIntervalSinceNow: -3600), validTo: Date = Date(timeIntervalSinceNow: 86400),
            ed25519: Bool = false
        ) throws {
            ed25519Key = ed25519 ? Curve25519.Signing.PrivateKey() : nil
            let subject = try DistinguishedName { CommonName(name) }
            let publicKey: Certificate.PublicKey = ed25519Key.map { .init($0.publicKey) } ?? .init(key.publicKey)
            let issuerKey: Certificate.PrivateKey = ed25519Key.map { .init($0) } ?? .init(key)
            certificate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: publicKey, notValidBefore: validFrom,
                notValidAfter: validTo, issuer: subject, subject: subject,
                signatureAlgorithm: ed25519 ? .ed25519 : .ecdsaWithSHA256,
                extensions: try Certificate.Extensions { Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil)) },
                issuerPrivateKey: issuerKey)
        }

        /// An end-entity certificate for `address` (subjectAltName IP), with a P-256 key or the one given.
        func issue(
            address: String, p384: Bool = false, subjectKey: SigningKey? = nil, validTo: Date = Date(timeIntervalSinceNow: 86400),
            ocspResponder: String? = nil
        ) throws -> CertificateCredential {
            let signing: SigningKey = subjectKey ?? (p384 ? .p384(P384.Signing.PrivateKey()) : .p256(P256.Signing.PrivateKey()))
            let ip = IPAddress(address)!
            let certificate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: signing.publicKey,
                notValidBefore: Date(timeIntervalSinceNow: -60), notValidAfter: validTo, issuer: self.certificate.subject,
                subject: try DistinguishedName { CommonName("host \(address)") }, signatureAlgorithm: signatureAlgorithm,
                extensions: try Certificate.Extensions {
                    SubjectAlternativeNames([.ipAddress(ASN1OctetString(contentBytes: ArraySlice(ip.bytes)))])
                    if let ocspResponder {
                        AuthorityInformationAccess([.init(method: .ocspServer, location: .uniformResourceIdentifier(ocspResponder))])
                    }
                },
                issuerPrivateKey: issuerKey)
            return CertificateCredential(chain: [certificate], key: signing)
        }
    }

    static func pair(
        initiator: CertificateCredential, responder: CertificateCredential, initiatorTrusts: [Certificate], responderTrusts: [Certificate],
        settings: (EngineSettings, EngineSettings) = (EngineSettings(), EngineSettings()),
        revocation: (RevocationPolicy, RevocationPolicy) = (.relaxed, .relaxed)
    ) throws -> EnginePair {
        var a = try Fixtures.connection(local: "192.0.2.1", remote: "192.0.2.2", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        var b = try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes256gcm16-prfsha256-x25519", esp: "aes256gcm16")
        a.localAuthentication = .certificate(initiator)
        a.remoteAuthentication = .certificate(trustAnchors: initiatorTrusts, revocation: revocation.0)
        b.localAuthentication = .certificate(responder)
        b.remoteAuthentication = .certificate(trustAnchors: responderTrusts, revocation: revocation.1)
        return EnginePair(
            initiator: [a], responder: [b], initiatorAddress: IPAddress("192.0.2.1")!, responderAddress: IPAddress("192.0.2.2")!,
            responderSettings: settings.1, initiatorSettings: settings.0)
    }

    static func established(_ pair: EnginePair) -> Bool {
        pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
        return pair.events("initiator", .childEstablished).count == 1 && pair.events("responder", .childEstablished).count == 1
    }

    static func failure(_ pair: EnginePair) -> String {
        pair.events.map(\.event).first { $0.kind == .ikeFailed }?.detail ?? "no failure"
    }
}
