import Foundation
import IKEEndpoint
import IKEv2
import LinuxIO
import Packets
import Proxy
import Store
import Management

/// Why the daemon could not start, in words an operator can act on.
public struct DaemonStartError: Error, CustomStringConvertible {
    public var description: String
}

/// `ikeproxy daemon`: the bump in the wire. Two AF_PACKET ports with no IP address, frames read and
/// written in batches, every frame judged by the Ethernet bridge (and so by the proxy's policy), timers
/// ticked, SA events printed as JSON lines, and a control socket answering `ikeproxy terminals`.
public final class DaemonRunner {
    /// As read at start; its terminal list as read at the last reload.
    var configuration: DaemonConfiguration
    public let bridge: EthernetBridge
    let internet: PacketPort
    /// The terminal-side ports; with more than one, `portSwitch` decides which a frame leaves by.
    let terminals: [PacketPort]
    var terminal: PacketPort { terminals[0] }
    var portSwitch: TerminalPortSwitch?
    var lastAging = 0.0
    let control: ControlSocket
    let log: (String) -> Void
    let emit: (String) -> Void
    let startedAt = monotonicSeconds()
    /// Data-path counters: frames in and out per port, refused and truncated frames.
    public private(set) var portCounters: [String: Int] = [:]
    /// State on disk (nil: memory only) and whether its sealer was there at the last look.
    let state: ProxyStateStore?
    var sealerPresent = true
    var lastPresenceCheck = 0.0
    /// For a token: the child process that looks for it, so that the loop never waits on the token.
    var presenceProbe: TokenPresenceProbe?
    var lastProgressSave = 0.0
    /// The link addresses last saved (saveStations writes only a change).
    var savedStations: [StateDatabase.StationRow] = []
    /// What the start decided to send before the loop runs (the Deletes of SAs no terminal is enrolled for).
    var startupFrames: [FrameAction] = []
    var ikeActivity = false
    /// Without a store: the audit entries of this run (the newest ones) and how many there were.
    var recentAudit: [(time: Double, who: String, action: String, detail: String)] = []
    var auditTotal = 0
    var discoveryChanged = false
    let mailbox = ManagementMailbox()
    /// Online revocation checks (OCSP) the engine asks for, run off the loop.
    let revocation: RevocationService
    var server: ManagementServer?

    /// The file the configuration came from, read again on a reload (nil: no reload).
    public var configurationPath: String?
    /// The token or key file that opens the configuration's sealed secrets, kept to open them again on a reload.
    private var configurationSealer: Sealer?

    public init(configuration original: DaemonConfiguration, showKeys: Bool = false, log: @escaping (String) -> Void,
                emit: @escaping (String) -> Void) throws {
        var configuration = original
        let sealer = try Self.makeSealer(configuration)
        if let sealer {
            do { try configuration.unsealSecrets { box, context in try sealer.unseal(box, context: context) } } catch {
                throw DaemonStartError(description: "\(error)")
            }
            for context in configuration.clearSecrets {
                log("warning: \(context): its secret is in the clear in the configuration file; seal it with `ikeproxy seal` and use the *_sealed key")
            }
        }
        self.configuration = configuration
        self.configurationSealer = sealer
        self.log = log
        self.emit = emit
        for name in [configuration.internetInterface] + configuration.terminalInterfaces {
            // The proxy owns no address: keep the kernel from giving the ports an IPv6 link-local one.
            let sysctl = "/proc/sys/net/ipv6/conf/\(name)/disable_ipv6"
            if FileManager.default.fileExists(atPath: sysctl) { try? "1\n".write(toFile: sysctl, atomically: false, encoding: .utf8) }
            let held = interfaceAddresses(name)
            guard held.isEmpty else {
                throw DaemonStartError(description: "interface '\(name)' holds the address(es) \(held.joined(separator: ", ")); "
                                       + "a bridged port of the proxy must have none (ip address flush dev \(name))")
            }
        }
        do {
            internet = try PacketPort(interface: configuration.internetInterface)
            terminals = try configuration.terminalInterfaces.map { try PacketPort(interface: $0) }
        } catch {
            throw DaemonStartError(description: "\(error)")
        }
        do { control = try ControlSocket(path: configuration.controlSocket) } catch {
            throw DaemonStartError(description: "control socket: \(error)")
        }
        let proxy = KeyExchangeProxy(policy: configuration.policy,
                                     registry: TerminalRegistry(allowedPrefixes: configuration.terminalPrefixes, terminals: configuration.terminals),
                                     profiles: configuration.profiles, settings: configuration.proxySettings,
                                     engineSettings: configuration.engineSettings, epoch: UInt64(Date().timeIntervalSince1970 * 1000))
        proxy.terminalCredentials = configuration.terminalCredentials
        revocation = RevocationService(ocspCacheLimit: configuration.engineSettings.ocspCacheLimit)
        for (id, credential) in configuration.terminalCredentials.sorted(by: { $0.key < $1.key }) {
            log("terminal \(id): certificate \(credential.chain[0].subject) (issued by \(credential.chain[0].issuer), valid until \(credential.chain[0].notValidAfter))")
        }
        bridge = EthernetBridge(proxy: proxy, terminalPortMAC: MACAddress(terminals[0].mac), discoveryPrefixes: configuration.terminalPrefixes,
                                enrollments: configuration.enrollments)
        self.showKeys = showKeys
        state = try Self.openState(configuration, sealer: sealer, proxy: proxy, log: log)
        if let state {
            Self.restoreHosts(state.database, into: bridge, log: log)
            savedStations = Self.restoreStations(state.database, into: bridge, log: log)
            restoreApprovedTerminals(state)
            // Restored SAs of terminals removed before the restart (their deletion cut short) go now.
            let now = monotonicSeconds(), wall = Date().timeIntervalSince1970
            startupFrames = bridge.frames(for: proxy.deleteSAsOfUnenrolledTerminals(now: now, wallClock: wall))
        }
        if let management = configuration.management {
            // Log lines from the server's threads: the log function only writes whole lines to stderr.
            nonisolated(unsafe) let serverLog = log
            let server = try ManagementServer(host: management.host, port: management.port, certificatePath: management.certificatePath,
                                              privateKeyPath: management.privateKeyPath, privateKeyPEM: management.privateKeyPEM,
                                              clientCAPath: management.clientCAPath, administrators: management.administrators,
                                              mailbox: mailbox, log: { line in serverLog(line) })
            try Self.wait { try await server.start() }
            self.server = server
            log("management API on https://\(management.host.contains(":") ? "[\(management.host)]" : management.host):\(management.port) "
                + "(\(management.administrators.count) administrator(s); bearer tokens kept as SHA-256 hashes"
                + (management.clientCAPath.map { "; client certificates from the CA in \($0), pinned by SHA-256" } ?? "") + ")")
        }
        if state != nil, case .token(let module, let tokenLabel, let pin, let keyLabel)? = configuration.store?.sealing {
            presenceProbe = TokenPresenceProbe(executable: TokenPresenceProbe.currentExecutable, modulePath: module, tokenLabel: tokenLabel,
                                               keyLabel: keyLabel, pin: pin)
        }
        if let state {
            sealerPresent = state.sealer.isAvailable()
            if !sealerPresent {
                proxy.refusesNewNegotiations = "\(state.sealer.name) is not present"
                log("\(state.sealer.name) is not present: new negotiations are refused until it is back")
            }
        }
        if terminals.count > 1 {
            var ports = TerminalPortSwitch(portCount: terminals.count)
            ports.ownAddresses = [TerminalPortSwitch.key(terminal.mac, at: 0)]
            portSwitch = ports
        }
        log("bridging \(internet.name) (Internet side, MTU \(internet.mtu)) and "
            + terminals.map { "\($0.name) (terminal side, MTU \($0.mtu))" }.joined(separator: ", ")
            + (terminals.count > 1 ? " (switched between them by learnt MAC address)" : "") + ", "
            + "no IP address on either; \(proxy.policy.rules.count) policy rules, default \(proxy.policy.defaultAction); "
            + "\(Set(configuration.terminals.map(\.terminalID)).count + configuration.enrollments.count) terminals enrolled; "
            + "key delivery from \(configuration.proxySettings.keyDeliverySourceIPv4) port \(configuration.proxySettings.keyDeliveryPort); "
            + "control socket \(configuration.controlSocket)")
    }

    let showKeys: Bool

    /// Opens the database, writes the configuration tables (secrets sealed) and restores saved SAs.
    /// The sealer the store configuration names, checked present; nil without a store.
    public static func makeSealer(_ configuration: DaemonConfiguration) throws -> Sealer? {
        guard let settings = configuration.store else { return nil }
        let sealer: Sealer
        switch settings.sealing {
        case .token(let module, let tokenLabel, let pin, let keyLabel):
            let token = TokenSealer(modulePath: module, tokenLabel: tokenLabel, pin: pin, keyLabel: keyLabel)
            if !token.isAvailable() {
                throw DaemonStartError(description: "store: \(token.name): \(token.lastError ?? "not available"); secrets cannot be sealed or opened")
            }
            sealer = token
        case .keyFile(let path, let create):
            do { sealer = try KeyFileSealer(path: path, create: create) } catch {
                throw DaemonStartError(description: "store: \(error)")
            }
            if !sealer.isAvailable() { throw DaemonStartError(description: "store: the key file \(path) is missing or not 32 octets") }
        }
        return sealer
    }

    static func openState(_ configuration: DaemonConfiguration, sealer tokenOrKeyFile: Sealer?, proxy: KeyExchangeProxy,
                          log: (String) -> Void) throws -> ProxyStateStore? {
        guard let settings = configuration.store, var sealer = tokenOrKeyFile else { return nil }
        let database: StateDatabase
        do { database = try StateDatabase(path: settings.path) } catch {
            throw DaemonStartError(description: "store: cannot open the database \(settings.path): \(error)")
        }
        if let token = sealer as? TokenSealer {
            sealer = try Self.envelope(token, database: database, log: log)
        }
        let wall = Date().timeIntervalSince1970
        do {
            let terminalRows = try terminalRows(of: configuration, sealer: sealer)
            let profiles = try configuration.profiles.map { profile in
                (name: profile.name, definition: "ike \(profile.ikeProposals.count) proposal(s), esp \(profile.espProposals.count), \(profile.mode.rawValue)",
                 sealedPreSharedKey: try sealer.seal(profile.preSharedKey.bytes, context: .profilePreSharedKey(profile: profile.name)))
            }
            try database.replaceConfiguration(terminals: terminalRows, profiles: profiles,
                                              rules: configuration.policy.rules.map(Self.json(of:)), now: wall)
            if let source = try database.meta("policy_source") {
                let texts = try database.policyRules()
                let rules = try texts.enumerated().map { index, text in
                    try DaemonConfiguration.parseRule(try JSONDecoder().decode(DaemonConfiguration.RuleText.self, from: Data(text.utf8)),
                                                      at: "saved policy rule \(index)", profiles: Set(configuration.profiles.map(\.name)))
                }
                let defaultAction: PolicyAction = switch try database.meta("policy_default") {
                case "discard": .discard
                case "bypass": .bypass
                default: configuration.policy.defaultAction
                }
                proxy.policy = PolicyTable(rules: rules, defaultAction: defaultAction)
                log("policy: \(rules.count) rules from the database, as changed over the management API (\(source)); the configuration file's rules are not used")
            }
        } catch {
            throw DaemonStartError(description: "store: cannot write the configuration tables: \(error)")
        }
        let store = ProxyStateStore(database: database, sealer: sealer)
        let described = (try? database.describe()).map { "schema version \($0.version), journal \($0.journalMode)" } ?? ""
        log("state in \(settings.path) (\(described)), secrets sealed by \(sealer.name)")
        for line in store.restore(into: proxy, now: monotonicSeconds(), wallClock: wall) { log(line) }
        return store
    }

    /// The token wraps a data key kept in the database; the boxes of the store are sealed with it, so the
    /// token works at start and not for every SA change (EnvelopeSealer).
    static func envelope(_ token: TokenSealer, database: StateDatabase, log: (String) -> Void) throws -> EnvelopeSealer {
        do {
            let stored = try database.meta("wrapped_data_key").flatMap { Data(base64Encoded: $0) }.map { Array($0) }
            let envelope = try EnvelopeSealer(token: token, wrappedKey: stored)
            if stored == nil {
                try database.setMeta("wrapped_data_key", Data(envelope.wrappedKey).base64EncodedString())
                log("store: a new data key, wrapped by \(token.name), seals the state")
            } else {
                log("store: the data key unwrapped by \(token.name) seals the state")
            }
            return envelope
        } catch {
            throw DaemonStartError(description: "store: the data key cannot be unwrapped with \(token.name): \(error)")
        }
    }

    /// Hosts discovery learnt before a restart: terminals enrolled by MAC are registered again at once.
    static func restoreHosts(_ database: StateDatabase, into bridge: EthernetBridge, log: (String) -> Void) {
        do {
            let rows = try database.hosts()
            for row in rows {
                guard let mac = MACAddress(text: row.mac) else { continue }
                var host = DiscoveredTerminal(mac: mac, lastSeen: monotonicSeconds() - max(0, Date().timeIntervalSince1970 - row.lastSeen))
                host.ipv4 = Set(row.ipv4.compactMap(IPAddress.init))
                host.ipv6 = Set(row.ipv6.compactMap(IPAddress.init))
                host.learntFrom = Set(row.learntFrom)
                bridge.restoreDiscovered(host)
            }
            if !rows.isEmpty { log("restored \(rows.count) discovered host(s)") }
        } catch {
            log("cannot read discovered hosts from \(database.path): \(error)")
        }
    }

    /// The link addresses the proxy needs after a restart: those of the peers of the IKE SAs it holds and of
    /// the registered terminals.
    func neededStations() -> [StateDatabase.StationRow] {
        let addresses = Set(bridge.proxy.engine.sessionSummaries.filter(\.established).flatMap { [$0.remote.address, $0.local.address] })
            .union(bridge.proxy.registry.entries.keys)
        return addresses.compactMap { address in
            bridge.stations.station(for: address).map {
                StateDatabase.StationRow(address: address.description, mac: $0.mac.description, vlanIDs: $0.vlanIDs,
                                         side: $0.side == .internet ? "internet" : "terminal")
            }
        }.sorted { $0.address < $1.address }
    }

    /// Saves the link addresses the proxy needs when they changed (an SA made or gone, a station moved).
    func saveStations() {
        guard let state else { return }
        let rows = neededStations()
        guard rows != savedStations else { return }
        do {
            try state.database.saveStations(rows)
            savedStations = rows
        } catch {
            log("saving link addresses failed: \(error)")
        }
    }

    static func restoreStations(_ database: StateDatabase, into bridge: EthernetBridge, log: (String) -> Void) -> [StateDatabase.StationRow] {
        do {
            let rows = try database.stations()
            for row in rows {
                guard let address = IPAddress(row.address), let mac = MACAddress(text: row.mac) else { continue }
                bridge.restore(station: Station(mac: mac, vlanIDs: row.vlanIDs, side: row.side == "internet" ? .internet : .terminal), for: address)
            }
            if !rows.isEmpty { log("restored the link addresses of \(rows.count) peer(s) and terminal(s)") }
            return rows
        } catch {
            log("cannot read link addresses from \(database.path): \(error)")
            return []
        }
    }

    /// Saves the hosts discovery knows when it learnt something new.
    func saveHosts() {
        guard let state, discoveryChanged else { return }
        discoveryChanged = false
        let wall = Date().timeIntervalSince1970, now = monotonicSeconds()
        let rows = bridge.discovery.hosts.values.map { host in
            StateDatabase.HostRow(mac: host.mac.description, ipv4: host.ipv4.map(\.description).sorted(), ipv6: host.ipv6.map(\.description).sorted(),
                                  learntFrom: host.learntFrom.sorted(), lastSeen: wall - (now - host.lastSeen))
        }
        do { try state.database.saveHosts(rows) } catch { log("saving discovered hosts failed: \(error)") }
    }

    /// Saves what the last frames or timers changed, before the frames they produced go out.
    func synchronizeState(now: Double) {
        saveHosts()
        guard let state, ikeActivity else { return }
        ikeActivity = false
        for line in state.synchronize(engine: bridge.proxy.engine, now: now, wallClock: Date().timeIntervalSince1970) { log(line) }
        saveStations()
    }

    /// Every few seconds: is the token (or key file) still there; save sequence numbers and counters.
    func stateHousekeeping(now: Double) {
        guard let state else { return }
        if let probe = presenceProbe {
            // A token: a child process opens it afresh; the loop only looks at the answer.
            if let outcome = probe.poll(now: now) {
                switch outcome {
                case .present where !sealerPresent:
                    // Back: this process opens its own session again (once, not every look).
                    sealerPresent(state.sealer.isAvailable(), state: state)
                case .present:
                    // Still there, but a failed operation may have closed our session: open it again.
                    if let token = Self.token(of: state.sealer), !token.isOpen, !token.isAvailable() {
                        log("\(token.name): the token is present but our session does not open again: \(token.lastError ?? "")")
                    }
                case .absent(let reason) where sealerPresent:
                    Self.token(of: state.sealer)?.close()
                    log("\(state.sealer.name): \(reason)")
                    sealerPresent(false, state: state)
                default: break
                }
            }
            if now - lastPresenceCheck >= 2, !probe.isRunning {
                lastPresenceCheck = now
                do { try probe.start(now: now) } catch { log("cannot start the token presence probe \(probe.executable): \(error)") }
            }
        } else if now - lastPresenceCheck >= 2 {
            lastPresenceCheck = now
            sealerPresent(state.sealer.isAvailable(), state: state)
        }
        if now - lastProgressSave >= 5 {
            lastProgressSave = now
            saveStations()
            for line in state.saveProgress(proxy: bridge.proxy, counters: bridge.proxy.counters) { log(line) }
        }
    }

    /// The token behind a sealer, if a token it is.
    static func token(of sealer: Sealer) -> TokenSealer? { (sealer as? EnvelopeSealer)?.token ?? sealer as? TokenSealer }

    /// Acts on a change of the sealer's presence: new negotiations are refused while it is away.
    private func sealerPresent(_ present: Bool, state: ProxyStateStore) {
        guard present != sealerPresent else { return }
        sealerPresent = present
        if present {
            bridge.proxy.refusesNewNegotiations = nil
            log("\(state.sealer.name) is back: new negotiations resume")
            ikeActivity = true
        } else {
            bridge.proxy.refusesNewNegotiations = "\(state.sealer.name) was removed"
            log("\(state.sealer.name) was removed: established SAs keep forwarding, new negotiations are refused until it is back")
        }
    }

    private func count(_ counter: DataPathCounter, _ amount: Int = 1) { if amount > 0 { portCounters[counter.name, default: 0] += amount } }


    /// Reads the configuration file again for the profiles, the terminals' certificates and keys, the policy
    /// and the list of terminals (SIGHUP); on any error those in use stay and the log says why.
    /// Returns what it did, line by line, or why it did nothing.
    @discardableResult
    public func reloadCredentials() -> Result<[String], DaemonStartError> {
        guard let path = configurationPath else {
            log("reload: the configuration file is not known; nothing read")
            return .failure(DaemonStartError(description: "the configuration file is not known; nothing read"))
        }
        do {
            var fresh = try DaemonConfiguration.load(path: path)
            if let sealer = configurationSealer {
                try fresh.unsealSecrets { box, context in try sealer.unseal(box, context: context) }
            }
            let (updated, lines) = ProfileReload.apply(fresh: fresh.profiles, to: bridge.proxy.profiles)
            let (credentials, terminalLines) = TerminalCredentialReload.apply(fresh: fresh.terminalCredentials, to: bridge.proxy.terminalCredentials)
            bridge.proxy.profiles = updated
            bridge.proxy.terminalCredentials = credentials
            var policyLines = reloadPolicy(fresh.policy)
            // Profiles gone from the file go once the policy in force (the file's, or the API's) names them no more.
            let (kept, goneLines) = ProfileReload.removeUnused(updated, inFile: Set(fresh.profiles.map(\.name)),
                                                               namedByPolicy: bridge.proxy.policy.profileNames)
            bridge.proxy.profiles = kept
            policyLines += goneLines
            let listLines = reloadTerminalPrefixes(fresh.terminalPrefixes) + reloadTerminalList(fresh)
            (lines + terminalLines + policyLines + listLines).forEach(log)
            applyPolicy(now: monotonicSeconds(), wallClock: Date().timeIntervalSince1970)
            return .success(lines + terminalLines + policyLines + listLines)
        } catch {
            log("reload: \(path) not taken, the profiles, certificates, policy and terminals in use stay: \(error)")
            return .failure(DaemonStartError(description: "\(path) not taken, the profiles, certificates, policy and terminals in use stay: \(error)"))
        }
    }

    /// The file's terminal prefixes, taken on a reload: enrolled addresses they no longer cover lose their SAs
    /// and are not acted for; newly covered ones are; addresses administrators approved or added stay allowed.
    func reloadTerminalPrefixes(_ fresh: [AddressPrefix]) -> [String] {
        let old = configuration.terminalPrefixes
        guard fresh.map(\.text) != old.map(\.text) else { return [] }
        let (withdrawn, admitted, frames) = bridge.replaceTerminalPrefixes(fresh, now: monotonicSeconds(), wallClock: Date().timeIntervalSince1970)
        configuration.terminalPrefixes = fresh
        func byTerminal(_ addresses: [IPAddress]) -> String {
            let groups = Dictionary(grouping: addresses) { bridge.proxy.registry.entries[$0]?.terminalID ?? 0 }
            return groups.keys.sorted().map { id in "terminal \(id) (\(groups[id]!.map(\.description).joined(separator: ", ")))" }
                .joined(separator: ", ")
        }
        var lines = ["reload: terminal_prefixes \(fresh.map(\.text).joined(separator: ", ")) (were \(old.map(\.text).joined(separator: ", ")))"
                     + "; addresses approved or added over the API stay allowed"]
        if !withdrawn.isEmpty { lines.append("reload: no longer inside terminal_prefixes, not acted for, their SAs deleted: \(byTerminal(withdrawn))") }
        if !admitted.isEmpty { lines.append("reload: now inside terminal_prefixes, acted for: \(byTerminal(admitted))") }
        if !frames.isEmpty { sendDecided(frames, now: monotonicSeconds()) }
        return lines
    }

    /// The file's terminals, taken on a reload (TerminalListReload): new ones enrolled, gone ones removed with
    /// their SAs, changed ones removed and enrolled anew; those the management API decided stay as it said.
    func reloadTerminalList(_ fresh: DaemonConfiguration) -> [String] {
        var managed: Set<UInt64> = []
        if let state {
            managed.formUnion(((try? state.database.approvedTerminals()) ?? []).map(\.terminalID))
            managed.formUnion(((try? state.database.removedTerminals()) ?? []).map(\.terminalID))
        }
        let plan = TerminalListReload.plan(old: TerminalListReload.definitions(terminals: configuration.terminals, enrollments: configuration.enrollments),
                                           new: TerminalListReload.definitions(terminals: fresh.terminals, enrollments: fresh.enrollments),
                                           managedOverAPI: managed)
        var lines = plan.lines
        let now = monotonicSeconds(), wall = Date().timeIntervalSince1970
        var frames: [FrameAction] = []
        for id in plan.remove { frames += bridge.remove(terminalID: id, now: now, wallClock: wall) ?? [] }
        for id in plan.enroll {
            for entry in fresh.terminals where entry.terminalID == id {
                bridge.proxy.registry.enroll(entry)
                if bridge.proxy.registry.terminal(at: entry.address) == nil {
                    lines.append("reload: terminal \(id): \(entry.address) is outside terminal_prefixes; not acted for there until they cover it")
                }
            }
            for (mac, enrollment) in fresh.enrollments where enrollment.terminalID == id { bridge.enroll(mac: mac, enrollment: enrollment) }
        }
        configuration.terminals = fresh.terminals
        configuration.enrollments = fresh.enrollments
        if let state, !plan.remove.isEmpty || !plan.enroll.isEmpty {
            do { try state.database.replaceConfigurationTerminals(try Self.terminalRows(of: configuration, sealer: state.sealer)) } catch {
                lines.append("reload: the terminals could not be saved in the store (\(error)); they are in use, and read from the file at the next start")
            }
        }
        if !frames.isEmpty { sendDecided(frames, now: now) }
        return lines
    }

    /// The configuration file's terminals as rows of the store, their keys sealed.
    static func terminalRows(of configuration: DaemonConfiguration, sealer: Sealer) throws -> [StateDatabase.TerminalRow] {
        var terminalRows: [StateDatabase.TerminalRow] = []
        var byID: [UInt64: [TerminalEntry]] = [:]
        for entry in configuration.terminals { byID[entry.terminalID, default: []].append(entry) }
        for (id, entries) in byID {
            terminalRows.append(StateDatabase.TerminalRow(terminalID: id, mac: nil, addresses: entries.map(\.address.description),
                                                          sealedEnrollmentKey: try sealer.seal(entries[0].enrollmentKey.bytes, context: .terminalEnrollmentKey(terminalID: id)),
                                                          keyDeliveryPort: entries[0].keyDeliveryPort))
        }
        for (mac, enrollment) in configuration.enrollments {
            terminalRows.append(StateDatabase.TerminalRow(terminalID: enrollment.terminalID, mac: mac.description, addresses: [],
                                                          sealedEnrollmentKey: try sealer.seal(enrollment.enrollmentKey.bytes, context: .terminalEnrollmentKey(terminalID: enrollment.terminalID)),
                                                          keyDeliveryPort: enrollment.keyDeliveryPort))
        }
        return terminalRows
    }

    /// The file's policy, taken on a reload unless the policy was changed over the management API (that one
    /// stays, as at a start) or it names a profile the daemon does not run.
    func reloadPolicy(_ fresh: PolicyTable) -> [String] {
        let current = bridge.proxy.policy
        if let state, (try? state.database.meta("policy_source")) ?? nil != nil {
            return ["reload: policy: changed over the management API, which stays; the file's rules are not used"]
        }
        guard fresh.rules != current.rules || fresh.defaultAction != current.defaultAction else { return ["reload: policy: unchanged"] }
        if let unknown = fresh.profileNames.sorted().first(where: { bridge.proxy.profiles[$0] == nil }) {
            return ["reload: policy not taken: it names profile '\(unknown)', which the daemon does not have"]
        }
        bridge.proxy.policy = fresh
        return ["reload: policy: \(fresh.rules.count) rule(s) from the file, default \(fresh.defaultAction); the SAs follow"]
    }

    public func run(shouldStop: () -> Bool, shouldReload: () -> Bool = { false }) {
        var lastTick = 0.0
        if !startupFrames.isEmpty {
            sendDecided(startupFrames, now: monotonicSeconds())
            startupFrames = []
        }
        let portDescriptors = [internet.descriptor] + terminals.map(\.descriptor)
        let descriptors = portDescriptors + [control.descriptor, mailbox.wakeDescriptor, revocation.wakeDescriptor]
        while !shouldStop() {
            let ready = waitReadable(descriptors, timeoutMilliseconds: 100)
            if shouldReload() { reloadCredentials() }
            // Drain both ports in turns, one batch each, until both are empty (bounded, so timers still run).
            var rounds = 0
            var busy = portDescriptors.contains(where: ready.contains)
            while busy && rounds < 64 && !shouldStop() {
                let a = pump(from: .internet), b = terminals.indices.reduce(0) { $0 + pump(from: .terminal, port: $1) }
                busy = a + b > 0
                rounds += 1
            }
            if ready.contains(control.descriptor) { control.serve(answer) }
            if ready.contains(mailbox.wakeDescriptor) { mailbox.drain(handle) }
            if ready.contains(revocation.wakeDescriptor) { receiveRevocationAnswers() }
            let now = monotonicSeconds()
            if now - lastTick >= 0.1 {
                lastTick = now
                let actions = bridge.tick(now: now, wallClock: Date().timeIntervalSince1970)
                if actions.contains(where: { if case .send = $0 { return true }; if case .event = $0 { return true }; return false }) {
                    ikeActivity = true
                }
                synchronizeState(now: now)
                perform(actions, receivedOn: nil)
                stateHousekeeping(now: now)
                if now - lastAging >= 10 { portSwitch?.age(now: now); lastAging = now }
            }
        }
        if let state { for line in state.saveProgress(proxy: bridge.proxy, counters: bridge.proxy.counters) { log(line) } }
        presenceProbe?.cancel()
        server?.stop()
        log("stopping; \(render(counters: portCounters)); proxy: \(render(counters: bridge.proxy.counters)); bridge: \(render(counters: bridge.counters))")
    }

    /// Reads one batch from `side` (terminal port `port`), judges each frame and sends what goes on. Returns
    /// the frames read. With several terminal ports, frames between them are switched unjudged and frames
    /// for stations not learnt are flooded to the other terminal ports as well (TerminalPortSwitch).
    private func pump(from side: LinkSide, port index: Int = 0) -> Int {
        let input = side == .internet ? internet : terminals[index]
        // Frames passed on unchanged, by output (0: Internet port, 1 + i: terminal port i): pointers into the batch.
        var forwards = Array(repeating: [UnsafePointer<UInt8>?](), count: 1 + terminals.count)
        var lengths = Array(repeating: [Int32](), count: 1 + terminals.count)
        var offloads = Array(repeating: [UnsafePointer<UInt8>?](), count: 1 + terminals.count)
        var built: [(LinkSide, [UInt8])] = []
        let inputSlot = side == .internet ? 0 : 1 + index
        let now = monotonicSeconds(), wall = Date().timeIntervalSince1970
        let received: Int
        do {
            received = try input.receiveBatch { frame, offload, truncated in
                guard !truncated else { count(.truncatedFrameDropped(side)); return }
                func pass(to slot: Int) {
                    if slot == inputSlot {
                        // Back out of the port it came in by: copied, the batch is still being read.
                        built.append((side, Array(frame)))
                    } else {
                        forwards[slot].append(frame.baseAddress); lengths[slot].append(Int32(frame.count)); offloads[slot].append(offload)
                    }
                }
                if portSwitch != nil, frame.count >= 14 {
                    let destination = TerminalPortSwitch.key(frame, at: 0), source = TerminalPortSwitch.key(frame, at: 6)
                    if side == .internet {
                        portSwitch!.learn(source: source, at: .internet, now: now)
                    } else {
                        portSwitch!.learn(source: source, at: .terminal(index), now: now)
                        switch portSwitch!.fromTerminal(ingress: index, destination: destination, now: now) {
                        case .switchTo(let other):
                            count(.framesSwitchedBetweenTerminalPorts)
                            return pass(to: 1 + other)
                        case .sameSegment:
                            count(.framesFilteredSameSegment)
                            return
                        case .judgeAndFlood(let others):
                            if !others.isEmpty { count(.framesFloodedToTerminalPorts) }
                            for other in others { pass(to: 1 + other) }
                        }
                    }
                }
                for action in bridge.receive(from: side, frame: Array(frame), now: now, wallClock: wall) {
                    switch action {
                    case .forward(.internet): pass(to: 0)
                    case .forward(.terminal):
                        let ports = portSwitch.map { $0.terminalPorts(for: TerminalPortSwitch.key(frame, at: 0), now: now) } ?? [0]
                        for port in ports { pass(to: 1 + port) }
                    case .send(let out, let bytes): built.append((out, bytes)); ikeActivity = true
                    case .drop: break
                    case .log(let line): log(line)
                    case .discovered(let line):
                        discoveryChanged = true
                        log(line)
                    case .event(let event): ikeActivity = true; emit(EventJSON.render(event, showKeys: showKeys))
                    case .checkRevocation(let request): revocation.start(request)
                    }
                }
            }
            // The forwarded frames point into the receive batch: sent before the next read reuses it.
            for slot in forwards.indices where !forwards[slot].isEmpty {
                let output = slot == 0 ? internet : terminals[slot - 1], outputSide: LinkSide = slot == 0 ? .internet : .terminal
                let (sent, refused) = output.send(frames: forwards[slot], lengths: lengths[slot], offloads: offloads[slot])
                count(.framesForwarded(to: outputSide), sent)
                count(.transmitRefused(outputSide), refused)
            }
            count(.framesIn(side), received)
        } catch {
            count(.receiveErrors(side))
            log("\(error)")
            return 0
        }
        synchronizeState(now: now)
        for (out, bytes) in built { sendBuilt(bytes, on: out) }
        return received
    }

    /// A frame the proxy built (or passed back): out of the Internet port, or the terminal port(s) its
    /// destination sits behind.
    private func sendBuilt(_ frame: [UInt8], on side: LinkSide) {
        let ports: [PacketPort]
        if side == .internet {
            ports = [internet]
        } else if let portSwitch, frame.count >= 14 {
            ports = portSwitch.terminalPorts(for: TerminalPortSwitch.key(frame, at: 0), now: monotonicSeconds()).map { terminals[$0] }
        } else {
            ports = [terminal]
        }
        for port in ports {
            if port.send(frame) { count(.framesBuilt(to: side)) } else { count(.transmitRefused(side)) }
        }
    }

    func perform(_ actions: [FrameAction], receivedOn: LinkSide?) {
        for action in actions {
            switch action {
            case .send(let side, let bytes): sendBuilt(bytes, on: side)
            case .forward: break
            case .drop: break
            case .log(let line): log(line)
            case .discovered(let line): discoveryChanged = true; log(line)
            case .event(let event): emit(EventJSON.render(event, showKeys: showKeys))
            case .checkRevocation(let request): revocation.start(request)
            }
        }
    }

    /// Frames the proxy decided outside a received frame (an OCSP answer, an administrator's command, a reload,
    /// the start): as for frames, the state they change is saved before they go out.
    func sendDecided(_ frames: [FrameAction], now: Double) {
        ikeActivity = true
        synchronizeState(now: now)
        perform(frames, receivedOn: nil)
    }

    /// OCSP answers that came in: the held IKE_AUTH exchanges go on.
    private func receiveRevocationAnswers() {
        for answer in revocation.drain() {
            log("revocation check \(answer.id): \(RevocationService.describe(answer))")
            let actions = bridge.revocationChecked(answer.id, answer.status, now: monotonicSeconds(), wallClock: Date().timeIntervalSince1970)
            sendDecided(actions, now: monotonicSeconds())
        }
    }

    func render(counters: [String: Int]) -> String {
        counters.isEmpty ? "none" : counters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    // MARK: control socket

    /// Answers one control request with JSON.
    func answer(_ request: String) -> String {
        let object: Any
        switch request.trimmingCharacters(in: .whitespaces) {
        case "terminals": object = ["terminals": terminalRows()]
        case "status": object = status()
        case "sas": object = ["sas": saRows()]
        default: object = ["error": "unknown request '\(request)'; known: terminals, status, sas"]
        }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// The terminal port a station was last seen on: the only one, or the one the switch learnt; nil when
    /// there are several and it has not been heard from recently.
    func portName(of mac: MACAddress, now: Double) -> String? {
        guard let portSwitch else { return terminal.name }
        guard case .terminal(let index)? = portSwitch.location(of: TerminalPortSwitch.key(mac.octets, at: 0), now: now) else { return nil }
        return terminals[index].name
    }

    func terminalRows() -> [[String: Any]] {
        let registry = bridge.proxy.registry, now = monotonicSeconds()
        var rows: [[String: Any]] = []
        var listed = Set<IPAddress>()
        for host in bridge.discovery.hosts.values.sorted(by: { $0.mac.description < $1.mac.description }) {
            let addresses = host.ipv4.union(host.ipv6)
            let entries = addresses.compactMap { registry.terminal(at: $0) }
            let inside = addresses.contains(where: bridge.discovery.isInsidePrefixes)
            let status = !entries.isEmpty ? "registered" : inside ? "unenrolled" : "pending"
            listed.formUnion(addresses)
            rows.append(["mac": host.mac.description, "ipv4": host.ipv4.map(\.description).sorted(), "ipv6": host.ipv6.map(\.description).sorted(),
                         "status": status, "terminal_id": entries.first.map { NSNumber(value: $0.terminalID) } ?? NSNull(),
                         "learnt_from": host.learntFrom.sorted(), "last_seen_seconds_ago": Int(now - host.lastSeen),
                         "port": portName(of: host.mac, now: now) ?? NSNull()])
        }
        // Terminals enrolled by address (in the configuration file or over the API) that have not shown themselves
        // on the link yet, and the file's terminals an administrator removed.
        let fromFile = Set(configuration.terminals.map { "\($0.terminalID) \($0.address)" })
        var byID: [UInt64: [IPAddress]] = [:]
        for entry in registry.entries.values where !listed.contains(entry.address) { byID[entry.terminalID, default: []].append(entry.address) }
        var removed: [UInt64: [IPAddress]] = [:]
        for entry in configuration.terminals where !listed.contains(entry.address) && registry.entries[entry.address] == nil {
            removed[entry.terminalID, default: []].append(entry.address)
        }
        for (id, addresses) in byID.merging(removed, uniquingKeysWith: +).sorted(by: { $0.key < $1.key }) {
            let sorted = addresses.sorted { $0.description < $1.description }
            let status = sorted.contains { registry.terminal(at: $0) != nil } ? "registered"
                : sorted.contains { registry.entries[$0] != nil } ? "outside prefixes" : "removed"
            rows.append(["mac": NSNull(), "ipv4": sorted.filter { !$0.isIPv6 }.map(\.description), "ipv6": sorted.filter(\.isIPv6).map(\.description),
                         "status": status, "terminal_id": NSNumber(value: id),
                         "learnt_from": [sorted.contains { fromFile.contains("\(id) \($0)") } ? "configuration" : "api"],
                         "last_seen_seconds_ago": NSNull(), "port": NSNull()])
        }
        // Each row with the CHILD SAs the proxy holds for its addresses and the key-delivery messages it has not
        // had acknowledged yet (a terminal that stays silent shows them growing).
        let sasByAddress = Dictionary(grouping: bridge.proxy.store.children.values, by: \.terminal.description).mapValues(\.count)
        return rows.map { row in
            var row = row
            let addresses = ((row["ipv4"] as? [String]) ?? []) + ((row["ipv6"] as? [String]) ?? [])
            row["sas"] = addresses.reduce(0) { $0 + (sasByAddress[$1] ?? 0) }
            row["key_delivery_unacknowledged"] = (row["terminal_id"] as? NSNumber)
                .map { bridge.proxy.unacknowledgedKeyDeliveries(terminalID: $0.uint64Value) as Any } ?? NSNull()
            return row
        }
    }

    func saRows() -> [[String: Any]] {
        let store = bridge.proxy.store, now = monotonicSeconds()
        return store.children.values.sorted { $0.createdAt < $1.createdAt }.map { sa in
            var row: [String: Any] = [
                "terminal": sa.terminal.description, "peer": sa.peer.description, "connection": sa.connection, "child": sa.childName,
                "spi_in": sa.inbound.spi.description, "spi_out": sa.outbound.spi.description,
                "age_seconds": Int(now - sa.createdAt), "cipher_suite": sa.outbound.suite.name, "mode": sa.outbound.mode.rawValue,
                "udp_encapsulation": sa.outbound.encapsulation != nil,
                "local_selectors": sa.outbound.sourceSelectors.map(\.description),
                "remote_selectors": sa.outbound.destinationSelectors.map(\.description),
            ]
            row["expires_in_seconds"] = sa.hardLifetime.map { max(0, Int($0 - (now - sa.createdAt))) } ?? NSNull()
            row["rekey_in_seconds"] = bridge.proxy.engine.secondsUntilRekey(childInbound: sa.inbound.spi, now: now).map { Int($0.rounded(.up)) } ?? NSNull()
            // As the terminal last reported them (key-delivery STATUS): it alone sees both directions.
            for (direction, spi) in [("in", sa.inbound.spi), ("out", sa.outbound.spi)] {
                let usage = store.usage[spi]
                row["packets_\(direction)"] = usage.map { NSNumber(value: $0.packets) } ?? NSNull()
                row["octets_\(direction)"] = usage.map { NSNumber(value: $0.octets) } ?? NSNull()
            }
            let reported = [store.usage[sa.inbound.spi]?.reportedAt, store.usage[sa.outbound.spi]?.reportedAt].compactMap { $0 }.max()
            row["usage_reported_seconds_ago"] = reported.map { Int(now - $0) } ?? NSNull()
            return row
        }
    }

    /// The data-path counters, with the terminal-port switch's table when there is one.
    var dataPathCounters: [String: Int] {
        var counters = portCounters
        if let portSwitch {
            counters["switch_stations"] = portSwitch.stationCount
            counters["switch_stations_refused_table_full"] = portSwitch.refusedStations
        }
        return counters
    }

    func status() -> [String: Any] {
        ["uptime_seconds": Int(monotonicSeconds() - startedAt), "interfaces": ["internet": internet.name, "terminal": terminal.name, "terminal_ports": terminals.map(\.name)] as [String: Any],
         "data_path": dataPathCounters, "proxy": bridge.proxy.counters, "bridge": bridge.counters, "engine": bridge.proxy.engine.counters,
         "sas": bridge.proxy.store.children.count, "negotiating": bridge.proxy.hasNegotiationsInFlight]
    }
}
