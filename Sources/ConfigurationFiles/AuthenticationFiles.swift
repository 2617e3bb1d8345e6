import Foundation
import IKEv2
import X509

/// Reads what `remote_auth` names from files, for the endpoint's and the daemon's configurations alike:
/// "psk", or "pubkey" with the CAs' certificates, their CRLs and the revocation policy. Errors name the key and the file; the
/// caller puts where in its file in front.
public enum AuthenticationFiles {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func remote(mode: String?, caCertificates: [String]?, crls: [String]?, revocation: String? = nil) throws(Failure)
        -> RemoteAuthentication
    {
        guard let policy = RevocationPolicy(rawValue: revocation ?? "relaxed") else {
            throw Failure(description: "revocation '\(revocation ?? "")' is not relaxed, ifuri or strict")
        }
        if revocation != nil && mode != "pubkey" {
            throw Failure(description: "revocation applies to peer certificates: it needs remote_auth \"pubkey\"")
        }
        switch mode ?? "psk" {
        case "psk": return .preSharedKey
        case "pubkey":
            guard let files = caCertificates, !files.isEmpty else {
                throw Failure(description: "remote_auth \"pubkey\" needs ca_certificates (PEM files of the CAs that issue the peer's certificate)")
            }
            var anchors: [Certificate] = []
            for file in files {
                let found = CertificateCredential.certificates(pem: String(decoding: try read(file, "ca_certificates"), as: UTF8.self))
                guard !found.isEmpty else { throw Failure(description: "ca_certificates '\(file)' holds no PEM certificate") }
                anchors += found
            }
            var lists: [CertificateRevocationList] = []
            for file in crls ?? [] {
                do { lists += try CertificateRevocationList.lists(pemOrDER: try read(file, "crls")) } catch let failure as Failure {
                    throw failure
                } catch { throw Failure(description: "crls '\(file)' is not a CRL: \(error)") }
            }
            return .certificate(trustAnchors: anchors, revocationLists: lists, revocation: policy)
        case let other: throw Failure(description: "remote_auth '\(other)' is not psk or pubkey")
        }
    }

    static func read(_ path: String, _ key: String) throws(Failure) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure(description: "\(key) '\(path)' cannot be read") }
        return Array(data)
    }
}
