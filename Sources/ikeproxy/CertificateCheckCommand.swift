import ArgumentParser
import ConfigurationFiles
import Foundation
import IKEv2

/// Judges a peer's certificate chain as IKE_AUTH would, without a negotiation: for an operator checking a
/// CA setup before a peer connects (as strongSwan's `pki --verify`), and for the certificate matrix test.
struct CertificateCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certificate-check",
        abstract: "Judge a certificate chain as IKE_AUTH would: exit 0 and the path if accepted, exit 1 and the reason if refused."
    )

    @Option(name: .long, help: "PEM file of the peer's chain: its certificate first, then the intermediates it would send.")
    var chain: String
    @Option(name: .long, help: "PEM file of trusted CA certificates (ca_certificates); repeatable.")
    var ca: [String]
    @Option(name: .long, help: "CRL file (PEM or DER) (crls); repeatable.")
    var crl: [String] = []
    @Option(name: .long, help: "The identity the peer would claim (address, name, mail address, or DN); none: not checked.")
    var identity: String?

    func run() throws {
        let authentication: RemoteAuthentication
        do { authentication = try AuthenticationFiles.remote(mode: "pubkey", caCertificates: ca, crls: crl) } catch {
            throw ValidationError(error.description)
        }
        guard case .certificate(let anchors, let lists, _) = authentication else { throw ExitCode(2) }
        guard let text = FileManager.default.contents(atPath: chain) else { throw ValidationError("--chain '\(chain)' cannot be read") }
        let certificates = CertificateCredential.certificates(pem: String(decoding: text, as: UTF8.self))
        guard !certificates.isEmpty else { throw ValidationError("--chain '\(chain)' holds no readable PEM certificate") }
        switch PeerCertificateCheck.judge(
            chain: certificates, anchors: anchors, revocationLists: lists, identity: identity.map(Identity.init), at: Date())
        {
        case .success(let path):
            print("accepted: " + path.map { "\($0.subject)" }.joined(separator: " <- "))
        case .failure(let failure):
            print("refused: \(failure)")
            throw ExitCode(1)
        }
    }
}
