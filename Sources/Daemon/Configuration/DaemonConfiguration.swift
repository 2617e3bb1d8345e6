import ConfigurationFiles
import ESP
import Foundation
import IKEv2
import Management
import Packets
import Proxy
import Store
import X509

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
    /// Octets of frames each AF_PACKET port may hold before the kernel drops (`settings.port_receive_buffer`):
    /// a burst of negotiations or a flood waits there while the daemon reads 64 frames at a time.
    public var portReceiveBuffer = 8 << 20
    /// IKE engines (`settings.workers`, 1 to 64): with more than one, the IKE datagrams of each batch of
    /// frames are answered on that many threads at once, each engine holding the IKE SAs of its SPIs.
    public var workers = 1
    /// Where state is kept across restarts, and what seals its secrets; nil keeps everything in memory.
    public var store: StoreConfiguration?
    /// Secrets the file gives sealed (`psk_sealed`, `enrollment_key_sealed`, `private_key_sealed`), by what
    /// they are for; opened with the store's sealer at start.
    public var sealedSecrets: [SealingContext: [UInt8]] = [:]
    /// Secrets the file gives in the clear, for a warning.
    public var clearSecrets: [SealingContext] = []
    /// Terminals' certificates and private keys, by terminal ID (a sealed key joins its certificate when unsealed).
    public var terminalCredentials: [UInt64: CertificateCredential] = [:]
    /// PEM certificate chains of terminals whose key is sealed, waiting for it.
    var terminalCertificatePEM: [UInt64: String] = [:]
    /// The HTTPS management listener; nil for none.
    public var management: ManagementConfiguration?
    /// One daemon of an active/standby pair sharing a PostgreSQL store (docs/high-availability.md); nil: alone.
    public var highAvailability: HighAvailabilityConfiguration?

    public struct HighAvailabilityConfiguration: Sendable, Equatable {
        /// This daemon's name in the lease (each of the pair has its own).
        public var node: String
        public var timing: Leadership.Timing
    }

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
        /// Where the state lives: a SQLite file of this daemon's own, or a PostgreSQL database (a pair shares one).
        public enum Backend: Sendable, Equatable {
            case sqlite(path: String)
            case postgresql(PostgreSQLStateStore.Settings)
        }
        public var backend: Backend
        public var sealing: Sealing
        /// The file's path or the database's address, for log lines (never a password).
        public var location: String {
            switch backend {
            case .sqlite(let path): path
            case .postgresql(let settings): settings.location
            }
        }
    }

    /// Secrets found while parsing: sealed boxes by what they are for, and those the file gives in the clear.
    struct SecretsFound {
        var sealed: [SealingContext: [UInt8]] = [:]
        var clear: [SealingContext] = []
    }

    public static func load(path: String) throws -> DaemonConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else { throw DaemonConfigurationError("cannot read configuration file \(path)") }
        return try parse(data)
    }

    /// Checks the file section by section; each message names the key at fault.
    public static func parse(_ data: Data) throws -> DaemonConfiguration {
        // What the shared decoder refuses (ConfigurationFiles) reaches callers as this file's error, with its words.
        do { return try parseSections(data) } catch let error as ConfigurationError { throw DaemonConfigurationError(error.description) }
    }

    private static func parseSections(_ data: Data) throws -> DaemonConfiguration {
        let file: File
        let check = UnknownKeyCheck(data: data)
        do { file = try check.decode(File.self) } catch let error as DecodingError {
            throw DaemonConfigurationError("configuration is not valid: \(error.readableDescription)")
        }
        try check.refuseUnknownKeys(in: "configuration")
        func fail(_ text: String) -> DaemonConfigurationError { DaemonConfigurationError(text) }
        let ports = [file.interfaces.internet] + file.interfaces.terminal
        guard !file.interfaces.terminal.contains(file.interfaces.internet) else {
            throw fail("interfaces.internet and interfaces.terminal must be two different interfaces")
        }
        var prefixes: [AddressPrefix] = []
        for text in file.terminal_prefixes {
            guard let prefix = AddressPrefix(text) else { throw fail("terminal_prefixes: '\(text)' is not an address prefix") }
            prefixes.append(prefix)
        }
        var secrets = SecretsFound()
        var profiles: [ProtectionProfile] = []
        for (index, p) in file.profiles.enumerated() {
            let at = "profiles[\(index)] (\(p.name))"
            let profile = try parseProfile(p, at: at, secrets: &secrets)
            guard !profiles.contains(where: { $0.name == p.name }) else { throw fail("\(at): profile name used twice") }
            profiles.append(profile)
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
        var terminals = TerminalsFound()
        for (index, t) in (file.terminals ?? []).enumerated() {
            try parseTerminal(t, at: "terminals[\(index)] (id \(t.terminal_id))", into: &terminals, secrets: &secrets)
        }
        var engine = EngineSettings()
        if let s = file.settings {
            do { try s.engine.apply(to: &engine) } catch { throw fail(error.description) }
            if let v = s.own.retry_after_failure {
                guard v >= 0 && v <= 3600 else { throw fail("settings.retry_after_failure: \(v) is not between 0 and 3600 seconds") }
                settings.retryAfterFailure = v
            }
            for (key, value, apply) in [
                ("max_negotiations_per_terminal", s.own.max_negotiations_per_terminal, { settings.maxNegotiationsPerTerminal = $0 }),
                ("max_negotiations", s.own.max_negotiations, { settings.maxNegotiations = $0 })
            ] as [(String, Int?, (Int) -> Void)] {
                guard let value else { continue }
                guard (1...100_000).contains(value) else { throw fail("settings.\(key): \(value) is not between 1 and 100000") }
                apply(value)
            }
        }
        let portReceiveBuffer = try file.settings?.own.port_receive_buffer.map { size in
            guard (65_536...(1 << 30)).contains(size) else {
                throw fail("settings.port_receive_buffer: \(size) is not between 65536 and 1073741824 octets")
            }
            return size
        }
        let workers = try file.settings?.own.workers.map { workers in
            let allowed = EngineShards.allowedCounts
            guard allowed.contains(workers) else {
                throw fail("settings.workers: \(workers) is not between \(allowed.lowerBound) and \(allowed.upperBound)")
            }
            return workers
        }
        let store = try parseStore(file)
        guard !file.interfaces.terminal.isEmpty else { throw fail("interfaces.terminal: at least one terminal-side interface is needed") }
        if let twice = ports.first(where: { name in ports.filter { $0 == name }.count > 1 }) {
            throw fail("interfaces: '\(twice)' is named twice; each port is one interface")
        }
        var configuration = DaemonConfiguration(
            internetInterface: file.interfaces.internet, terminalInterfaces: file.interfaces.terminal,
            controlSocket: file.control_socket ?? "/run/ikeproxy.sock",
            policy: PolicyTable(rules: rules, defaultAction: defaultAction), profiles: profiles,
            terminalPrefixes: prefixes, terminals: terminals.entries, enrollments: terminals.enrollments,
            proxySettings: settings, engineSettings: engine, showKeys: false, store: store)
        if let portReceiveBuffer { configuration.portReceiveBuffer = portReceiveBuffer }
        if let workers { configuration.workers = workers }
        if let m = file.management { configuration.management = try parseManagement(m, secrets: &secrets) }
        if let ha = file.high_availability { configuration.highAvailability = try parseHighAvailability(ha, store: store) }
        configuration.sealedSecrets = secrets.sealed
        configuration.clearSecrets = secrets.clear
        configuration.terminalCredentials = terminals.credentials
        configuration.terminalCertificatePEM = terminals.certificatePEM
        if !secrets.sealed.isEmpty && store == nil {
            throw fail(
                "sealed secrets (psk_sealed, enrollment_key_sealed, private_key_sealed) need a store with its sealer (pkcs11 or key_file) to open them"
            )
        }
        return configuration
    }

    /// Opens the sealed secrets with the store's sealer and puts them where the placeholders are.
    public mutating func unsealSecrets(with open: (_ box: [UInt8], _ context: SealingContext) throws -> [UInt8]) throws {
        for (context, box) in sealedSecrets {
            let secret: [UInt8]
            do { secret = try open(box, context) } catch {
                throw DaemonConfigurationError("\(context): the sealed secret does not open: \(error)")
            }
            switch context {
            case .terminalPrivateKey(let id):
                guard let pem = terminalCertificatePEM[id] else { continue }
                do {
                    terminalCredentials[id] = try CertificateCredential(certificatePEM: pem, privateKeyPEM: String(decoding: secret, as: UTF8.self))
                } catch { throw DaemonConfigurationError("\(context): \(error)") }
            case .managementTLSKey:
                management?.privateKeyPEM = secret
            case .profilePreSharedKey(let name):
                for i in profiles.indices where profiles[i].name == name { profiles[i].preSharedKey = KeyMaterial(secret) }
            case .profilePostQuantumPresharedKey(let name):
                for i in profiles.indices where profiles[i].name == name { profiles[i].postQuantumPresharedKey?.key = KeyMaterial(secret) }
            case .terminalEnrollmentKey(let id):
                for i in terminals.indices where terminals[i].terminalID == id { terminals[i].enrollmentKey = KeyMaterial(secret) }
                for (mac, enrollment) in enrollments where enrollment.terminalID == id { enrollments[mac]?.enrollmentKey = KeyMaterial(secret) }
            case .savedIKESA, .dataKey:
                continue
            }
        }
        sealedSecrets = [:]
    }

    /// A sealed box as the file gives it (base64 from `ikeproxy seal`).
    static func sealedBox(_ text: String, _ at: String) throws -> [UInt8] {
        guard let data = Data(base64Encoded: text), data.count > 29 else {
            throw DaemonConfigurationError("\(at): not a sealed box (base64 from `ikeproxy seal`)")
        }
        return Array(data)
    }

    /// A file the configuration names, as text.
    static func readText(_ path: String, _ at: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw DaemonConfigurationError("\(at): '\(path)' cannot be read") }
        return String(decoding: data, as: UTF8.self)
    }
}
