import Foundation
import IKEServices
import IKEv2
import LinuxIO
import Management
import Packets
import Proxy
import Store

/// Why the daemon could not start, in words an operator can act on.
public struct DaemonStartError: Error, CustomStringConvertible {
    public var description: String
}

/// `ikeproxy daemon`: the bump in the wire. Two AF_PACKET ports with no IP address, frames read and
/// written in batches, every frame judged by the Ethernet bridge (and so by the proxy's policy), timers
/// ticked, SA events printed as JSON lines, and a control socket answering `ikeproxy terminals`.
public final class DaemonRunner: LogWriting {
    /// As read at start; its terminal list as read at the last reload.
    var configuration: DaemonConfiguration
    /// Made anew when this daemon of a pair becomes active, from what the store holds.
    public internal(set) var bridge: EthernetBridge
    let internet: PacketPort
    /// The terminal-side ports; with more than one, `portSwitch` decides which a frame leaves by.
    let terminals: [PacketPort]
    var terminal: PacketPort { terminals[0] }
    var portSwitch: TerminalPortSwitch?
    var lastAging = 0.0
    let control: ControlSocket
    /// Where log lines go (`LogWriting`).
    public let writeLog: (LogLine) -> Void
    let emit: (String) -> Void
    /// Writes out the log lines and events `log` and `emit` held (LineWriter), at the end of each turn of the
    /// loop: a burst's lines in one `write` each instead of one per line (11 per negotiation before).
    let flushOutput: () -> Void
    let startedAt = monotonicSeconds()
    /// Data-path counters: frames in and out per port, refused and truncated frames.
    public internal(set) var portCounters: [String: Int] = [:]
    /// State on disk (nil: memory only) and whether its sealer was there at the last look.
    var state: ProxyStateStore?
    /// One daemon of a pair (`high_availability`): who acts, the thread that claims the lease, and the store and
    /// sealer a takeover prepares its state from. Nil for a daemon alone, which always acts.
    var leadership: Leadership?
    var leaseKeeper: LeaseKeeper?
    var pairStore: (database: any StateStore, sealer: Sealer)?
    var retryLeaseKeeperAt: Double?
    /// The standby's management requests, passed to the active through the database.
    var requestRelay: RequestRelay?
    /// Saves of SA changes to the store: how many, their total and longest time (the store-latency metrics).
    var storeWrites = (count: 0, microseconds: 0, longest: 0)
    /// The metrics' registry (swift-prometheus), brought up to the loop's counters at each scrape.
    let exposition = PrometheusExposition()
    var lastLeaseErrorLogged = -Double.infinity
    var sealerPresent = true
    var lastPresenceCheck = 0.0
    /// For a token: the child process that looks for it, so that the loop never waits on the token.
    var presenceProbe: TokenPresenceProbe?
    var lastProgressSave = 0.0
    /// The link addresses last saved (saveStations writes only a change).
    var savedStations: [IPAddress: Station] = [:]
    /// What the start decided to send before the loop runs (the Deletes of SAs no terminal is enrolled for).
    var startupFrames: [FrameAction] = []
    var ikeActivity = false
    /// Without a store: the audit entries of this run (the newest ones) and how many there were.
    var recentAudit: [(time: Double, who: String, action: String, detail: String)] = []
    var auditTotal = 0
    var discoveryChanged = false
    /// Octets each terminal sent and received over the last hour (the console's traffic chart, `GET /v1/traffic`).
    var traffic = TerminalTrafficHistory()
    /// The last failed negotiations, newest last (the console's overview, `GET /v1/status`).
    var recentFailures = RecentFailures()
    let mailbox = ManagementMailbox()
    /// Online revocation checks (OCSP) the engine asks for, run off the loop.
    let revocation: RevocationService
    var server: ManagementServer?

    /// The file the configuration came from, read again on a reload (nil: no reload).
    public var configurationPath: String?
    /// The token or key file that opens the configuration's sealed secrets, kept to open them again on a reload.
    var configurationSealer: Sealer?

    public init(
        configuration original: DaemonConfiguration, showKeys: Bool = false, log writeLog: @escaping (LogLine) -> Void,
        emit: @escaping (String) -> Void, flushOutput: @escaping () -> Void = {}
    ) throws {
        var configuration = original
        let sealer = try Self.makeSealer(configuration)
        if let sealer {
            do { try configuration.unsealSecrets { box, context in try sealer.unseal(box, context: context) } } catch {
                throw DaemonStartError(description: "\(error)")
            }
            for context in configuration.clearSecrets {
                writeLog(
                    "warning: \(context): its secret is in the clear in the configuration file; seal it with `ikeproxy seal` and use the *_sealed key"
                )
            }
        }
        self.configuration = configuration
        self.configurationSealer = sealer
        self.writeLog = writeLog
        self.emit = emit
        self.flushOutput = flushOutput
        for name in [configuration.internetInterface] + configuration.terminalInterfaces {
            // The proxy owns no address: keep the kernel from giving the ports an IPv6 link-local one.
            let sysctl = "/proc/sys/net/ipv6/conf/\(name)/disable_ipv6"
            if FileManager.default.fileExists(atPath: sysctl) { try? "1\n".write(toFile: sysctl, atomically: false, encoding: .utf8) }
            let held = interfaceAddresses(name)
            guard held.isEmpty else {
                throw DaemonStartError(
                    description: "interface '\(name)' holds the address(es) \(held.joined(separator: ", ")); "
                        + "a bridged port of the proxy must have none (ip address flush dev \(name))")
            }
        }
        do {
            let buffer = Int32(clamping: configuration.portReceiveBuffer)
            internet = try PacketPort(interface: configuration.internetInterface, receiveBuffer: buffer)
            terminals = try configuration.terminalInterfaces.map { try PacketPort(interface: $0, receiveBuffer: buffer) }
        } catch {
            throw DaemonStartError(description: "\(error)")
        }
        do { control = try ControlSocket(path: configuration.controlSocket) } catch {
            throw DaemonStartError(description: "control socket: \(error)")
        }
        revocation = RevocationService(ocspCacheLimit: configuration.engineSettings.ocspCacheLimit)
        for (id, credential) in configuration.terminalCredentials.sorted(by: { $0.key < $1.key }) {
            writeLog(
                "terminal \(id): certificate \(credential.chain[0].subject) (issued by \(credential.chain[0].issuer), valid until \(credential.chain[0].notValidAfter))"
            )
        }
        bridge = Self.makeBridge(configuration, terminalPortMAC: MACAddress(terminals[0].mac))
        let proxy = bridge.proxy
        self.showKeys = showKeys
        if let ha = configuration.highAvailability {
            // Standby until the lease says otherwise: the store is opened now, prepared and restored at takeover.
            pairStore = try Self.openDatabase(configuration, sealer: sealer, log: log)
            leadership = Leadership(node: ha.node, timing: ha.timing)
            log(
                "high availability: node \(ha.node), standby until it holds the lease (\(ha.timing.leaseDuration) s, claimed every \(ha.timing.claimInterval) s)"
            )
        } else {
            state = try Self.openState(configuration, sealer: sealer, proxy: proxy, log: log)
        }
        if let state {
            Self.restoreHosts(state.database, into: bridge, log: log)
            savedStations = Self.restoreStations(state.database, into: bridge, log: log)
            restoreApprovedTerminals(state)
            // Restored SAs of terminals removed before the restart (their deletion cut short) go now.
            let now = monotonicSeconds()
            let wall = Date().timeIntervalSince1970
            startupFrames = bridge.frames(for: proxy.deleteSAsOfUnenrolledTerminals(at: ClockReading(monotonic: now, wall: wall)))
        }
        if let management = configuration.management {
            // Log lines from the server's threads: the log function only writes whole lines to stderr.
            nonisolated(unsafe) let serverLog = writeLog
            let server = try ManagementServer(
                host: management.host, port: management.port, certificatePath: management.certificatePath,
                privateKeyPath: management.privateKeyPath, privateKeyPEM: management.privateKeyPEM,
                clientCAPath: management.clientCAPath, administrators: management.administrators,
                mailbox: mailbox, log: { line in serverLog(LogLine(line)) })
            try Self.wait { try await server.start() }
            self.server = server
            log(
                "management API on https://\(management.host.contains(":") ? "[\(management.host)]" : management.host):\(management.port) "
                    + "(\(management.administrators.count) administrator(s); bearer tokens kept as SHA-256 hashes"
                    + (management.clientCAPath.map { "; client certificates from the CA in \($0), pinned by SHA-256" } ?? "") + ")")
        }
        if state != nil || pairStore != nil, case .token(let module, let tokenLabel, let pin, let keyLabel)? = configuration.store?.sealing {
            presenceProbe = TokenPresenceProbe(
                executable: TokenPresenceProbe.currentExecutable, modulePath: module, tokenLabel: tokenLabel,
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
        let bridging: String =
            "bridging \(internet.name) (Internet side, MTU \(internet.mtu)) and "
            + terminals.map { "\($0.name) (terminal side, MTU \($0.mtu))" }.joined(separator: ", ")
            + (terminals.count > 1 ? " (switched between them by learnt MAC address)" : "") + ", "
            + "no IP address on either; \(proxy.policy.rules.count) policy rules, default \(proxy.policy.defaultAction); "
            + "\(Set(configuration.terminals.map(\.terminalID)).count + configuration.enrollments.count) terminals enrolled; "
            + "key delivery from \(configuration.proxySettings.keyDeliverySourceIPv4) port \(configuration.proxySettings.keyDeliveryPort); "
            + "control socket \(configuration.controlSocket)"
            + (configuration.workers > 1 ? "; IKE engines on \(configuration.workers) threads, each with the IKE SAs of its SPIs" : "")
        log(bridging)
    }

    let showKeys: Bool

    /// The proxy and its Ethernet bridge as the configuration makes them, holding nothing yet.
    static func makeBridge(_ configuration: DaemonConfiguration, terminalPortMAC: MACAddress) -> EthernetBridge {
        let proxy = KeyExchangeProxy(
            policy: configuration.policy,
            registry: TerminalRegistry(allowedPrefixes: configuration.terminalPrefixes, terminals: configuration.terminals),
            profiles: configuration.profiles, settings: configuration.proxySettings,
            engineSettings: configuration.engineSettings, engineCount: configuration.workers,
            epoch: UInt64(Date().timeIntervalSince1970 * 1000))
        // The IKE datagrams of a batch of frames are answered at its end, by the engines side by side.
        proxy.batchesIKE = configuration.workers > 1 ? EngineShards.runAtOnce : EngineShards.runInTurn
        proxy.terminalCredentials = configuration.terminalCredentials
        return EthernetBridge(
            proxy: proxy, terminalPortMAC: terminalPortMAC, discoveryPrefixes: configuration.terminalPrefixes,
            enrollments: configuration.enrollments)
    }

    public func run(shouldStop: () -> Bool, shouldReload: () -> Bool = { false }) {
        var lastTick = 0.0
        if !startupFrames.isEmpty {
            sendDecided(startupFrames, now: monotonicSeconds())
            startupFrames = []
        }
        let portDescriptors = [internet.descriptor] + terminals.map(\.descriptor)
        let descriptors = portDescriptors + [control.descriptor, mailbox.wakeDescriptor, revocation.wakeDescriptor]
        startLeaseKeeper()
        while !shouldStop() {
            let ready = waitReadable(descriptors + (leaseKeeper.map { [$0.wakeDescriptor] } ?? []), timeoutMilliseconds: 100)
            if shouldReload() { reloadCredentials() }
            let acting = applyLeadership(now: monotonicSeconds())
            if !acting {
                // A standby of a pair: silent ports, no timers; it answers its control socket and claims the lease.
                discardFrames()
                if ready.contains(control.descriptor) { control.serve(answer) }
                if ready.contains(mailbox.wakeDescriptor) { mailbox.drain(handle) }
                flushOutput()
                continue
            }
            // Drain both ports in turns, one batch each, until both are empty (bounded, so timers still run), and no
            // longer than this daemon of a pair may act.
            var rounds = 0
            var busy = portDescriptors.contains(where: ready.contains)
            while busy && rounds < 64 && !shouldStop() && (leadership?.acts(now: monotonicSeconds()) ?? true) {
                let a = pump(from: .internet)
                let b = terminals.indices.reduce(0) { $0 + pump(from: .terminal, port: $1) }
                busy = a + b > 0
                rounds += 1
            }
            if ready.contains(control.descriptor) { control.serve(answer) }
            if ready.contains(mailbox.wakeDescriptor) { mailbox.drain(handle) }
            if ready.contains(revocation.wakeDescriptor) { receiveRevocationAnswers() }
            let now = monotonicSeconds()
            if now - lastTick >= 0.1 {
                lastTick = now
                let actions = bridge.tick(at: ClockReading(monotonic: now, wall: Date().timeIntervalSince1970))
                if actions.contains(where: {
                    if case .send = $0 { return true }
                    if case .event = $0 { return true }
                    return false
                }) {
                    ikeActivity = true
                }
                synchronizeState(now: now)
                let timings = bridge.proxy.takeTimings()
                exposition.record(negotiations: timings.negotiations, keyDeliveryRoundTrips: timings.keyDeliveryRoundTrips)
                if leadership?.acts(now: monotonicSeconds()) ?? true {
                    perform(actions, receivedOn: nil)
                    stateHousekeeping(now: now)
                }
                traffic.record(now: now) {
                    let store = bridge.proxy.store
                    return store.children.values.map { sa in
                        TerminalTrafficHistory.Usage(
                            terminal: sa.terminal.description, spi: sa.inbound.spi.rawValue,
                            octetsIn: store.usage[sa.inbound.spi]?.octets ?? 0, octetsOut: store.usage[sa.outbound.spi]?.octets ?? 0)
                    }
                }
                if now - lastAging >= 10 {
                    portSwitch?.age(now: now)
                    lastAging = now
                }
            }
            // Before the next wait: nothing this turn logged waits longer than the turn.
            flushOutput()
        }
        defer { flushOutput() }
        if let state, leadership?.acts(now: monotonicSeconds()) ?? true {
            for line in state.saveProgress(proxy: bridge.proxy, counters: bridge.proxy.counters) { log(line) }
        }
        presenceProbe?.cancel()
        leaseKeeper?.stop()
        server?.stop()
        log(
            "stopping; \(render(counters: portCounters)); proxy: \(render(counters: bridge.proxy.counters)); bridge: \(render(counters: bridge.counters))"
        )
    }
}
