import ConfigurationFiles
import ESP
import Foundation
import IKEv2
import Management
import Packets
import Proxy
import Store
import X509

extension DaemonConfiguration {
    /// What `terminals` gives: an entry per enrolled address, enrollments by MAC, certificates and keys.
    struct TerminalsFound {
        var entries: [TerminalEntry] = []
        var enrollments: [MACAddress: MACEnrollment] = [:]
        var credentials: [UInt64: CertificateCredential] = [:]
        /// PEM chains of terminals whose key is sealed, waiting for it.
        var certificatePEM: [UInt64: String] = [:]
        var ids = Set<UInt64>()
    }

    /// One entry of `terminals`: its enrollment key (or sealed box), addresses or MAC, certificate and key.
    static func parseTerminal(_ t: File.Terminal, at: String, into found: inout TerminalsFound, secrets: inout SecretsFound) throws {
        func fail(_ text: String) -> DaemonConfigurationError { DaemonConfigurationError(text) }
        guard found.ids.insert(t.terminal_id).inserted else { throw fail("\(at): terminal_id used twice") }
        let key: [UInt8]
        if let sealed = t.enrollment_key_sealed {
            secrets.sealed[.terminalEnrollmentKey(terminalID: t.terminal_id)] = try sealedBox(sealed, "\(at).enrollment_key_sealed")
            key = []
        } else {
            guard let hex = t.enrollment_key_hex, let bytes = [UInt8](hexString: hex), bytes.count >= 16 else {
                throw fail("\(at): enrollment_key_sealed, or enrollment_key_hex of at least 16 octets of hexadecimal (32 recommended), is required")
            }
            key = bytes
            secrets.clear.append(.terminalEnrollmentKey(terminalID: t.terminal_id))
        }
        var addresses: [IPAddress] = []
        for text in t.addresses ?? [] {
            guard let address = IPAddress(text) else { throw fail("\(at).addresses: '\(text)' is not an IP address") }
            addresses.append(address)
        }
        guard t.mac != nil || !addresses.isEmpty else { throw fail("\(at): give its mac (addresses are then discovered) or its addresses") }
        if let certificate = t.certificate {
            let pem = try readText(certificate, "\(at).certificate")
            if let sealed = t.private_key_sealed {
                guard !CertificateCredential.certificates(pem: pem).isEmpty else {
                    throw fail("\(at).certificate: '\(certificate)' holds no PEM certificate")
                }
                secrets.sealed[.terminalPrivateKey(terminalID: t.terminal_id)] = try sealedBox(sealed, "\(at).private_key_sealed")
                found.certificatePEM[t.terminal_id] = pem
            } else if let keyPath = t.private_key {
                do {
                    found.credentials[t.terminal_id] = try CertificateCredential(
                        certificatePEM: pem, privateKeyPEM: try readText(keyPath, "\(at).private_key"))
                } catch let error as CredentialError { throw fail("\(at): certificate and private_key: \(error)") }
                secrets.clear.append(.terminalPrivateKey(terminalID: t.terminal_id))
            } else {
                throw fail(
                    "\(at): certificate needs private_key_sealed (from `ikeproxy seal --context terminal-key:\(t.terminal_id)`) or private_key")
            }
        } else if t.private_key != nil || t.private_key_sealed != nil {
            throw fail("\(at): a private key without its certificate")
        }
        let keyAddress = addresses.first { !$0.isIPv6 } ?? addresses.first
        for address in addresses {
            found.entries.append(
                TerminalEntry(
                    address: address, terminalID: t.terminal_id, enrollmentKey: KeyMaterial(key),
                    keyDeliveryPort: t.key_delivery_port ?? WellKnownPort.keyDelivery, keyDeliveryAddress: keyAddress))
        }
        if let text = t.mac {
            guard let mac = MACAddress(text: text) else { throw fail("\(at).mac: '\(text)' is not a MAC address like 02:00:00:00:00:01") }
            found.enrollments[mac] = MACEnrollment(
                terminalID: t.terminal_id, enrollmentKey: KeyMaterial(key), keyDeliveryPort: t.key_delivery_port ?? WellKnownPort.keyDelivery)
        }
    }
}
