import Foundation
import IKEv2
import LinuxIO
import Management
import Packets
import Proxy
import Store

/// What survives a restart: the store opened (secrets sealed), saved SAs, hosts and stations restored, progress
/// saved every few seconds, and the token watched while it comes and goes.
extension DaemonRunner {
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

    static func openState(
        _ configuration: DaemonConfiguration, sealer tokenOrKeyFile: Sealer?, proxy: KeyExchangeProxy,
        log: (String) -> Void
    ) throws -> ProxyStateStore? {
        guard let (database, sealer) = try openDatabase(configuration, sealer: tokenOrKeyFile, log: log) else { return nil }
        return try prepareState(configuration, database: database, sealer: sealer, proxy: proxy, log: log)
    }

    /// The store opened and its sealer ready (a token's data key unwrapped), nothing written but that data key the
    /// first time. A daemon of a pair opens it at start and prepares it (`prepareState`) only when it becomes active.
    static func openDatabase(
        _ configuration: DaemonConfiguration, sealer tokenOrKeyFile: Sealer?, log: (String) -> Void
    ) throws -> (any StateStore, Sealer)? {
        guard let settings = configuration.store, var sealer = tokenOrKeyFile else { return nil }
        let database: any StateStore
        do {
            switch settings.backend {
            case .sqlite(let path): database = try StateDatabase(path: path)
            case .postgresql(var server):
                // A pair's active must go silent before its lease can pass: no write waits longer than the lease.
                if let ha = configuration.highAvailability { server.timeout = ha.timing.leaseDuration }
                database = try PostgreSQLStateStore(settings: server)
            }
        } catch {
            throw DaemonStartError(description: "store: cannot open the database \(settings.location): \(error)")
        }
        if let token = sealer as? TokenSealer {
            sealer = try Self.envelope(token, database: database, log: log)
        }
        if let ha = configuration.highAvailability {
            // Nothing more is written until this node holds the lease (a term no lease ever has).
            (database as? LeaseStore)?.fenceWrites(LeaseFence(holder: ha.node, fencing: -1))
        }
        return (database, sealer)
    }

    /// Writes the configuration file's tables (secrets sealed), takes the policy administrators saved, and restores
    /// the saved SAs into `proxy`.
    static func prepareState(
        _ configuration: DaemonConfiguration, database: any StateStore, sealer: Sealer, proxy: KeyExchangeProxy, log: (String) -> Void
    ) throws -> ProxyStateStore {
        guard let settings = configuration.store else { throw DaemonStartError(description: "store: none configured") }
        let wall = Date().timeIntervalSince1970
        do {
            let terminalRows = try terminalRows(of: configuration, sealer: sealer)
            let profiles = try configuration.profiles.map { profile in
                (
                    name: profile.name,
                    definition: "ike \(profile.ikeProposals.count) proposal(s), esp \(profile.espProposals.count), \(profile.mode.rawValue)",
                    sealedPreSharedKey: try sealer.seal(profile.preSharedKey.bytes, context: .profilePreSharedKey(profile: profile.name))
                )
            }
            try database.replaceConfiguration(
                terminals: terminalRows, profiles: profiles,
                rules: configuration.policy.rules.map(Self.json(of:)), now: wall)
            if let source = try database.meta("policy_source") {
                let texts = try database.policyRules()
                let rules = try texts.enumerated().map { index, text in
                    try DaemonConfiguration.parseRule(
                        try JSONDecoder().decode(DaemonConfiguration.RuleText.self, from: Data(text.utf8)),
                        at: "saved policy rule \(index)", profiles: Set(configuration.profiles.map(\.name)))
                }
                let defaultAction: PolicyAction =
                    switch try database.meta("policy_default") {
                    case "discard": .discard
                    case "bypass": .bypass
                    default: configuration.policy.defaultAction
                    }
                proxy.policy = PolicyTable(rules: rules, defaultAction: defaultAction)
                log(
                    "policy: \(rules.count) rules from the database, as changed over the management API (\(source)); the configuration file's rules are not used"
                )
            }
        } catch {
            throw DaemonStartError(description: "store: cannot write the configuration tables: \(error)")
        }
        let store = ProxyStateStore(database: database, sealer: sealer)
        let described = (try? database.describe()).map { "schema version \($0.version), journal \($0.journalMode)" } ?? ""
        log("state in \(settings.location) (\(described)), secrets sealed by \(sealer.name)")
        for line in store.restore(into: proxy, at: ClockReading(monotonic: monotonicSeconds(), wall: wall)) { log(line) }
        return store
    }

    /// The token wraps a data key kept in the database; the boxes of the store are sealed with it, so the
    /// token works at start and not for every SA change (EnvelopeSealer).
    static func envelope(_ token: TokenSealer, database: any StateStore, log: (String) -> Void) throws -> EnvelopeSealer {
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
    static func restoreHosts(_ database: any StateStore, into bridge: EthernetBridge, log: (String) -> Void) {
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
            log("cannot read discovered hosts from \(database.location): \(error)")
        }
    }

    /// The link addresses the proxy needs after a restart: of its terminals and of both ends of its established
    /// IKE SAs.
    func neededStations() -> [IPAddress: Station] {
        var needed: [IPAddress: Station] = [:]
        for address in bridge.proxy.registry.entries.keys { needed[address] = bridge.stations.station(for: address) }
        for address in bridge.proxy.engines.establishedAddresses { needed[address] = bridge.stations.station(for: address) }
        return needed
    }

    static func row(_ address: IPAddress, _ station: Station) -> StateDatabase.StationRow {
        StateDatabase.StationRow(
            address: address.description, mac: station.mac.description, vlanIDs: station.vlanIDs,
            side: station.side == .internet ? "internet" : "terminal")
    }

    /// Saves the link addresses the proxy needs when they changed (an SA made or gone, a station moved): the
    /// change only.
    func saveStations() {
        guard let state else { return }
        let needed = neededStations()
        guard needed != savedStations else { return }
        let changed = needed.filter { savedStations[$0.key] != $0.value }.map { Self.row($0.key, $0.value) }
        let removed = savedStations.keys.filter { needed[$0] == nil }.map(\.description)
        do {
            try state.database.saveStations(changed: changed, removed: removed)
            savedStations = needed
        } catch {
            log("saving link addresses failed: \(error)")
        }
    }

    static func restoreStations(_ database: any StateStore, into bridge: EthernetBridge, log: (String) -> Void) -> [IPAddress: Station] {
        do {
            let rows = try database.stations()
            var restored: [IPAddress: Station] = [:]
            for row in rows {
                guard let address = IPAddress(row.address), let mac = MACAddress(text: row.mac) else { continue }
                let station = Station(mac: mac, vlanIDs: row.vlanIDs, side: row.side == "internet" ? .internet : .terminal)
                bridge.restore(station: station, for: address)
                restored[address] = station
            }
            if !rows.isEmpty { log("restored the link addresses of \(rows.count) peer(s) and terminal(s)") }
            return restored
        } catch {
            log("cannot read link addresses from \(database.location): \(error)")
            return [:]
        }
    }

    /// Saves the hosts discovery knows when it learnt something new.
    func saveHosts() {
        guard let state, discoveryChanged else { return }
        discoveryChanged = false
        let wall = Date().timeIntervalSince1970
        let now = monotonicSeconds()
        let rows = bridge.discovery.hosts.values.map { host in
            StateDatabase.HostRow(
                mac: host.mac.description, ipv4: host.ipv4.map(\.description).sorted(), ipv6: host.ipv6.map(\.description).sorted(),
                learntFrom: host.learntFrom.sorted(), lastSeen: wall - (now - host.lastSeen))
        }
        do { try state.database.saveHosts(rows) } catch { log("saving discovered hosts failed: \(error)") }
    }

    /// Saves what the last frames or timers changed, before the frames they produced go out.
    func synchronizeState(now: Double) {
        saveHosts()
        guard let state, ikeActivity else { return }
        ikeActivity = false
        let started = monotonicSeconds()
        for line in state.synchronize(engines: bridge.proxy.engines, at: ClockReading(monotonic: now, wall: Date().timeIntervalSince1970)) {
            log(line)
        }
        let microseconds = Int((monotonicSeconds() - started) * 1_000_000)
        storeWrites.count += 1
        storeWrites.microseconds += microseconds
        storeWrites.longest = max(storeWrites.longest, microseconds)
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
    func sealerPresent(_ present: Bool, state: ProxyStateStore) {
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
}
