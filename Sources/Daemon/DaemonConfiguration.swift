import ESP
import Foundation
import IKEv2
import X509
import Packets
import Proxy
import Management
import IKEEndpoint
import ConfigurationFiles

/// Why a daemon configuration was refused; the message names the offending key.
public struct DaemonConfigurationError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// The JSON configuration of `ikeproxy daemon` (docs/daemon.md): the two ports, the policy, the
/// protection profiles, the terminals and where the control socket lives.
public struct DaemonConfiguration: Sendable {
    public var internetInterface: String
    /// The terminal-side ports: one, or several that the daemon switches between (TerminalPortSwitch).
    public var terminalInterfaces: [String]
    /// The first terminal-side port, whose MAC address the key-delivery address answers with.
    public var terminalInterface: String { terminalInterfaces[0] }
    public var controlSocket: String
    public var policy: PolicyTable
    public var profiles: [ProtectionProfile]
    public var terminalPrefixes: [AddressPrefix]
    public var terminals: [TerminalEntry]
    public var enrollments: [MACAddress: MACEnrollment]
    public var proxySettings: ProxySettings
    public var engineSettings: EngineSettings
    public var showKeys: Bool
    /// Where state is kept across restarts, and what seals its secrets; nil keeps everything in memory.
    public var store: StoreConfiguration?
    /// Secrets the file gives sealed (`psk_sealed`, `enrollment_key_sealed`), by sealing context
    /// ("profile:NAME", "terminal:ID"); opened with the store's sealer at start.
    public var sealedSecrets: [String: [UInt8]] = [:]
    /// Secrets the file gives in the clear, by the same contexts, for a warning.
    public var clearSecrets: [String] = []
    /// Terminals' certificates and private keys, by terminal ID (a sealed key joins its certificate when unsealed).
    public var terminalCredentials: [UInt64: CertificateCredential] = [:]
    /// PEM certificate chains of terminals whose key is sealed, waiting for it.
    var terminalCertificatePEM: [UInt64: String] = [:]
    /// The HTTPS management listener; nil for none.
    public var management: ManagementConfiguration?

    public struct ManagementConfiguration: Sendable {
        public var host: String
        public var port: Int
        public var certificatePath: String
        public var privateKeyPath: String
        /// The TLS key itself when the file gave it sealed.
        public var privateKeyPEM: [UInt8]?
        public var administrators: [Administrator]
        /// PEM file of the CA(s) that issue administrators' client certificates; nil: bearer tokens only.
        public var clientCAPath: String?
    }

    public struct StoreConfiguration: Sendable {
        public enum Sealing: Sendable {
            case token(module: String, tokenLabel: String, pin: String, keyLabel: String)
            case keyFile(path: String, create: Bool)
        }
        public var path: String
        public var sealing: Sealing
    }

    struct File: Decodable {
        struct Interfaces: Decodable {
            var internet: String
            /// One name, or a list of names.
            var terminal: [String]
            enum Keys: String, CodingKey { case internet, terminal }
            init(from decoder: Decoder) throws {
                let container = try decoder.container(keyedBy: Keys.self)
                internet = try container.decode(String.self, forKey: .internet)
                if let one = try? container.decode(String.self, forKey: .terminal) { terminal = [one] }
                else { terminal = try container.decode([String].self, forKey: .terminal) }
            }
        }
        struct Terminal: Decodable {
            var terminal_id: UInt64
            var enrollment_key_hex: String?
            var enrollment_key_sealed: String?
            var mac: String?
            var addresses: [String]?
            var key_delivery_port: UInt16?
            /// The terminal's certificate (PEM, chain) and ECDSA key, for profiles with local_auth "pubkey".
            var certificate: String?
            var private_key: String?
            var private_key_sealed: String?
        }
        struct Profile: Decodable {
            var name: String
            var proposals: [String]?
            var esp_proposals: [String]?
            var psk: String?
            var psk_hex: String?
            var psk_sealed: String?
            var peer_id: String?
            var mode: String?
            var force_encapsulation: Bool?
            var hard_lifetime: UInt32?
            var rekey_bytes: UInt64?
            var life_bytes: UInt64?
            var rekey_packets: UInt64?
            var life_packets: UInt64?
            var rekey_time: Double?
            var ike_rekey_time: Double?
            var rand_time: Double?
            var ike_rand_time: Double?
            var liveness_interval: Double?
            var childless: String?
            var local_auth: String?
            var remote_auth: String?
            var ca_certificates: [String]?
            var crls: [String]?
            var revocation: String?
        }
        struct Policy: Decodable { var rules: [RuleText]; var `default`: String? }
        struct KeyDelivery: Decodable { var port: UInt16?; var source_ipv4: String?; var source_ipv6: String? }
        struct Store: Decodable {
            struct PKCS11: Decodable { var module: String; var token: String; var pin: String?; var pin_file: String?; var key_label: String? }
            var path: String
            var pkcs11: PKCS11?
            var key_file: String?
            var create_key_file: Bool?
        }
        var store: Store?
        struct Management: Decodable {
            struct Admin: Decodable { var name: String; var role: String?; var token_sha256: String?; var certificate_sha256: String? }
            var listen: String
            var port: Int?
            var certificate: String
            var private_key: String?
            var private_key_sealed: String?
            var client_ca: String?
            var administrators: [Admin]
        }
        var management: Management?
        var interfaces: Interfaces
        var control_socket: String?
        var terminal_prefixes: [String]
        var terminals: [Terminal]?
        var profiles: [Profile]
        var policy: Policy
        var key_delivery: KeyDelivery?
        var settings: EngineSettingsFile.With<OwnSettings>?
        /// Beside the shared engine keys, what only the proxy has: the wait after a failed negotiation.
        struct OwnSettings: Decodable { var retry_after_failure: Double?; var max_negotiations_per_terminal: Int?; var max_negotiations: Int? }
    }

    public static func load(path: String) throws -> DaemonConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else { throw DaemonConfigurationError("cannot read configuration file \(path)") }
        return try parse(data)
    }

    public static func parse(_ data: Data) throws -> DaemonConfiguration {
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch let error as DecodingError {
            throw DaemonConfigurationError("configuration is not valid: \(error.readableDescription)")
        }
        func fail(_ text: String) -> DaemonConfigurationError { DaemonConfigurationError(text) }
        guard !file.interfaces.terminal.contains(file.interfaces.internet) else {
            throw fail("interfaces.internet and interfaces.terminal must be two different interfaces")
        }
        var prefixes: [AddressPrefix] = []
        for text in file.terminal_prefixes {
            guard let prefix = AddressPrefix(text) else { throw fail("terminal_prefixes: '\(text)' is not an address prefix") }
            prefixes.append(prefix)
        }
        var profiles: [ProtectionProfile] = []
        var sealedSecrets: [String: [UInt8]] = [:], clearSecrets: [String] = []
        func sealedBox(_ text: String, _ at: String) throws -> [UInt8] {
            guard let data = Data(base64Encoded: text), data.count > 29 else { throw fail("\(at): not a sealed box (base64 from `ikeproxy seal`)") }
            return Array(data)
        }
        func readText(_ path: String, _ at: String) throws -> String {
            guard let data = FileManager.default.contents(atPath: path) else { throw fail("\(at): '\(path)' cannot be read") }
            return String(decoding: data, as: UTF8.self)
        }
        for (index, p) in file.profiles.enumerated() {
            let at = "profiles[\(index)] (\(p.name))"
            var usesTerminalCertificates = false, rsaPSS = false, anchors: [Certificate]?, revocationLists: [CertificateRevocationList] = []
            var revocation = RevocationPolicy.relaxed
            do {
                if case .certificate(let pss) = try SharedConnectionText.localAuthentication(p.local_auth, at: at) {
                    // The terminal's certificate: each terminal under the profile needs one.
                    usesTerminalCertificates = true
                    rsaPSS = pss
                }
            } catch { throw fail(error.description) }
            let remote: RemoteAuthentication
            do { remote = try AuthenticationFiles.remote(mode: p.remote_auth, caCertificates: p.ca_certificates, crls: p.crls,
                                                         revocation: p.revocation) }
            catch { throw fail("\(at): \(error)") }
            if case .certificate(let trusted, let lists, let policy) = remote { anchors = trusted; revocationLists = lists; revocation = policy }
            let needsPSK = !usesTerminalCertificates || anchors == nil
            let key: [UInt8]
            if let sealed = p.psk_sealed {
                sealedSecrets["profile:\(p.name)"] = try sealedBox(sealed, "\(at).psk_sealed")
                key = []
            } else {
                let given: KeyMaterial?
                do { given = try SharedConnectionText.preSharedKey(text: p.psk, hex: p.psk_hex, at: at) } catch { throw fail(error.description) }
                guard given != nil || !needsPSK else { throw fail("\(at): psk_sealed, psk or psk_hex is required") }
                key = given?.bytes ?? []
            }
            if p.psk_sealed == nil && !key.isEmpty { clearSecrets.append("profile:\(p.name)") }
            let ike: [ProposalSpec], esp: [ProposalSpec], mode: ChildMode
            do {
                ike = try SharedConnectionText.ikeProposals(p.proposals, at: at)
                esp = try SharedConnectionText.espProposals(p.esp_proposals, at: at)
                mode = try SharedConnectionText.mode(p.mode, at: at)
            } catch { throw fail(error.description) }
            guard !profiles.contains(where: { $0.name == p.name }) else { throw fail("\(at): profile name used twice") }
            profiles.append(ProtectionProfile(name: p.name, ikeProposals: ike, espProposals: esp, preSharedKey: KeyMaterial(key),
                                              peerIdentity: p.peer_id.map(Identity.init), mode: mode,
                                              forceEncapsulation: p.force_encapsulation ?? true, hardLifetime: p.hard_lifetime,
                                              childRekeyTime: p.rekey_time))
            for (key, value) in [("rekey_time", p.rekey_time), ("ike_rekey_time", p.ike_rekey_time), ("liveness_interval", p.liveness_interval)] {
                if let value, !(value >= 1 && value <= 31_536_000) { throw fail("\(at): \(key) \(value) is not between 1 and 31536000 seconds") }
            }
            if let rekey = p.rekey_time, let hard = p.hard_lifetime, rekey >= Double(hard) {
                throw fail("\(at): rekey_time \(rekey) must be below hard_lifetime \(hard), or the SA is deleted before it is replaced")
            }
            profiles[profiles.count - 1].ikeRekeyTime = p.ike_rekey_time
            do {
                profiles[profiles.count - 1].childRekeyJitter = try RekeyJitter.configured(randTime: p.rand_time, rekeyTime: p.rekey_time)
                profiles[profiles.count - 1].ikeRekeyJitter = try RekeyJitter.configured(randTime: p.ike_rand_time, rekeyTime: p.ike_rekey_time,
                                                                                        names: ("ike_rand_time", "ike_rekey_time"))
            } catch { throw fail("\(at): \(error)") }
            profiles[profiles.count - 1].livenessInterval = p.liveness_interval
            profiles[profiles.count - 1].authenticatesWithTerminalCertificate = usesTerminalCertificates
            profiles[profiles.count - 1].signsWithRSAPSS = rsaPSS
            profiles[profiles.count - 1].peerTrustAnchors = anchors
            profiles[profiles.count - 1].peerRevocationLists = revocationLists
            profiles[profiles.count - 1].peerRevocationPolicy = revocation
            do {
                profiles[profiles.count - 1].volumeLifetime = try ESPLifetime.volume(rekeyBytes: p.rekey_bytes, lifeBytes: p.life_bytes,
                                                                                   rekeyPackets: p.rekey_packets, lifePackets: p.life_packets)
            } catch { throw fail("\(at): \(error)") }
            do {
                if let childless = try SharedConnectionText.childless(p.childless, at: at) { profiles[profiles.count - 1].childless = childless }
            } catch { throw fail(error.description) }
        }
        var rules: [PolicyRule] = []
        for (index, r) in file.policy.rules.enumerated() {
            rules.append(try parseRule(r, at: "policy.rules[\(index)]", profiles: Set(profiles.map(\.name))))
        }
        let defaultAction: PolicyAction
        switch file.policy.default ?? "bypass" {
        case "bypass": defaultAction = .bypass
        case "discard": defaultAction = .discard
        case let other: throw fail("policy.default: '\(other)' is not bypass or discard")
        }
        var settings = ProxySettings()
        if let kd = file.key_delivery {
            if let port = kd.port { settings.keyDeliveryPort = port }
            if let text = kd.source_ipv4 {
                guard let address = IPAddress(text), !address.isIPv6 else { throw fail("key_delivery.source_ipv4: '\(text)' is not an IPv4 address") }
                settings.keyDeliverySourceIPv4 = address
            }
            if let text = kd.source_ipv6 {
                guard let address = IPAddress(text), address.isIPv6 else { throw fail("key_delivery.source_ipv6: '\(text)' is not an IPv6 address") }
                settings.keyDeliverySourceIPv6 = address
            }
        }
        var terminals: [TerminalEntry] = [], enrollments: [MACAddress: MACEnrollment] = [:]
        var terminalCredentials: [UInt64: CertificateCredential] = [:], terminalCertificatePEM: [UInt64: String] = [:]
        var seenIDs = Set<UInt64>()
        for (index, t) in (file.terminals ?? []).enumerated() {
            let at = "terminals[\(index)] (id \(t.terminal_id))"
            guard seenIDs.insert(t.terminal_id).inserted else { throw fail("\(at): terminal_id used twice") }
            let key: [UInt8]
            if let sealed = t.enrollment_key_sealed {
                sealedSecrets["terminal:\(t.terminal_id)"] = try sealedBox(sealed, "\(at).enrollment_key_sealed")
                key = []
            } else {
                guard let hex = t.enrollment_key_hex, let bytes = [UInt8](hexString: hex), bytes.count >= 16 else {
                    throw fail("\(at): enrollment_key_sealed, or enrollment_key_hex of at least 16 octets of hexadecimal (32 recommended), is required")
                }
                key = bytes
                clearSecrets.append("terminal:\(t.terminal_id)")
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
                    guard !CertificateCredential.certificates(pem: pem).isEmpty else { throw fail("\(at).certificate: '\(certificate)' holds no PEM certificate") }
                    sealedSecrets["terminal-key:\(t.terminal_id)"] = try sealedBox(sealed, "\(at).private_key_sealed")
                    terminalCertificatePEM[t.terminal_id] = pem
                } else if let keyPath = t.private_key {
                    do { terminalCredentials[t.terminal_id] = try CertificateCredential(certificatePEM: pem, privateKeyPEM: try readText(keyPath, "\(at).private_key")) }
                    catch let error as CredentialError { throw fail("\(at): certificate and private_key: \(error)") }
                    clearSecrets.append("terminal-key:\(t.terminal_id)")
                } else {
                    throw fail("\(at): certificate needs private_key_sealed (from `ikeproxy seal --context terminal-key:\(t.terminal_id)`) or private_key")
                }
            } else if t.private_key != nil || t.private_key_sealed != nil {
                throw fail("\(at): a private key without its certificate")
            }
            let keyAddress = addresses.first { !$0.isIPv6 } ?? addresses.first
            for address in addresses {
                terminals.append(TerminalEntry(address: address, terminalID: t.terminal_id, enrollmentKey: KeyMaterial(key),
                                               keyDeliveryPort: t.key_delivery_port ?? WellKnownPort.keyDelivery, keyDeliveryAddress: keyAddress))
            }
            if let text = t.mac {
                guard let mac = MACAddress(text: text) else { throw fail("\(at).mac: '\(text)' is not a MAC address like 02:00:00:00:00:01") }
                enrollments[mac] = MACEnrollment(terminalID: t.terminal_id, enrollmentKey: KeyMaterial(key), keyDeliveryPort: t.key_delivery_port ?? WellKnownPort.keyDelivery)
            }
        }
        var engine = EngineSettings()
        if let s = file.settings {
            do { try s.engine.apply(to: &engine) } catch { throw fail(error.description) }
            if let v = s.own.retry_after_failure {
                guard v >= 0 && v <= 3600 else { throw fail("settings.retry_after_failure: \(v) is not between 0 and 3600 seconds") }
                settings.retryAfterFailure = v
            }
            for (key, value, apply) in [("max_negotiations_per_terminal", s.own.max_negotiations_per_terminal, { settings.maxNegotiationsPerTerminal = $0 }),
                                        ("max_negotiations", s.own.max_negotiations, { settings.maxNegotiations = $0 })] as [(String, Int?, (Int) -> Void)] {
                guard let value else { continue }
                guard (1...100_000).contains(value) else { throw fail("settings.\(key): \(value) is not between 1 and 100000") }
                apply(value)
            }
        }
        var store: StoreConfiguration?
        if let st = file.store {
            switch (st.pkcs11, st.key_file) {
            case (let p11?, nil):
                let pin: String
                if let text = p11.pin { pin = text } else if let path = p11.pin_file {
                    guard let data = FileManager.default.contents(atPath: path) else { throw fail("store.pkcs11.pin_file: cannot read \(path)") }
                    pin = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                } else {
                    throw fail("store.pkcs11: pin or pin_file is required")
                }
                store = StoreConfiguration(path: st.path, sealing: .token(module: p11.module, tokenLabel: p11.token, pin: pin,
                                                                          keyLabel: p11.key_label ?? "ikeproxy-sealing-key"))
            case (nil, let path?):
                store = StoreConfiguration(path: st.path, sealing: .keyFile(path: path, create: st.create_key_file ?? false))
            default:
                throw fail("store: give exactly one of pkcs11 (a token) or key_file (a key on removable media) to seal secrets")
            }
        }
        let ports = [file.interfaces.internet] + file.interfaces.terminal
        guard !file.interfaces.terminal.isEmpty else { throw fail("interfaces.terminal: at least one terminal-side interface is needed") }
        if let twice = ports.first(where: { name in ports.filter { $0 == name }.count > 1 }) {
            throw fail("interfaces: '\(twice)' is named twice; each port is one interface")
        }
        var configuration = DaemonConfiguration(internetInterface: file.interfaces.internet, terminalInterfaces: file.interfaces.terminal,
                                   controlSocket: file.control_socket ?? "/run/ikeproxy.sock",
                                   policy: PolicyTable(rules: rules, defaultAction: defaultAction), profiles: profiles,
                                   terminalPrefixes: prefixes, terminals: terminals, enrollments: enrollments,
                                   proxySettings: settings, engineSettings: engine, showKeys: false, store: store)
        if let m = file.management {
            guard IPAddress(m.listen) != nil else { throw fail("management.listen: '\(m.listen)' is not an IP address (the management interface's)") }
            guard !m.administrators.isEmpty else { throw fail("management.administrators: at least one administrator is needed") }
            var administrators: [Administrator] = []
            for (index, a) in m.administrators.enumerated() {
                let at = "management.administrators[\(index)]"
                func digest(_ text: String?, _ key: String, _ how: String) throws -> [UInt8]? {
                    guard let text else { return nil }
                    guard let bytes = [UInt8](hexString: text.replacingOccurrences(of: ":", with: "")), bytes.count == 32 else {
                        throw fail("\(at).\(key): 64 hexadecimal digits (\(how))")
                    }
                    return bytes
                }
                let token = try digest(a.token_sha256, "token_sha256", "sha256sum of the token")
                let certificate = try digest(a.certificate_sha256, "certificate_sha256",
                                             "SHA-256 of the client certificate: openssl x509 -in cert.pem -outform DER | sha256sum")
                guard token != nil || certificate != nil else {
                    throw fail("\(at): token_sha256 or certificate_sha256 (or both) is needed, or nobody can log in as \(a.name)")
                }
                if certificate != nil && m.client_ca == nil {
                    throw fail("\(at).certificate_sha256: management.client_ca must name the CA that issues administrators' certificates")
                }
                guard let role = Administrator.Role(rawValue: a.role ?? "admin") else {
                    throw fail("\(at).role: 'admin' or 'reader'")
                }
                administrators.append(Administrator(name: a.name, role: role, tokenSHA256: token, certificateSHA256: certificate))
            }
            if let sealed = m.private_key_sealed {
                sealedSecrets["management:tls-key"] = try sealedBox(sealed, "management.private_key_sealed")
            } else if m.private_key != nil {
                clearSecrets.append("management:tls-key")
            } else {
                throw fail("management: private_key_sealed (from `ikeproxy seal --context management:tls-key`) or private_key (a PEM file) is required")
            }
            configuration.management = ManagementConfiguration(host: m.listen, port: m.port ?? 8443, certificatePath: m.certificate,
                                                               privateKeyPath: m.private_key ?? "", administrators: administrators,
                                                               clientCAPath: m.client_ca)
        }
        configuration.sealedSecrets = sealedSecrets
        configuration.clearSecrets = clearSecrets
        configuration.terminalCredentials = terminalCredentials
        configuration.terminalCertificatePEM = terminalCertificatePEM
        if !sealedSecrets.isEmpty && store == nil {
            throw fail("sealed secrets (psk_sealed, enrollment_key_sealed, private_key_sealed) need a store with its sealer (pkcs11 or key_file) to open them")
        }
        return configuration
    }

    /// Opens the sealed secrets with the store's sealer and puts them where the placeholders are.
    public mutating func unsealSecrets(with open: (_ box: [UInt8], _ context: String) throws -> [UInt8]) throws {
        for (context, box) in sealedSecrets {
            let secret: [UInt8]
            do { secret = try open(box, context) } catch {
                throw DaemonConfigurationError("\(context): the sealed secret does not open: \(error)")
            }
            let parts = context.split(separator: ":", maxSplits: 1).map(String.init)
            if parts[0] == "terminal-key", let id = UInt64(parts[1]), let pem = terminalCertificatePEM[id] {
                do { terminalCredentials[id] = try CertificateCredential(certificatePEM: pem, privateKeyPEM: String(decoding: secret, as: UTF8.self)) }
                catch { throw DaemonConfigurationError("\(context): \(error)") }
            } else if context == "management:tls-key" {
                management?.privateKeyPEM = secret
            } else if parts[0] == "profile" {
                for i in profiles.indices where profiles[i].name == parts[1] { profiles[i].preSharedKey = KeyMaterial(secret) }
            } else if let id = UInt64(parts[1]) {
                for i in terminals.indices where terminals[i].terminalID == id { terminals[i].enrollmentKey = KeyMaterial(secret) }
                for (mac, enrollment) in enrollments where enrollment.terminalID == id { enrollments[mac]?.enrollmentKey = KeyMaterial(secret) }
            }
        }
        sealedSecrets = [:]
    }

    /// One policy rule as the configuration file and the management API write it.
    public struct RuleText: Codable, Sendable {
        public var source: String?
        public var destination: String?
        public var `protocol`: String?
        public var source_ports: String?
        public var destination_ports: String?
        public var action: String
        public var profile: String?
    }

    /// The rule as configuration text (the inverse of `parseRule`).
    public static func text(of rule: PolicyRule) -> RuleText {
        let names: [UInt8: String] = [IPProtocolNumber.tcp: "tcp", IPProtocolNumber.udp: "udp", IPProtocolNumber.icmp: "icmp",
                                      IPProtocolNumber.icmpv6: "icmpv6", IPProtocolNumber.esp: "esp"]
        let action: String, profile: String?
        switch rule.action {
        case .bypass: (action, profile) = ("bypass", nil)
        case .discard: (action, profile) = ("discard", nil)
        case .protect(let name): (action, profile) = ("protect", name)
        }
        return RuleText(source: rule.source.text, destination: rule.destination.text,
                        protocol: rule.ipProtocol.map { names[$0] ?? String($0) } ?? "any",
                        source_ports: rule.sourcePorts.description, destination_ports: rule.destinationPorts.description,
                        action: action, profile: profile)
    }

    public static func parseRule(_ r: RuleText, at: String, profiles: Set<String>) throws -> PolicyRule {
        func fail(_ text: String) -> DaemonConfigurationError { DaemonConfigurationError(text) }
        let sourceText = r.source ?? "any", destinationText = r.destination ?? "any"
        let isIPv6 = sourceText.contains(":") || destinationText.contains(":")
        func prefix(_ text: String, _ key: String) throws -> AddressPrefix {
            if text == "any" { return AddressPrefix.any(ipv6: isIPv6) }
            guard let prefix = AddressPrefix(text) else { throw fail("\(at).\(key): '\(text)' is not an address prefix") }
            return prefix
        }
        let source = try prefix(sourceText, "source"), destination = try prefix(destinationText, "destination")
        guard source.isIPv6 == destination.isIPv6 else { throw fail("\(at): source and destination must be the same IP version") }
        let ipProtocol: UInt8?
        switch (r.protocol ?? "any").lowercased() {
        case "any": ipProtocol = nil
        case "tcp": ipProtocol = IPProtocolNumber.tcp
        case "udp": ipProtocol = IPProtocolNumber.udp
        case "icmp": ipProtocol = IPProtocolNumber.icmp
        case "icmpv6", "ipv6-icmp": ipProtocol = IPProtocolNumber.icmpv6
        case "esp": ipProtocol = IPProtocolNumber.esp
        case let other:
            guard let number = UInt8(other) else { throw fail("\(at).protocol: '\(other)' is not tcp, udp, icmp, icmpv6, esp, any or a number") }
            ipProtocol = number
        }
        func ports(_ text: String?, _ key: String) throws -> PortRange {
            guard let text, text != "any" else { return .any }
            guard let range = PortRange(text) else { throw fail("\(at).\(key): '\(text)' is not a port, a range like 1024-2047, or any") }
            return range
        }
        let action: PolicyAction
        switch r.action {
        case "bypass": action = .bypass
        case "discard": action = .discard
        case "protect":
            guard let name = r.profile else { throw fail("\(at): a protect rule names a profile") }
            guard profiles.contains(name) else { throw fail("\(at): profile '\(name)' is not defined in profiles") }
            action = .protect(profile: name)
        default: throw fail("\(at).action: '\(r.action)' is not bypass, discard or protect")
        }
        return PolicyRule(source: source, destination: destination, ipProtocol: ipProtocol,
                          sourcePorts: try ports(r.source_ports, "source_ports"),
                          destinationPorts: try ports(r.destination_ports, "destination_ports"), action: action)
    }

}
