import ESP
import IKEv2
import KeyDelivery
import Packets

/// What the terminal agent asks its I/O layer to do.
public enum TerminalAction: Equatable, Sendable {
    /// Send an ESP packet in UDP (RFC 3948) from our port to the peer.
    case sendEncapsulated(payload: [UInt8], to: IPAddress, port: UInt16, fromPort: UInt16)
    /// Send a complete IP packet as it is (plain ESP, or a packet of a flow without an SA).
    case sendRaw(packet: [UInt8], destination: IPAddress)
    /// Deliver a decrypted packet to the host through the TUN device.
    case deliver([UInt8])
    /// Send a key-delivery datagram to the proxy.
    case sendKeyDelivery([UInt8])
    case log(String)
}

/// The terminal side of IKEProxy, pure: it holds the SAs the proxy set (through the key-delivery
/// channel), protects and unprotects packets with them, watches their lifetimes and tells the proxy
/// when a flow needs an SA (ACQUIRE) or an SA has expired (EXPIRE). Sockets and TUN live in the runner.
/// With a `kernel`, the SAs go into the terminal's kernel instead, which does the ESP, the lifetimes
/// and the counting; the agent then only relays between the proxy and the kernel.
public final class TerminalAgent {
    public private(set) var database = SecurityAssociationDatabase()
    public let kernel: KernelESP?
    public let channel: KeyDeliveryChannel
    private var createdAt: [String: Double] = [:]
    /// The order of the message that set each SA, by direction and SPI.
    private var setBy: [String: KeyDeliveryOrder] = [:]
    private var expiredSoft: Set<String> = []
    private var lastAcquire: [String: Double] = [:]
    /// Kernel backend: where each outbound SA in UDP sends, for the NAT keepalives the kernel does not send.
    private var kernelEncapsulated: [String: (peer: IPAddress, encapsulation: UDPEncapsulation)] = [:]
    public private(set) var counters: [String: UInt64] = [:]
    /// A host on the link that floods forged or replayed datagrams gets neither a log line for each (they are
    /// folded, one a second for each reason) nor an acknowledgement for each replay (ten a second at most: the
    /// proxy retransmits a message about once a second).
    private var rejectionLog: [String: LogSampler] = [:]
    private var duplicateAnswers = TokenBucket(rate: 10)
    /// Outbound SAs installed so far (each set of keys the proxy delivered for sending).
    public private(set) var outboundInstalls = 0
    public var acquireInterval: Double = 2
    public var statusInterval: Double
    /// Nil until the first STATUS, which goes at the first tick whatever `statusInterval` (0: no periodic
    /// ones): after a restart it tells the proxy at once that this terminal holds no SA, so the proxy sets
    /// the stored ones again.
    private var lastStatus: Double?

    public init(channel: KeyDeliveryChannel, statusInterval: Double = 30, kernel: KernelESP? = nil) {
        self.channel = channel
        self.statusInterval = statusInterval
        self.kernel = kernel
    }

    private func key(_ spi: ChildSPI, _ direction: ESPDirection) -> String { "\(direction.rawValue)/\(spi)" }

    /// Removes an SA and what the agent kept about it; whether it was there.
    @discardableResult
    private func remove(_ spi: ChildSPI, _ direction: ESPDirection) -> Bool {
        let name = key(spi, direction)
        createdAt[name] = nil
        setBy[name] = nil
        expiredSoft.remove(name)
        kernelEncapsulated[name] = nil
        if let kernel { return kernel.remove(spi: spi, direction: direction) }
        return database.remove(spi: spi, direction: direction)
    }

    /// The SAs held, wherever they are.
    var held: [(spi: ChildSPI, direction: ESPDirection)] {
        if let kernel { return kernel.held }
        return database.inbound.keys.map { ($0, ESPDirection.inbound) } + database.outbound.map { ($0.parameters.spi, ESPDirection.outbound) }
    }
    private func count(_ counter: TerminalAgentCounter) { counters[counter.name, default: 0] += 1 }

    /// Whether the last key-delivery datagram was authentic (answers then go to where it came from).
    public private(set) var lastKeyDeliveryWasAuthentic = false

    /// A datagram that arrived on the key-delivery port.
    public func receiveKeyDelivery(_ datagram: [UInt8], at time: ClockReading) -> [TerminalAction] {
        let receipt = channel.receive(datagram, at: time)
        if case .rejected = receipt { lastKeyDeliveryWasAuthentic = false } else { lastKeyDeliveryWasAuthentic = true }
        switch receipt {
        case .rejected(let reason):
            count(.keyDeliveryRejected(reason))
            return rejectionLog[reason.rawValue, default: LogSampler()].line(
                "key delivery: rejected a message (\(reason.rawValue))", now: time.monotonic
            )
            .map { [.log($0)] } ?? []
        case .duplicate(let acknowledgement):
            count(.keyDeliveryDuplicates)
            guard duplicateAnswers.allow(now: time.monotonic) else {
                count(.keyDeliveryDuplicatesUnanswered)
                return []
            }
            return [.sendKeyDelivery(acknowledgement)]
                + (rejectionLog["duplicate", default: LogSampler()].line(
                    "key delivery: duplicate message acknowledged again, not applied twice", now: time.monotonic
                )
                .map { [.log($0)] } ?? [])
        case .acknowledged(let message):
            return message.map { [.log("key delivery: proxy acknowledged \($0.kind)")] } ?? []
        case .message(let message, let acknowledgement):
            var actions = apply(message, order: channel.lastMessageOrder, now: time.monotonic)
            actions.insert(.sendKeyDelivery(acknowledgement), at: 0)
            return actions
        }
    }

    /// Applies one message from the proxy. A FLUSH or DELETE sent before an SA was (re)set is stale for that SA:
    /// it arrived late (a retransmission overtaken by newer messages) and leaves it alone.
    private func apply(_ message: KeyDeliveryMessage, order: KeyDeliveryOrder, now: Double) -> [TerminalAction] {
        switch message {
        case .addSA(let sa):
            do {
                switch (sa.direction, kernel) {
                case (_, let kernel?):
                    try kernel.install(sa)
                    if sa.direction == .outbound {
                        outboundInstalls += 1
                        if let encapsulation = sa.encapsulation {
                            kernelEncapsulated[key(sa.spi, sa.direction)] = (sa.tunnelDestination, encapsulation)
                        }
                    }
                case (.inbound, nil): database.install(inbound: try InboundSecurityAssociation(sa, createdAt: now))
                case (.outbound, nil):
                    database.install(outbound: try OutboundSecurityAssociation(sa, createdAt: now))
                    outboundInstalls += 1
                }
            } catch {
                count(.saInstallFailed)
                return [.log("key delivery: cannot install SA \(sa.spi): \(error)")]
            }
            createdAt[key(sa.spi, sa.direction)] = now
            setBy[key(sa.spi, sa.direction)] = order
            count(.saAdded)
            return [
                .log(
                    "installed \(sa.direction.rawValue) SA \(sa.spi) \(sa.suite.name) \(sa.mode.rawValue) "
                        + "\(sa.tunnelSource) -> \(sa.tunnelDestination)\(sa.encapsulation.map { " udp \($0.sourcePort)->\($0.destinationPort)" } ?? "") "
                        + "selectors [\(Self.listed(sa.sourceSelectors))] -> [\(Self.listed(sa.destinationSelectors))]")
            ]
        case .deleteSA(let spi, let direction):
            if let set = setBy[key(spi, direction)], order < set {
                count(.staleDeleteIgnored)
                return [.log("delete of \(direction.rawValue) SA \(spi) ignored: sent before the SA was set again")]
            }
            let existed = remove(spi, direction)
            count(.saDeleted)
            return [.log(existed ? "deleted \(direction.rawValue) SA \(spi)" : "delete for unknown \(direction.rawValue) SA \(spi) (already gone)")]
        case .flush:
            // Only what was set before the FLUSH was sent goes.
            let held = self.held
            let newer = held.filter { spi, direction in setBy[key(spi, direction)].map { order < $0 } ?? false }
            let older = held.filter { spi, direction in !(setBy[key(spi, direction)].map { order < $0 } ?? false) }
            older.forEach { remove($0.0, $0.1) }
            guard !newer.isEmpty else { return [.log("flushed all SAs")] }
            count(.staleFlushLimited)
            return [.log("flushed \(older.count) SA(s); kept \(newer.count) set after the FLUSH was sent (it arrived late)")]
        case .acknowledge, .acquire, .expire, .status:
            count(.keyDeliveryUnexpected)
            return [.log("key delivery: ignoring \(message.kind) from the proxy")]
        }
    }

    /// An IP packet the host routed into the TUN device.
    public func outbound(_ packet: [UInt8], at time: ClockReading) -> [TerminalAction] {
        guard let view = try? IPPacketView(packet) else {
            count(.tunMalformed)
            return []
        }
        if let sa = database.outboundSA(for: packet, view: view) {
            do {
                let esp = try sa.encapsulate(packet, now: time.monotonic)
                let destination = sa.parameters.tunnelDestination
                if let encapsulation = sa.parameters.encapsulation {
                    return [
                        .sendEncapsulated(
                            payload: Array(esp.espBytes), to: destination, port: encapsulation.destinationPort,
                            fromPort: encapsulation.sourcePort)
                    ]
                }
                return [.sendRaw(packet: esp.bytes, destination: destination)]
            } catch {
                database.countDrop(error)
                return [.log("outbound packet dropped: \(error.rawValue) (SA \(sa.parameters.spi))")]
            }
        }
        // No SA: pass the packet on unchanged (the proxy judges it) and ask for one.
        var actions: [TerminalAction] = []
        guard let source = IPAddress(bytes: view.source(in: packet)), let destination = IPAddress(bytes: view.destination(in: packet)) else {
            return []
        }
        if Self.isLinkScope(source) || Self.isLinkScope(destination) {
            // Neighbour discovery and the like that the host sends into the TUN device: nothing to protect or forward.
            count(.tunLinkScopeIgnored)
            return []
        }
        count(.passedWithoutSA)
        actions.append(.sendRaw(packet: packet, destination: destination))
        let ports = view.ports(in: packet)
        let flow = FlowDescription(
            source: source, destination: destination, ipProtocol: view.upperProtocol,
            sourcePort: ports?.source ?? 0, destinationPort: ports?.destination ?? 0)
        return actions + acquire(flow, at: time, note: "passed on unchanged")
    }

    /// ACQUIRE for a flow with no SA, at most once per `acquireInterval` for the same addresses and protocol.
    private func acquire(_ flow: FlowDescription, at time: ClockReading, note: String) -> [TerminalAction] {
        let flowKey = "\(flow.source)>\(flow.destination)/\(flow.ipProtocol)"
        guard time.monotonic - (lastAcquire[flowKey] ?? -.infinity) >= acquireInterval else { return [] }
        lastAcquire[flowKey] = time.monotonic
        count(.acquiresSent)
        return [.sendKeyDelivery(channel.send(.acquire(flow), at: time)), .log("no SA for \(flow): \(note), ACQUIRE sent to the proxy")]
    }

    /// The kernel's ACQUIRE: a packet of `flow` matched a policy with no SA (the kernel held it back).
    public func kernelAcquired(_ flow: FlowDescription, at time: ClockReading) -> [TerminalAction] {
        count(.kernelAcquires)
        return acquire(flow, at: time, note: "the kernel asked for one")
    }

    /// The kernel's EXPIRE: an SA reached its soft lifetime (the proxy rekeys it) or its hard one (the
    /// kernel removed it already; the agent forgets it too).
    public func kernelExpired(spi: ChildSPI, direction: ESPDirection, hard: Bool, at time: ClockReading) -> [TerminalAction] {
        let name = key(spi, direction)
        if hard {
            kernelEncapsulated[name] = nil
            createdAt[name] = nil
            setBy[name] = nil
            expiredSoft.remove(name)
        } else {
            guard expiredSoft.insert(name).inserted else { return [] }
        }
        return [
            .sendKeyDelivery(channel.send(.expire(spi: spi, direction: direction, hard: hard), at: time)),
            .log("\(direction.rawValue) SA \(spi) reached its \(hard ? "hard" : "soft") lifetime in the kernel; EXPIRE sent")
        ]
    }

    /// Selectors for a log line, as an array prints them, without the reflection `debugPrint` costs per SA.
    static func listed(_ selectors: [TrafficSelector]) -> String {
        selectors.map(\.description).joined(separator: ", ")
    }

    /// Link-local, multicast and broadcast addresses: traffic that never leaves the link.
    static func isLinkScope(_ address: IPAddress) -> Bool {
        let b = address.bytes
        if address.isIPv6 { return b[0] == 0xff || (b[0] == 0xfe && b[1] & 0xc0 == 0x80) || b.allSatisfy { $0 == 0 } }
        return b[0] >= 224 || (b[0] == 169 && b[1] == 254) || b.allSatisfy { $0 == 0 }
    }

    /// A UDP payload that arrived on the ESP-in-UDP port.
    public func inboundEncapsulated(_ payload: [UInt8]) -> [TerminalAction] {
        switch UDPEncapsulatedKind(payload: payload[...]) {
        case .keepalive:
            count(.natKeepalivesReceived)
            return []
        case .malformed:
            database.countDrop(.truncated)
            return []
        case .ike:
            count(.ikeOnTerminal)
            return [.log("dropped an IKE message on port 4500: IKE is the proxy's job, it should not reach the terminal")]
        case .esp: return inboundESP(payload[...])
        }
    }

    /// An ESP packet that came as IP protocol 50, without UDP (no NAT on the path and none forced).
    public func inboundPlainESP(_ esp: [UInt8]) -> [TerminalAction] {
        count(.plainESPReceived)
        return inboundESP(esp[...])
    }

    /// An ESP packet (starting at the SPI).
    public func inboundESP(_ esp: ArraySlice<UInt8>) -> [TerminalAction] {
        switch database.decapsulate(esp) {
        case .success(let packet): return [.deliver(packet)]
        case .failure(let reason):
            let total = database.drops[reason]
            // Log the first few of each reason, then every 1000th, so a flood does not flood the log.
            if total <= 5 || total % 1000 == 0 { return [.log("inbound ESP dropped: \(reason.rawValue) (\(total) so far)")] }
            return []
        }
    }

    /// Lifetimes, retransmissions and periodic status.
    public func tick(at time: ClockReading) -> [TerminalAction] {
        var actions: [TerminalAction] = []
        let (datagrams, abandoned) = channel.tick(at: time)
        actions += datagrams.map { .sendKeyDelivery($0) }
        for message in abandoned { actions.append(.log("key delivery: proxy never acknowledged \(message.kind); giving up")) }

        var states: [(ChildSPI, ESPDirection, LifetimeState)] = []
        for sa in database.inbound.values { states.append((sa.parameters.spi, .inbound, sa.lifetimeState(now: time.monotonic))) }
        for sa in database.outbound { states.append((sa.parameters.spi, .outbound, sa.lifetimeState(now: time.monotonic))) }
        for (spi, direction, state) in states {
            let name = key(spi, direction)
            switch state {
            case .valid: break
            case .soft:
                guard expiredSoft.insert(name).inserted else { continue }
                actions.append(.sendKeyDelivery(channel.send(.expire(spi: spi, direction: direction, hard: false), at: time)))
                actions.append(.log("\(direction.rawValue) SA \(spi) reached its soft lifetime; EXPIRE sent"))
            case .hard:
                remove(spi, direction)
                actions.append(.sendKeyDelivery(channel.send(.expire(spi: spi, direction: direction, hard: true), at: time)))
                actions.append(.log("\(direction.rawValue) SA \(spi) reached its hard lifetime; removed, EXPIRE sent"))
            }
        }
        if lastStatus.map({ statusInterval > 0 && time.monotonic - $0 >= statusInterval }) ?? true {
            lastStatus = time.monotonic
            actions.append(.sendKeyDelivery(channel.send(.status(statusEntries()), at: time)))
        }
        return actions
    }

    public func statusEntries() -> [SAStatus] {
        if let kernel { return kernel.counters() }
        return database.inbound.values.map {
            SAStatus(spi: $0.parameters.spi, direction: .inbound, packets: $0.counters.packets, bytes: $0.counters.bytes)
        }
            + database.outbound.map { SAStatus(spi: $0.parameters.spi, direction: .outbound, packets: $0.counters.packets, bytes: $0.counters.bytes) }
    }

    /// The distinct peers of UDP-encapsulated outbound SAs, for NAT keepalives: the agent's own SAs', or with the
    /// kernel backend (whose kernel sends no keepalives) those of the outbound SAs it set into the kernel.
    public var encapsulatedPeers: [(IPAddress, UInt16, UInt16)] {
        let entries: [(peer: IPAddress, encapsulation: UDPEncapsulation)] =
            kernel != nil
            ? kernelEncapsulated.values.sorted { "\($0.peer)" < "\($1.peer)" }
            : database.outbound.compactMap { sa in sa.parameters.encapsulation.map { (sa.parameters.tunnelDestination, $0) } }
        var seen = Set<String>()
        return entries.compactMap { entry in
            guard seen.insert("\(entry.peer)").inserted else { return nil }
            return (entry.peer, entry.encapsulation.destinationPort, entry.encapsulation.sourcePort)
        }
    }
}
