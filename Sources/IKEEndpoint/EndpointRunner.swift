import ESP
import Foundation
import IKEServices
import IKEv2
import KeyDelivery
import LinuxIO

/// The key-delivery channel to the terminal one connection negotiates for, and the deletes that wait
/// until the terminal has acknowledged the SAs replacing them (make-before-break).
final class DeliveryLink {
    let connection: String
    let target: KeyDeliveryTarget
    let setter: TerminalKeySetter
    var channel: KeyDeliveryChannel { setter.channel }
    let socket: UDPSocket
    /// A flood of forged or replayed datagrams on the terminal's link: one log line a second, replays
    /// acknowledged ten times a second at most.
    var rejectionLog: [String: LogSampler] = [:]
    var duplicateAnswers = TokenBucket(rate: 10)

    init(connection: String, target: KeyDeliveryTarget, transparent: Bool) throws {
        self.connection = connection
        self.target = target
        setter = TerminalKeySetter(
            channel: KeyDeliveryChannel(
                role: .proxy, terminalID: target.terminalID, enrollmentKey: target.enrollmentKey,
                epoch: UInt64(Date().timeIntervalSince1970 * 1000)))
        socket = try UDPSocket(address: target.source.bytes, port: target.sourcePort, transparent: transparent)
    }
}

/// Runs the engine as a plain IKEv2 endpoint: UDP 500 and 4500 on every configured local address,
/// a clock tick every 100 ms, commands from an optional control pipe, events as JSON lines on stdout.
///
/// Datagrams are read in batches (recvmmsg) into sockets with large receive buffers, and what the engine
/// answers to a batch goes out together (sendmmsg) once the batch is handled; initiations asked for at start
/// go out a batch at a time, with what has arrived read in between, so that a burst of our own requests
/// does not outrun the reading of their answers (issue 21). With `settings.workers` above 1 the engines run
/// on threads of their own, each holding the IKE SAs whose SPIs are its own (EngineGroup); this loop still
/// does all the I/O.
public final class EndpointRunner: LogWriting {
    /// One engine on this thread, or several on threads of their own (`settings.workers`).
    let engines: EngineGroup
    /// The connections as the file gives them (every engine holds the same).
    var connections: [ConnectionConfiguration]
    let showKeys: Bool
    var sockets: [UDPSocket] = []
    let socketSettings: EndpointSocketSettings
    /// Datagrams the engine asked to send since the last flush, in order, with the socket each leaves from.
    var outbox: [(socket: UDPSocket, datagram: OutgoingDatagram)] = []
    /// Datagrams read per recvmmsg call, and batches read from one socket before the others get a turn.
    static let receiveBatch = 64
    static let batchesPerTurn = 8
    /// Drop lines by kind of drop, sampled.
    var dropLog: [String: LogSampler] = [:]
    /// Initiations of a burst, paced (InitiationQueue).
    var initiations: InitiationQueue
    let control: ControlChannel?
    /// Where log lines go (`LogWriting`).
    public let writeLog: (LogLine) -> Void
    let emit: (String) -> Void
    /// The loop's wait for readable descriptors (epoll, kept between turns).
    let readiness = ReadinessWaiter()
    /// Steady traffic read once per window (`settings.receive_coalescing`).
    var coalescing: ReceiveCoalescing
    /// Log lines and events are written every 20 ms at most (OutputPacing).
    let outputPacing = OutputPacing(now: monotonicSeconds())
    var deliveries: [String: DeliveryLink] = [:]
    /// Online revocation checks (OCSP) the engine asks for, run off the loop.
    let revocation: RevocationService

    let configurationPath: String
    /// Whether the sockets bind addresses this host does not own (IP_TRANSPARENT), as the file says at start.
    let transparent: Bool

    /// Binds UDP (the connection's port and 4500) on each connection's local address not bound yet.
    func listen(for connections: [ConnectionConfiguration]) throws {
        for connection in connections {
            for port in Set([connection.localPort, 4500]).sorted()
            where !sockets.contains(where: { $0.localAddress == connection.localAddress.bytes && $0.localPort == port }) {
                let socket = try UDPSocket(address: connection.localAddress.bytes, port: port, transparent: transparent)
                let granted = socket.setReceiveBuffer(socketSettings.receiveBuffer)
                sockets.append(socket)
                log(
                    "listening on \(Endpoint(connection.localAddress, port))\(transparent ? " (transparent)" : "") "
                        + "with a receive buffer of \(granted / 2) octets")
                if granted / 2 < socketSettings.receiveBuffer {
                    log(
                        "the kernel gave the socket on \(Endpoint(connection.localAddress, port)) a receive buffer of \(granted / 2) octets, "
                            + "not the \(socketSettings.receiveBuffer) asked for (not root? raise net.core.rmem_max): a burst may be dropped")
                }
            }
        }
    }

    /// Writes out what `log` and `emit` held back (a LineWriter's flush), every 20 ms at most (OutputPacing).
    let flushOutput: () -> Void
    /// `settings.maximum_reassembly_memory`, named beside the high-water mark at the end of the run.
    let reassemblyMemory: Int

    public init(
        configurationPath: String, showKeys: Bool, controlPath: String?,
        log: @escaping (LogLine) -> Void, emit: @escaping (String) -> Void, flushOutput: @escaping () -> Void = {}
    ) throws {
        self.flushOutput = flushOutput
        self.configurationPath = configurationPath
        let (connections, settings) = try EndpointConfigurationFile.load(path: configurationPath)
        socketSettings = try EndpointSocketSettings.parse(FileManager.default.contents(atPath: configurationPath) ?? Data())
        engines = EngineGroup(connections: connections, settings: settings, count: socketSettings.workers)
        reassemblyMemory = settings.maximumReassemblyMemory
        self.connections = connections
        initiations = InitiationQueue(
            window: socketSettings.initiationWindow,
            expiry: settings.retransmitTimeout * Double(1 << min(settings.retransmitLimit + 1, 16)))
        revocation = RevocationService(ocspCacheLimit: settings.ocspCacheLimit)
        coalescing = ReceiveCoalescing(window: socketSettings.receiveCoalescing)
        self.showKeys = showKeys
        let pacing = outputPacing
        self.writeLog = {
            pacing.noteHeld()
            log($0)
        }
        self.emit = {
            pacing.noteHeld()
            emit($0)
        }
        let (targets, transparent) = try KeyDeliveryTarget.load(data: FileManager.default.contents(atPath: configurationPath) ?? Data())
        self.transparent = transparent
        control = try controlPath.map { try ControlChannel(path: $0) }
        try listen(for: connections)
        if socketSettings.workers > 1 { log("IKE engines on \(socketSettings.workers) worker threads, each with the IKE SAs of its SPIs") }
        for (name, target) in targets {
            deliveries[name] = try DeliveryLink(connection: name, target: target, transparent: transparent)
            self.log(
                "connection \(name): CHILD SAs are handed to terminal \(target.terminalID) at \(target.address):\(target.port) "
                    + "(key delivery from \(target.source):\(target.sourcePort))")
        }
    }

    /// Hands `work` for a connection to the engines holding its IKE SAs, or to its own engine when none does
    /// (which then says so, as a single engine would).
    func submitToHolders(of connection: String, _ work: @escaping EngineGroup.Work) {
        guard engines.count > 1 else { return engines.submit(to: 0, work) }
        let holds = engines.query { $0.sessionSummaries.contains { $0.connection == connection } }
        let holding = holds.indices.filter { holds[$0] }
        for index in holding.isEmpty ? [engines.engine(forConnection: connection)] : holding { engines.submit(to: index, work) }
    }

    /// The IKE SAs of every engine.
    var sessionSummaries: [IKEEngine.SessionSummary] { engines.query { $0.sessionSummaries }.flatMap { $0 } }

    /// Handles one control command.
    func command(_ line: String) {
        let words = line.split(separator: " ").map(String.init)
        guard let verb = words.first else { return }
        let name = words.count > 1 ? words[1] : ""
        let spi = words.count > 2 ? UInt32(words[2], radix: 16).map(ChildSPI.init) : nil
        switch verb {
        case "initiate": initiations.add([name])
        case "rekey-child": submitToHolders(of: name) { $0.rekeyChild(connection: name, spi: spi, now: $1) }
        case "rekey-ike": submitToHolders(of: name) { $0.rekeyIKE(connection: name, now: $1) }
        case "delete-child": submitToHolders(of: name) { $0.deleteChild(connection: name, spi: spi, now: $1) }
        case "delete-ike": submitToHolders(of: name) { $0.deleteIKE(connection: name, now: $1) }
        case "liveness": submitToHolders(of: name) { $0.checkLiveness(connection: name, now: $1) }
        case "list":
            for s in sessionSummaries {
                log(
                    "IKE SA \(s.connection) \(s.spiInitiator)_\(s.spiResponder) \(s.established ? "ESTABLISHED" : "CONNECTING") \(s.local) <-> \(s.remote) children: "
                        + s.children.map { "\($0.name) \($0.inbound)/\($0.outbound)" }.joined(separator: ", "))
            }
        default: log("unknown control command '\(line)'")
        }
    }

    /// Carries out what the engines answered since the last call.
    func performCompleted() {
        for (index, actions) in engines.completed() { perform(actions, from: index) }
    }

    func perform(_ actions: [EngineAction], from engine: Int) {
        for action in actions {
            switch action {
            case .send(let datagram):
                guard
                    let socket = sockets.first(where: { $0.localAddress == datagram.source.address.bytes && $0.localPort == datagram.source.port })
                        ?? sockets.first(where: { $0.localAddress == datagram.source.address.bytes })
                else {
                    log("no socket for \(datagram.source)")
                    continue
                }
                outbox.append(
                    (socket, OutgoingDatagram(bytes: datagram.payload, address: datagram.destination.address.bytes, port: datagram.destination.port)))
            case .event(let event):
                if event.kind == .ikeEstablished || event.kind == .ikeFailed || event.kind == .ikeDeleted {
                    initiations.answered(event.connection)
                }
                emit(EventJSON.render(event, showKeys: showKeys))
                if let link = deliveries[event.connection] { handOver(event, over: link) }
            case .drop(let reason):
                // One line a second per kind of drop: a flood read at full speed (recvmmsg) would otherwise make
                // a line per datagram (the engine counts every one).
                if let line = dropLog[reason.key, default: LogSampler()].line("dropped datagram: \(reason)", now: monotonicSeconds()) {
                    log(line)
                }
            case .log(let text): log(text)
            case .checkRevocation(let request): revocation.start(request)
            case .initialContact(let match):
                // The other engines may hold stale IKE SAs of the peer too.
                for other in 0..<engines.count where other != engine {
                    engines.submit(to: other) { engine, _ in engine.forgetStaleSessions(match) }
                }
            }
        }
    }

    /// Starts the initiations the queue lets go this turn.
    func startInitiations(now: Double) {
        initiations.startTurn(now: now) { name in
            guard connections.contains(where: { $0.name == name }) else {
                log("initiate: no connection named '\(name)'")
                return false
            }
            engines.submit(to: engines.engine(forConnection: name)) { $0.initiate(connection: name, now: $1) }
            return true
        }
        performCompleted()
        flush()
    }

    /// Sends what the engine asked for since the last flush, a batch per socket (sendmmsg).
    func flush() {
        guard !outbox.isEmpty else { return }
        let pending = outbox
        outbox.removeAll(keepingCapacity: true)
        for socket in sockets {
            let datagrams = pending.filter { $0.socket === socket }.map(\.datagram)
            for (datagram, error) in socket.sendBatch(datagrams) {
                log("send to \(IPAddress(bytes: datagram.address).map { Endpoint($0, datagram.port).description } ?? "?") failed: \(error)")
            }
        }
    }

    /// Reads what waits on one socket, a batch at a time, handing each batch's answers to the kernel before
    /// reading the next; a bounded number of batches, so that the other sockets and the clock get their turn.
    /// Returns how many datagrams it read, and whether it stopped with more possibly waiting (a full batch).
    func receive(on socket: UDPSocket) -> (count: Int, batchFull: Bool) {
        guard let to = IPAddress(bytes: socket.localAddress) else { return (0, false) }
        var total = 0
        for _ in 0..<Self.batchesPerTurn {
            let batch = socket.receiveBatch(limit: Self.receiveBatch)
            guard !batch.isEmpty else { return (total, false) }
            total += batch.count
            let now = monotonicSeconds()
            let local = Endpoint(to, socket.localPort)
            let encapsulated = socket.localPort == 4500
            for datagram in batch {
                guard let from = IPAddress(bytes: datagram.address) else { continue }
                let bytes = datagram.bytes
                let remote = Endpoint(from, datagram.port)
                engines.submit(to: engines.engine(for: bytes, encapsulated: encapsulated)) { engine, _ in
                    engine.receive(bytes, from: remote, to: local, now: now)
                }
            }
            performCompleted()
            flush()
            guard batch.count == Self.receiveBatch, !engines.saturated else { return (total, batch.count == Self.receiveBatch) }
        }
        return (total, true)
    }

    // MARK: key delivery to the terminal

    func transmit(_ datagram: [UInt8], over link: DeliveryLink) {
        do { try link.socket.send(datagram, to: link.target.address.bytes, port: link.target.port) } catch {
            log("key delivery to terminal \(link.target.terminalID) failed: \(error)")
        }
    }

    func perform(_ output: TerminalKeySetter.Output, over link: DeliveryLink) {
        output.datagrams.forEach { transmit($0, over: link) }
        output.log.forEach(log)
    }

    /// Sends the SAs of a CHILD SA event to the terminal (make-before-break: TerminalKeySetter).
    func handOver(_ event: SAEvent, over link: DeliveryLink) {
        perform(
            link.setter.handle(
                event, lifetime: link.target.lifetime,
                at: .system()), over: link)
    }

    func receiveKeyDelivery(over link: DeliveryLink) {
        while let (bytes, _, _) = link.socket.receive() {
            let now = monotonicSeconds()
            switch link.channel.receive(bytes, at: ClockReading(monotonic: now, wall: Date().timeIntervalSince1970)) {
            case .rejected(let reason):
                if let line = link.rejectionLog[reason.rawValue, default: LogSampler()].line(
                    "key delivery: rejected a datagram for terminal \(link.target.terminalID): \(reason.rawValue)", now: now)
                {
                    log(line)
                }
            case .duplicate(let acknowledgement):
                if link.duplicateAnswers.allow(now: now) { transmit(acknowledgement, over: link) }
            case .acknowledged(let message):
                perform(link.setter.acknowledged(message, at: ClockReading(monotonic: now, wall: Date().timeIntervalSince1970)), over: link)
            case .message(let message, let acknowledgement):
                transmit(acknowledgement, over: link)
                handle(message, from: link, now: now)
            }
        }
    }

    func handle(_ message: KeyDeliveryMessage, from link: DeliveryLink, now: Double) {
        switch message {
        case .acquire(let flow):
            let flowSource = TrafficSelector(
                ipProtocol: flow.ipProtocol, startPort: flow.sourcePort, endPort: flow.sourcePort,
                startAddress: flow.source, endAddress: flow.source)
            let flowDestination = TrafficSelector(
                ipProtocol: flow.ipProtocol, startPort: flow.destinationPort, endPort: flow.destinationPort,
                startAddress: flow.destination, endAddress: flow.destination)
            let children = connections.first { $0.name == link.connection }?.children ?? []
            guard
                children.contains(where: { child in
                    child.localTrafficSelectors.contains { $0.intersection(flowSource) != nil }
                        && child.remoteTrafficSelectors.contains { $0.intersection(flowDestination) != nil }
                })
            else {
                log(
                    "key delivery: terminal \(link.target.terminalID) asks for an SA for \(flow), which no CHILD SA of '\(link.connection)' covers; ignored"
                )
                return
            }
            let up = sessionSummaries.contains { $0.connection == link.connection && $0.established }
            log("key delivery: terminal \(link.target.terminalID) asks for an SA for \(flow)\(up ? "; IKE SA already up" : "; initiating")")
            let name = link.connection
            if !up { engines.submit(to: engines.engine(forConnection: name)) { $0.initiate(connection: name, now: $1) } }
        case .expire(let spi, let direction, let hard):
            log("key delivery: terminal \(link.target.terminalID) reports \(hard ? "hard" : "soft") expiry of \(direction.rawValue) SA \(spi)")
            let inboundSPI = direction == .inbound ? spi : nil
            let name = link.connection
            submitToHolders(of: name) { engine, now in
                hard
                    ? engine.deleteChild(connection: name, spi: inboundSPI, now: now)
                    : engine.rekeyChild(connection: name, spi: inboundSPI, now: now)
            }
        case .status(let entries):
            log(
                "key delivery: terminal \(link.target.terminalID) status: "
                    + entries.map { "\($0.spi) \($0.direction.rawValue) \($0.packets) packets \($0.bytes) bytes" }.joined(separator: "; "))
        case .addSA, .deleteSA, .flush, .acknowledge:
            log("key delivery: ignoring \(message.kind) from terminal \(link.target.terminalID)")
        }
    }

    /// Runs until `shouldStop` returns true.
    /// Reads the configuration file again (SIGHUP): its connections, added, changed or removed, and their
    /// certificates, keys, CAs and CRLs (ConnectionReload); on any error the connections in use stay and the
    /// log says why. Terminal sections (key delivery) are read at start only.
    public func reloadConfiguration() {
        do {
            let (fresh, _) = try EndpointConfigurationFile.load(path: configurationPath)
            let plan = ConnectionReload.plan(fresh: fresh, current: connections)
            try listen(for: plan.set)
            // Every engine takes the change before any work handed to it later.
            engines.broadcast { engine, _ in
                plan.remove.forEach { engine.removeConnection(named: $0) }
                plan.set.forEach(engine.setConnection)
                return []
            }
            connections = fresh
            plan.lines.forEach(log)
            let (targets, _) = (try? KeyDeliveryTarget.load(data: FileManager.default.contents(atPath: configurationPath) ?? Data())) ?? ([:], false)
            for name in Set(targets.keys).symmetricDifference(deliveries.keys).sorted() {
                log("reload: connection '\(name)': its terminal section (key delivery) changed; it is read at start only")
            }
        } catch {
            log("reload: \(configurationPath) not taken, the connections in use stay: \(error)")
        }
    }

    public func run(initiate: [String], shouldStop: () -> Bool, shouldReload: () -> Bool = { false }) {
        initiations.add(initiate)
        let links = Array(deliveries.values)
        var lastTick = monotonicSeconds()
        while !shouldStop() {
            // A burst of initiations goes a batch per turn, with what arrived read in between.
            startInitiations(now: monotonicSeconds())
            // Made each round: a reload may have bound sockets for new connections.
            // While the engines' queues are full, datagrams wait in the sockets (the engines' wake-up ends the wait);
            // while steady traffic is held for the coalescing window, they wait there too (ReceiveCoalescing).
            let beforeWait = monotonicSeconds()
            let reading = !engines.saturated && coalescing.reads(now: beforeWait)
            let descriptors =
                (reading ? sockets.map(\.descriptor) : []) + (control.map { [$0.descriptor] } ?? []) + links.map(\.socket.descriptor)
                + [revocation.wakeDescriptor] + (engines.count > 1 ? [engines.wakeDescriptor] : [])
            let timeout = coalescing.sleep(
                now: beforeWait, otherwise: outputPacing.sleep(now: beforeWait, otherwise: initiations.ready ? 0 : 100))
            let ready = readiness.wait(descriptors, timeoutMilliseconds: timeout)
            if shouldReload() { reloadConfiguration() }
            if reading {
                var read = (count: 0, batchFull: false)
                for socket in sockets where ready.contains(socket.descriptor) {
                    let (count, batchFull) = receive(on: socket)
                    read = (read.count + count, read.batchFull || batchFull)
                }
                coalescing.read(read.count, batchFull: read.batchFull, now: monotonicSeconds())
            }
            if let control, ready.contains(control.descriptor) {
                for line in control.readLines() {
                    log("control: \(line)")
                    command(line)
                }
            }
            for link in links where ready.contains(link.socket.descriptor) { receiveKeyDelivery(over: link) }
            if ready.contains(revocation.wakeDescriptor) {
                for answer in revocation.drain() {
                    log("revocation check \(answer.id): \(RevocationService.describe(answer))")
                    let status = answer.status
                    engines.submit(to: IKEShard.owner(ofRevocationCheck: answer.id, count: engines.count)) {
                        $0.revocationChecked(answer.id, status, now: $1)
                    }
                }
            }
            let now = monotonicSeconds()
            if now - lastTick >= 0.1 {
                engines.broadcast { $0.tick(now: $1) }
                lastTick = now
                for link in links {
                    let (datagrams, abandoned) = link.channel.tick(at: ClockReading(monotonic: now, wall: Date().timeIntervalSince1970))
                    datagrams.forEach { transmit($0, over: link) }
                    for message in abandoned { log("key delivery: terminal \(link.target.terminalID) never acknowledged \(message.kind); giving up") }
                }
            }
            performCompleted()
            flush()
            if outputPacing.shouldWrite(now: monotonicSeconds()) { flushOutput() }
        }
        defer { flushOutput() }
        var counters: [String: Int] = [:]
        for each in engines.query({ $0.counters }) { counters.merge(each.mapValues { Int($0) }, uniquingKeysWith: +) }
        // Each engine's own high-water mark; their sum bounds what the process held at once.
        let reassemblyPeak = engines.query { $0.reassemblyOctetsPeak }.reduce(0, +)
        engines.stop()
        log("stopping; counters: \(counters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        log(
            "IKE sockets: \(coalescing.datagrams) datagrams read in \(coalescing.turns) turns, \(coalescing.heldTurns) of them after a hold "
                + "(receive_coalescing \(coalescing.window) s; holding turned off \(coalescing.quietPeriods) times for gathering too little)")
        log("fragments held for reassembly: at most \(reassemblyPeak) octets (maximum_reassembly_memory \(reassemblyMemory))")
    }
}
