import ESP
import IKEv2
import KeyDelivery
import Packets
import Proxy
import TerminalAgent

/// An Internet peer: the project's own IKEv2 engine as an ordinary endpoint, with user-space ESP, on
/// the Internet side of the proxy.
public final class PeerHost {
    public let address: IPAddress
    public let engine: IKEEngine
    var database = SecurityAssociationDatabase()
    var stack = HostStack()
    public private(set) var events: [SAEvent] = []
    public internal(set) var espReceived = 0
    public internal(set) var plaintextReceived = 0

    init(address: IPAddress, engine: IKEEngine) {
        self.address = address
        self.engine = engine
    }

    /// Installs the ESP SAs of a CHILD SA event (the peer runs its own ESP).
    func apply(_ event: SAEvent, now: Double) {
        events.append(event)
        guard let child = event.child else { return }
        switch event.kind {
        case .childEstablished, .childRekeyed:
            let (inbound, outbound) = SAHandover.parameters(for: event, child: child, lifetime: ESPLifetime())
            if let sa = try? InboundSecurityAssociation(inbound, createdAt: now) { database.install(inbound: sa) }
            if let sa = try? OutboundSecurityAssociation(outbound, createdAt: now) { database.install(outbound: sa) }
        case .childDeleted:
            database.remove(spi: child.spiInbound, direction: .inbound)
            database.remove(spi: child.spiOutbound, direction: .outbound)
        default: break
        }
    }
}

/// A terminal: the terminal agent's ESP engine and key-delivery end, plus a host that answers pings.
public final class TerminalHost {
    public let address: IPAddress
    public let entry: TerminalEntry
    public private(set) var agent: TerminalAgent
    var stack = HostStack()
    /// When the terminal last had an outbound SA installed (for time-to-keys figures).
    public internal(set) var keysInstalledAt: Double?

    init(entry: TerminalEntry) {
        address = entry.address
        self.entry = entry
        agent = TerminalAgent(
            channel: KeyDeliveryChannel(
                role: .terminal, terminalID: entry.terminalID,
                enrollmentKey: entry.enrollmentKey, epoch: 1), statusInterval: 0)
        agent.acquireInterval = 0.5
    }

    /// A restart: the terminal loses every SA it held (the proxy still has them stored). With a
    /// `statusInterval` the new agent reports its (empty) SA list at its first tick, as the real one does.
    public func restart(epoch: UInt64, statusInterval: Double = 0) {
        agent = TerminalAgent(
            channel: KeyDeliveryChannel(
                role: .terminal, terminalID: entry.terminalID,
                enrollmentKey: entry.enrollmentKey, epoch: epoch), statusInterval: statusInterval)
        agent.acquireInterval = 0.5
        keysInstalledAt = nil
    }

    public var echoRepliesReceived: Int { stack.received.filter(HostStack.isEchoReply).count }
    public var hasOutboundSA: Bool { !agent.database.outbound.isEmpty }
}

/// Peer, proxy and terminals on virtual links inside one process: a discrete-event network with a fixed
/// one-way latency per link, driven by a simulated clock. `ikeproxy demo` and the proxy tests run on it.
public final class VirtualNetwork {
    public private(set) var proxy: KeyExchangeProxy
    public private(set) var peer: PeerHost
    public private(set) var terminals: [IPAddress: TerminalHost] = [:]
    public let linkLatency: Double
    public private(set) var now: Double = 0
    let wallClockBase = 1_800_000_000.0
    var wallClock: Double { wallClockBase + now }
    /// The simulated clocks as the pure cores take them.
    public var clock: ClockReading { ClockReading(monotonic: now, wall: wallClock) }

    enum Node: Equatable {
        case peer
        case proxy(LinkSide)
        case terminal(IPAddress)
    }
    private var queue: [(time: Double, order: Int, node: Node, packet: [UInt8])] = []
    private var order = 0
    /// Every packet that crossed the Internet-side link, for checks that no plaintext leaked.
    public private(set) var internetLink: [[UInt8]] = []
    public private(set) var proxyDrops: [PacketDropReason] = []
    public var log: (String) -> Void = { _ in }
    /// The peer is gone (crashed, unplugged): what reaches it is lost and it sends nothing.
    public var peerIsDown = false
    /// Latency from the proxy to the terminals, when they are slower to reach than the peer (nil: `linkLatency`).
    public var terminalLinkLatency: Double?
    /// Told of each SA event of the peer's engine as it happens, before anything else moves.
    public var onPeerEvent: (SAEvent) -> Void = { _ in }
    /// Plays the OCSP responders the proxy asks about a peer's certificates (nil: nobody answers, so the
    /// engine's timeout decides).
    public var revocationResponder: ((RevocationCheckRequest) -> RevocationStatus)?
    /// Every check the proxy asked for, in order.
    public private(set) var revocationRequests: [RevocationCheckRequest] = []

    public init(proxy: KeyExchangeProxy, peer: IKEEngine, peerAddress: IPAddress, terminals: [TerminalEntry], linkLatency: Double = 0.0005) {
        self.proxy = proxy
        self.peer = PeerHost(address: peerAddress, engine: peer)
        self.linkLatency = linkLatency
        for entry in terminals { self.terminals[entry.address] = TerminalHost(entry: entry) }
    }

    /// Adds a host on the terminal side that the proxy does not know.
    public func attach(_ entry: TerminalEntry) { terminals[entry.address] = TerminalHost(entry: entry) }

    /// The peer restarts with nothing of its state: `engine` takes its place (its first IKE SA with each terminal
    /// carries INITIAL_CONTACT).
    public func restartPeer(_ engine: IKEEngine) { peer = PeerHost(address: peer.address, engine: engine) }

    /// The proxy restarts with nothing of its state (no store): `replacement` takes its place on the links.
    public func restartProxy(_ replacement: KeyExchangeProxy) { proxy = replacement }

    private func schedule(_ node: Node, _ packet: [UInt8], delay: Double? = nil) {
        order += 1
        queue.append((now + (delay ?? linkLatency), order, node, packet))
    }

    // MARK: what the hosts do

    /// The peer starts IKE with a connection of its engine.
    public func peerInitiates(connection: String) {
        peerActions(peer.engine.initiate(connection: connection, now: now))
    }

    /// The peer deletes one of its IKE SAs (the newest of the connection without `spiInitiator`).
    public func peerDeletesIKE(connection: String, spiInitiator: IKESPI? = nil) {
        peerActions(peer.engine.deleteIKE(connection: connection, spiInitiator: spiInitiator, now: now))
    }

    /// Puts a packet the proxy produced outside `run` on its way (tests that drive the proxy directly).
    public func inject(_ side: LinkSide, _ packet: [UInt8]) { proxyActions([.send(side, packet)], received: packet) }

    /// What the proxy decided outside a received packet (an administrator's command, a reload) put on the
    /// links, as the daemon sends it; then the network runs.
    public func perform(_ actions: [ProxyAction]) {
        proxyActions(actions, received: [])
        run()
    }

    /// The peer rekeys the CHILD SA of one of its connections.
    public func peerInitiatesRekey(connection: String) {
        peerActions(peer.engine.rekeyChild(connection: connection, spi: nil, now: now))
    }

    /// The peer rekeys the IKE SA of one of its connections.
    public func peerInitiatesIKERekey(connection: String) {
        peerActions(peer.engine.rekeyIKE(connection: connection, now: now))
    }

    /// The peer sends an IP packet: protected when it has an SA for it, in the clear otherwise.
    public func peerSends(_ packet: [UInt8]) {
        if let sa = peer.database.outboundSA(for: packet), let esp = try? sa.encapsulate(packet, now: now) {
            sendFromPeer(esp.bytes)
        } else {
            sendFromPeer(packet)
        }
    }

    private func sendFromPeer(_ packet: [UInt8]) {
        internetLink.append(packet)
        schedule(.proxy(.internet), packet)
    }

    /// A terminal's host sends an IP packet (it goes through the terminal agent first).
    public func terminalSends(_ address: IPAddress, _ packet: [UInt8]) {
        guard let terminal = terminals[address] else { return }
        terminalActions(terminal, terminal.agent.outbound(packet, at: clock))
    }

    private func peerActions(_ actions: [EngineAction]) {
        for action in actions {
            switch action {
            case .send(let d):
                sendFromPeer(
                    IPHeaderBuilder.udpPacket(
                        source: d.source.address.bytes, destination: d.destination.address.bytes,
                        sourcePort: d.source.port, destinationPort: d.destination.port, payload: d.payload))
            case .event(let event):
                onPeerEvent(event)
                peer.apply(event, now: now)
            case .drop, .log, .checkRevocation, .initialContact: break
            }
        }
    }

    private func terminalActions(_ terminal: TerminalHost, _ actions: [TerminalAction]) {
        for action in actions {
            switch action {
            case .sendEncapsulated(let payload, let to, let port, let fromPort):
                schedule(
                    .proxy(.terminal),
                    IPHeaderBuilder.udpPacket(
                        source: terminal.address.bytes, destination: to.bytes,
                        sourcePort: fromPort, destinationPort: port, payload: payload))
            case .sendRaw(let packet, _): schedule(.proxy(.terminal), packet)
            case .sendKeyDelivery(let datagram):
                let proxySource = terminal.address.isIPv6 ? proxy.settings.keyDeliverySourceIPv6 : proxy.settings.keyDeliverySourceIPv4
                schedule(
                    .proxy(.terminal),
                    IPHeaderBuilder.udpPacket(
                        source: terminal.address.bytes, destination: proxySource.bytes,
                        sourcePort: terminal.entry.keyDeliveryPort,
                        destinationPort: proxy.settings.keyDeliveryPort, payload: datagram))
            case .deliver(let packet):
                if let reply = terminal.stack.receive(packet) { terminalSends(terminal.address, reply) }
            case .log(let text): log("  terminal \(terminal.address): \(text)")
            }
        }
    }

    /// Carries out what the proxy decided about `received` (the packet it was given, for `.forward`).
    private func proxyActions(_ actions: [ProxyAction], received: [UInt8]) {
        for action in actions {
            switch action {
            case .forward(let side): proxyActions([.send(side, received)], received: received)
            case .send(.internet, let packet): sendFromProxyToInternet(packet)
            case .send(.terminal, let packet):
                guard let view = try? IPPacketView(packet), let destination = IPAddress(bytes: view.destination(in: packet)),
                    terminals[destination] != nil
                else { continue }
                schedule(.terminal(destination), packet, delay: terminalLinkLatency)
            case .drop(let reason): proxyDrops.append(reason)
            case .log(let text): log("  proxy: \(text)")
            case .event: break
            case .checkRevocation(let request):
                revocationRequests.append(request)
                if let answer = revocationResponder?(request) {
                    proxyActions(proxy.revocationChecked(request.id, answer, at: clock), received: received)
                }
            }
        }
    }

    private func sendFromProxyToInternet(_ packet: [UInt8]) {
        internetLink.append(packet)
        schedule(.peer, packet)
    }

    private func deliverToPeer(_ packet: [UInt8]) {
        guard !peerIsDown else { return }
        if let view = try? IPPacketView(packet), view.upperProtocol == IPProtocolNumber.esp {
            // ESP without UDP (no NAT between the ends and none forced).
            if case .success(let inner) = peer.database.decapsulate(packet[view.upperOffset..<view.totalLength]) {
                peer.espReceived += 1
                if let reply = peer.stack.receive(inner) { peerSends(reply) }
            }
            return
        }
        guard let view = try? IPPacketView(packet),
            view.upperProtocol == IPProtocolNumber.udp || view.upperProtocol == IPProtocolNumber.icmp
                || view.upperProtocol == IPProtocolNumber.tcp || view.upperProtocol == IPProtocolNumber.icmpv6,
            let source = IPAddress(bytes: view.source(in: packet))
        else { return }
        if view.upperProtocol == IPProtocolNumber.udp, let ports = view.ports(in: packet) {
            let payload = Array(packet[(view.upperOffset + 8)..<view.totalLength])
            if ports.destination == 500 || (ports.destination == 4500 && UDPEncapsulatedKind(payload: payload[...]) == .ike) {
                peerActions(
                    peer.engine.receive(payload, from: Endpoint(source, ports.source), to: Endpoint(peer.address, ports.destination), now: now))
                return
            }
            if ports.destination == 4500 {
                if case .success(let inner) = peer.database.decapsulate(payload[...]) {
                    peer.espReceived += 1
                    if let reply = peer.stack.receive(inner) { peerSends(reply) }
                }
                return
            }
        }
        peer.plaintextReceived += 1
        if let reply = peer.stack.receive(packet) { peerSends(reply) }
    }

    private func deliverToTerminal(_ terminal: TerminalHost, _ packet: [UInt8]) {
        guard let view = try? IPPacketView(packet) else { return }
        if view.upperProtocol == IPProtocolNumber.esp {
            terminalActions(terminal, terminal.agent.inboundPlainESP(Array(packet[view.upperOffset..<view.totalLength])))
            return
        }
        if view.upperProtocol == IPProtocolNumber.udp, let ports = view.ports(in: packet) {
            let payload = Array(packet[(view.upperOffset + 8)..<view.totalLength])
            if ports.destination == terminal.entry.keyDeliveryPort {
                let installedBefore = terminal.agent.outboundInstalls
                let actions = terminal.agent.receiveKeyDelivery(payload, at: clock)
                // An outbound SA set is what the time-to-keys figures measure.
                if terminal.agent.outboundInstalls != installedBefore { terminal.markKeysInstalled(at: now) }
                terminalActions(terminal, actions)
                return
            }
            if ports.destination == 4500 {
                terminalActions(terminal, terminal.agent.inboundEncapsulated(payload))
                return
            }
        }
        if let reply = terminal.stack.receive(packet) { terminalSends(terminal.address, reply) }
    }

    // MARK: running

    /// Delivers packets and runs timers until nothing is in flight or `until` (simulated seconds) passes.
    public func run(for duration: Double = 5, tick: Double = 0.05) {
        let end = now + duration
        // Timers run every `tick` of simulated time, the first one a tick from now.
        var nextTick = now + tick
        while now <= end {
            if let index = queue.indices.min(by: { (queue[$0].time, queue[$0].order) < (queue[$1].time, queue[$1].order) }),
                queue[index].time <= nextTick
            {
                let event = queue.remove(at: index)
                now = max(now, event.time)
                switch event.node {
                case .peer: deliverToPeer(event.packet)
                case .proxy(let side):
                    proxyActions(proxy.receive(from: side, packet: event.packet, at: clock), received: event.packet)
                    // A proxy that batches IKE (`batchesIKE`): each packet is a batch of its own here.
                    proxyActions(proxy.answerHeldIKE(at: clock), received: event.packet)
                case .terminal(let address): if let terminal = terminals[address] { deliverToTerminal(terminal, event.packet) }
                }
                continue
            }
            if queue.isEmpty && !proxyBusy { return }
            now = nextTick
            if !peerIsDown { peerActions(peer.engine.tick(now: now)) }
            proxyActions(proxy.tick(at: clock), received: [])
            for terminal in terminals.values { terminalActions(terminal, terminal.agent.tick(at: clock)) }
            nextTick = now + tick
        }
    }

    /// Whether the proxy still waits for something (a negotiation or unacknowledged key delivery).
    private var proxyBusy: Bool { proxy.hasNegotiationsInFlight }

    /// Advances the simulated clock without traffic (lifetimes, rekeys).
    public func advance(by seconds: Double, tick: Double = 0.5) {
        let end = now + seconds
        while now < end {
            run(for: 0, tick: tick)
            now = min(end, now + tick)
            if !peerIsDown { peerActions(peer.engine.tick(now: now)) }
            proxyActions(proxy.tick(at: clock), received: [])
            for terminal in terminals.values { terminalActions(terminal, terminal.agent.tick(at: clock)) }
        }
        run(for: 1)
    }
}

extension TerminalHost {
    func markKeysInstalled(at time: Double) { keysInstalledAt = time }
}
