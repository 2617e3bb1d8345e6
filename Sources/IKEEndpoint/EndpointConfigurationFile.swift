import ConfigurationFiles
import Foundation
import IKEv2
import X509

/// The JSON configuration of `ikeproxy endpoint` (documented in docs/endpoint.md).
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
        /// RFC 8784: a post-quantum preshared key, its ID, and whether an IKE SA without it is refused.
        var ppk_id: String?
        var ppk: String?
        var ppk_hex: String?
        var ppk_required: Bool?
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
        // The file has three readers (connections and engine settings here, sockets, key delivery): a key none of
        // them reads is refused.
        let check = UnknownKeyCheck(data: data)
        do {
            file = try check.decode(EndpointConfigurationFile.self)
            try check.decode(EndpointSocketSettings.File.self)
            try check.decode(KeyDeliveryTarget.Root.self)
        } catch let error as DecodingError {
            throw ConfigurationError("configuration is not valid: \(error.readableDescription)")
        }
        try check.refuseUnknownKeys(in: "configuration")
        var settings = EngineSettings()
        if let s = file.settings {
            if let v = s.own.cookie_threshold { settings.cookieThreshold = v }
            do { try s.engine.apply(to: &settings) } catch { throw ConfigurationError(error.description) }
        }
        var names = Set<String>()
        let connections = try file.connections.map { c -> ConnectionConfiguration in
            guard names.insert(c.name).inserted else { throw ConfigurationError("connection name '\(c.name)' is used twice") }
            let at = "connection '\(c.name)'"
            guard let local = IPAddress(c.local_address) else {
                throw ConfigurationError("\(at): local_address '\(c.local_address)' is not an IP address")
            }
            var remote: IPAddress?
            if let text = c.remote_address {
                guard let address = IPAddress(text) else { throw ConfigurationError("\(at): remote_address '\(text)' is not an IP address") }
                guard address.isIPv6 == local.isIPv6 else { throw ConfigurationError("\(at): local and remote address families differ") }
                remote = address
            }
            let (localAuthentication, remoteAuthentication) = try authentication(c, at: at)
            let psk = try SharedConnectionText.preSharedKey(text: c.psk, hex: c.psk_hex, at: at)
            if psk == nil, case .preSharedKey = localAuthentication {
                throw ConfigurationError("\(at): psk or psk_hex is required (or local_auth and remote_auth \"pubkey\" with certificates)")
            } else if psk == nil, case .preSharedKey = remoteAuthentication {
                throw ConfigurationError("\(at): psk or psk_hex is required: remote_auth is \"psk\"")
            }
            let proposals = try SharedConnectionText.ikeProposals(c.proposals, at: at)
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
                let mode = try SharedConnectionText.mode(child.mode, at: cat)
                let esp = try SharedConnectionText.espProposals(child.esp_proposals, at: cat)
                var configuration = ChildConfiguration(
                    name: child.name, localTrafficSelectors: try selectors(child.local_ts, default: local),
                    remoteTrafficSelectors: try selectors(child.remote_ts, default: remote), mode: mode,
                    proposals: esp, rekeyTime: child.rekey_time, lifetime: child.lifetime)
                do { configuration.rekeyJitter = try RekeyJitter.configured(randTime: child.rand_time, rekeyTime: child.rekey_time) } catch {
                    throw ConfigurationError("\(cat): \(error)")
                }
                return configuration
            }
            var connection = ConnectionConfiguration(
                name: c.name, localAddress: local, remoteAddress: remote, localPort: c.local_port ?? 500, remotePort: c.remote_port ?? 500,
                localIdentity: Identity(c.local_id ?? local.description), remoteIdentity: (c.remote_id ?? remote?.description).map(Identity.init),
                preSharedKey: psk ?? KeyMaterial([]), proposals: proposals, children: children, rekeyTime: c.rekey_time,
                forceEncapsulation: c.force_encapsulation ?? false, livenessInterval: c.liveness_interval)
            connection.localAuthentication = localAuthentication
            connection.remoteAuthentication = remoteAuthentication
            do { connection.rekeyJitter = try RekeyJitter.configured(randTime: c.rand_time, rekeyTime: c.rekey_time) } catch {
                throw ConfigurationError("\(at): \(error)")
            }
            if let childless = try SharedConnectionText.childless(c.childless, at: at) { connection.childless = childless }
            connection.postQuantumPresharedKey = try SharedConnectionText.postQuantumPresharedKey(
                id: c.ppk_id, text: c.ppk, hex: c.ppk_hex, required: c.ppk_required, at: at)
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
        switch try SharedConnectionText.localAuthentication(c.local_auth, at: at) {
        case .preSharedKey: local = .preSharedKey
        case .certificate(let rsaPSS):
            guard let certificate = c.certificate, let key = c.private_key else {
                throw ConfigurationError("\(at): local_auth \"\(c.local_auth ?? "")\" needs certificate and private_key (PEM files)")
            }
            var credential: CertificateCredential
            do {
                credential = try CertificateCredential(
                    certificatePEM: try read(certificate, "certificate"), privateKeyPEM: try read(key, "private_key"))
            } catch let error as CredentialError {
                throw ConfigurationError("\(at): certificate '\(certificate)' and private_key '\(key)': \(error)")
            }
            if rsaPSS {
                guard case .rsa = credential.key else {
                    throw ConfigurationError("\(at): local_auth \"rsa/pss\" needs an RSA private_key ('\(key)' is \(credential.key.name))")
                }
                credential.rsaPSS = true
            }
            local = .certificate(credential)
        }
        let remote = try SharedConnectionText.remoteAuthentication(
            c.remote_auth, caCertificates: c.ca_certificates, crls: c.crls, revocation: c.revocation, at: at)
        return (local, remote)
    }

}
