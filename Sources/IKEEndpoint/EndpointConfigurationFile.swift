import Foundation
import IKEv2
import X509

/// Why a configuration file was refused; the message names the offending key.
public struct ConfigurationError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// The JSON configuration of `ikeproxy endpoint` (documented in docs/endpoint-configuration.md).
public struct EndpointConfigurationFile: Decodable {
    struct Child: Decodable {
        var name: String
        var local_ts: [String]?
        var remote_ts: [String]?
        var mode: String?
        var esp_proposals: [String]?
        var rekey_time: Double?
        var lifetime: Double?
        /// Up to this many seconds are taken off rekey_time, at random for each SA (default a tenth of it).
        var rand_time: Double?
    }
    struct Connection: Decodable {
        var name: String
        var local_address: String
        var remote_address: String?
        var local_port: UInt16?
        var remote_port: UInt16?
        var local_id: String?
        var remote_id: String?
        var psk: String?
        var psk_hex: String?
        var proposals: [String]?
        var rekey_time: Double?
        var rand_time: Double?
        var force_encapsulation: Bool?
        var liveness_interval: Double?
        /// "allow" (default) or "force": whether IKE_AUTH carries the first CHILD SA (RFC 6023).
        var childless: String?
        var children: [Child]?
        /// "psk" (default) or "pubkey": how this side proves who it is, and how the peer must.
        var local_auth: String?
        var remote_auth: String?
        /// PEM files: our certificate (chain, end entity first) and its private key; the CAs we trust for the peer.
        var certificate: String?
        var private_key: String?
        var ca_certificates: [String]?
        /// CRL files (PEM or DER) of those CAs: a revoked peer certificate is refused.
        var crls: [String]?
        var revocation: String?
    }
    /// Beside the shared engine keys, the COOKIE threshold only a plain endpoint sets.
    struct OwnSettings: Decodable { var cookie_threshold: Int? }
    var connections: [Connection]
    var settings: EngineSettingsFile.With<OwnSettings>?

    public static func load(path: String) throws -> (connections: [ConnectionConfiguration], settings: EngineSettings) {
        guard let data = FileManager.default.contents(atPath: path) else { throw ConfigurationError("cannot read configuration file \(path)") }
        return try parse(data)
    }

    public static func parse(_ data: Data) throws -> (connections: [ConnectionConfiguration], settings: EngineSettings) {
        let file: EndpointConfigurationFile
        do { file = try JSONDecoder().decode(EndpointConfigurationFile.self, from: data) } catch let error as DecodingError {
            throw ConfigurationError("configuration is not valid: \(error.readableDescription)")
        }
        var settings = EngineSettings()
        if let s = file.settings {
            if let v = s.own.cookie_threshold { settings.cookieThreshold = v }
            do { try s.engine.apply(to: &settings) } catch { throw ConfigurationError(error.description) }
        }
        var names = Set<String>()
        let connections = try file.connections.map { c -> ConnectionConfiguration in
            guard names.insert(c.name).inserted else { throw ConfigurationError("connection name '\(c.name)' is used twice") }
            let at = "connection '\(c.name)'"
            guard let local = IPAddress(c.local_address) else { throw ConfigurationError("\(at): local_address '\(c.local_address)' is not an IP address") }
            var remote: IPAddress?
            if let text = c.remote_address {
                guard let address = IPAddress(text) else { throw ConfigurationError("\(at): remote_address '\(text)' is not an IP address") }
                guard address.isIPv6 == local.isIPv6 else { throw ConfigurationError("\(at): local and remote address families differ") }
                remote = address
            }
            let (localAuthentication, remoteAuthentication) = try authentication(c, at: at)
            var psk = KeyMaterial([])
            if let hex = c.psk_hex {
                guard let bytes = [UInt8](hexString: hex) else { throw ConfigurationError("\(at): psk_hex is not hexadecimal") }
                psk = KeyMaterial(bytes)
            } else if let text = c.psk {
                psk = KeyMaterial(Array(text.utf8))
            } else if case .preSharedKey = localAuthentication {
                throw ConfigurationError("\(at): psk or psk_hex is required (or local_auth and remote_auth \"pubkey\" with certificates)")
            } else if case .preSharedKey = remoteAuthentication {
                throw ConfigurationError("\(at): psk or psk_hex is required: remote_auth is \"psk\"")
            }
            let usesPSK: Bool
            switch (localAuthentication, remoteAuthentication) {
            case (.certificate, .certificate): usesPSK = false
            default: usesPSK = true
            }
            guard !usesPSK || psk.count >= 8 else { throw ConfigurationError("\(at): the pre-shared key is shorter than 8 octets") }
            let proposals: [ProposalSpec]
            do { proposals = try (c.proposals ?? ["aes256gcm16-prfsha256-x25519"]).map { try ProposalSpec($0, forIKE: true) } }
            catch { throw ConfigurationError("\(at): \(error)") }
            let children = try (c.children ?? []).map { child -> ChildConfiguration in
                let cat = "\(at), child '\(child.name)'"
                func selectors(_ texts: [String]?, default address: IPAddress?) throws -> [TrafficSelector] {
                    guard let texts else {
                        guard let address else { throw ConfigurationError("\(cat): traffic selectors are required without remote_address") }
                        return [TrafficSelector(cidr: address.description)!]
                    }
                    return try texts.map { text in
                        do { return try TrafficSelector(text: text) } catch { throw ConfigurationError("\(cat): \(error)") }
                    }
                }
                let mode: ChildMode
                switch child.mode ?? "tunnel" {
                case "tunnel": mode = .tunnel
                case "transport": mode = .transport
                default: throw ConfigurationError("\(cat): mode must be 'tunnel' or 'transport'")
                }
                let esp: [ProposalSpec]
                do { esp = try (child.esp_proposals ?? ["aes256gcm16"]).map { try ProposalSpec($0, forIKE: false) } }
                catch { throw ConfigurationError("\(cat): \(error)") }
                var configuration = ChildConfiguration(name: child.name, localTrafficSelectors: try selectors(child.local_ts, default: local),
                                                       remoteTrafficSelectors: try selectors(child.remote_ts, default: remote), mode: mode,
                                                       proposals: esp, rekeyTime: child.rekey_time, lifetime: child.lifetime)
                do { configuration.rekeyJitter = try RekeyJitter.configured(randTime: child.rand_time, rekeyTime: child.rekey_time) }
                catch { throw ConfigurationError("\(cat): \(error)") }
                return configuration
            }
            var connection = ConnectionConfiguration(
                name: c.name, localAddress: local, remoteAddress: remote, localPort: c.local_port ?? 500, remotePort: c.remote_port ?? 500,
                localIdentity: Identity(c.local_id ?? local.description), remoteIdentity: (c.remote_id ?? remote?.description).map(Identity.init),
                preSharedKey: psk, proposals: proposals, children: children, rekeyTime: c.rekey_time,
                forceEncapsulation: c.force_encapsulation ?? false, livenessInterval: c.liveness_interval)
            connection.localAuthentication = localAuthentication
            connection.remoteAuthentication = remoteAuthentication
            do { connection.rekeyJitter = try RekeyJitter.configured(randTime: c.rand_time, rekeyTime: c.rekey_time) }
            catch { throw ConfigurationError("\(at): \(error)") }
            if let childless = c.childless {
                guard let mode = ChildlessMode(rawValue: childless) else {
                    throw ConfigurationError("\(at): childless '\(childless)' is not \(ChildlessMode.choices)")
                }
                connection.childless = mode
            }
            return connection
        }
        guard !connections.isEmpty else { throw ConfigurationError("configuration defines no connections") }
        return (connections, settings)
    }

    /// local_auth / remote_auth with the certificate, key and CA files they need, read and checked now.
    static func authentication(_ c: Connection, at: String) throws -> (LocalAuthentication, RemoteAuthentication) {
        func read(_ path: String, _ key: String) throws -> String {
            guard let data = FileManager.default.contents(atPath: path) else { throw ConfigurationError("\(at): \(key) '\(path)' cannot be read") }
            return String(decoding: data, as: UTF8.self)
        }
        let local: LocalAuthentication
        let mode = c.local_auth ?? "psk"
        switch mode {
        case "psk": local = .preSharedKey
        case "pubkey", "rsa/pss":
            guard let certificate = c.certificate, let key = c.private_key else {
                throw ConfigurationError("\(at): local_auth \"\(mode)\" needs certificate and private_key (PEM files)")
            }
            var credential: CertificateCredential
            do { credential = try CertificateCredential(certificatePEM: try read(certificate, "certificate"), privateKeyPEM: try read(key, "private_key")) }
            catch let error as CredentialError { throw ConfigurationError("\(at): certificate '\(certificate)' and private_key '\(key)': \(error)") }
            if mode == "rsa/pss" {
                guard case .rsa = credential.key else { throw ConfigurationError("\(at): local_auth \"rsa/pss\" needs an RSA private_key ('\(key)' is \(credential.key.name))") }
                credential.rsaPSS = true
            }
            local = .certificate(credential)
        case let other: throw ConfigurationError("\(at): local_auth '\(other)' is not psk, pubkey or rsa/pss")
        }
        let remote: RemoteAuthentication
        do { remote = try AuthenticationFiles.remote(mode: c.remote_auth, caCertificates: c.ca_certificates, crls: c.crls,
                                                         revocation: c.revocation) }
        catch { throw ConfigurationError("\(at): \(error)") }
        return (local, remote)
    }

}

extension DecodingError {
    /// What is wrong with a configuration file or request body and where, in an operator's words:
    /// "missing key 'action' at 'policy.rules[2]'".
    public var readableDescription: String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
                .trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
        switch self {
        case .keyNotFound(let key, let context): return "missing key '\(key.stringValue)' at '\(path(context))'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "wrong type at '\(path(context))': \(context.debugDescription)"
        case .dataCorrupted(let context): return "not valid JSON (\(context.debugDescription)) at '\(path(context))'"
        @unknown default: return "\(self)"
        }
    }
}
