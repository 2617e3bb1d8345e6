import IKEv2
import Packets
import Proxy
import ProxyDemo

/// Frames from either port into the proxy at the Ethernet layer (the demo's policy, terminals and peer
/// profile): discovery, ARP and neighbour answers, policy judgment, IKE in a terminal's name. Whatever
/// arrives, every frame the bridge builds parses with valid IP and transport checksums; no plaintext ICMP
/// of the protected terminal-to-peer flow and no key-delivery datagram is let through to the Internet side,
/// nor key delivery from the Internet to the terminals, nor the discarded telnet flow; nothing is ever
/// sent in the name of the unregistered terminal (IP or ARP), nor from the terminal port's own MAC to the
/// Internet side.
public final class EthernetBridgeFuzzTarget: FuzzTarget {
    public static let name = "ethernet-bridge"
    public init() {}

    static let portMAC = MACAddress([0x02, 0, 0, 0, 0, 0xfe])
    static let peerMAC = MACAddress([0x02, 0, 0, 0, 0, 0x01])
    static func terminalMAC(_ address: IPAddress) -> MACAddress { MACAddress([0x02, 0, 0, 0, 0, address.bytes.last ?? 0]) }

    static func makeBridge() -> EthernetBridge {
        let registry = TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: DemoScenario.terminals())
        let proxy = KeyExchangeProxy(
            policy: DemoScenario.policy(), registry: registry, profiles: [DemoScenario.profile()],
            random: SeededRandom(seed: 21))
        return EthernetBridge(proxy: proxy, terminalPortMAC: portMAC, discoveryPrefixes: [AddressPrefix("10.0.0.0/24")!])
    }

    /// Input: frames as (side octet: even Internet, odd terminal) + record, handed over 10 ms apart;
    /// then the bridge's timers run a minute on.
    public func run(_ input: [UInt8]) -> [String] { exchange(input).broken }

    /// Runs one input; also counts the key-delivery datagrams the bridge sent to terminals.
    public func exchange(_ input: [UInt8]) -> (broken: [String], keyDeliveries: Int) {
        let bridge = Self.makeBridge()
        var reader = FuzzInput(input)
        var broken: [String] = []
        var keyDeliveries = 0
        var now = 0.0
        while !reader.isAtEnd {
            let side: LinkSide = reader.byte() & 1 == 0 ? .internet : .terminal
            let frame = reader.record()
            let actions = bridge.receive(from: side, frame: frame, at: ClockReading(monotonic: now, wall: 1_800_000_000 + now))
            broken += Self.check(actions)
            if Self.speaksForStranger(actions) { broken.append("sent a frame in the unregistered terminal's name") }
            keyDeliveries += actions.filter(Self.isKeyDelivery).count
            if actions.contains(.forward(side.other)) { broken += Self.mustNotCross(frame, from: side) }
            now += 0.01
        }
        let later = bridge.tick(at: ClockReading(monotonic: now + 60, wall: 1_800_000_060 + now))
        broken += Self.check(later)
        if Self.speaksForStranger(later) { broken.append("sent a frame in the unregistered terminal's name") }
        return (broken, keyDeliveries)
    }

    static func isKeyDelivery(_ action: FrameAction) -> Bool {
        guard case .send(.terminal, let frame) = action, let (packet, view) = ipPacket(in: frame),
            view.upperProtocol == IPProtocolNumber.udp
        else { return false }
        return view.ports(in: packet)?.destination == WellKnownPort.keyDelivery
    }

    /// Frames the bridge built must parse, with correct checksums.
    static func check(_ actions: [FrameAction]) -> [String] {
        actions.compactMap { action in
            guard case .send(let side, let frame) = action else { return nil }
            guard let ethernet = try? EthernetFrameView(frame) else { return "built an unparsable frame for the \(side) side" }
            // The proxy has no address of its own on the Internet side, and no MAC there either: it speaks in terminals' names.
            if side == .internet && ethernet.source == portMAC { return "sent a frame from the terminal port's own MAC to the Internet side" }
            if ethernet.etherType == EtherType.arp {
                return (try? ARPPacket(frame[ethernet.payloadOffset...])) == nil ? "built an unparsable ARP packet for the \(side) side" : nil
            }
            guard ethernet.etherType == EtherType.ipv4 || ethernet.etherType == EtherType.ipv6 else { return nil }
            let packet = Array(frame[ethernet.payloadOffset...])
            guard let view = try? IPPacketView(packet) else { return "built an unparsable IP packet for the \(side) side" }
            guard TransportChecksum.isValid(packet: packet, view: view) else { return "built a packet with a bad checksum for the \(side) side" }
            return nil
        }
    }

    /// Why a frame the bridge passed on unchanged should not have crossed (empty when it may).
    static func mustNotCross(_ frame: [UInt8], from side: LinkSide) -> [String] {
        guard let ethernet = try? EthernetFrameView(frame), ethernet.etherType == EtherType.ipv4 || ethernet.etherType == EtherType.ipv6,
            let (packet, view) = ipPacket(in: frame), let source = IPAddress(bytes: view.source(in: packet)),
            let destination = IPAddress(bytes: view.destination(in: packet))
        else { return [] }
        let ports = view.ports(in: packet)
        var broken: [String] = []
        if view.upperProtocol == IPProtocolNumber.udp, ports?.destination == WellKnownPort.keyDelivery {
            broken.append("key delivery forwarded from the \(side) side")
        }
        if side == .terminal, isDemoTerminal(source), view.upperProtocol == IPProtocolNumber.icmp, destination == DemoScenario.peer {
            broken.append("plaintext ICMP of a protected flow forwarded to the Internet side")
        }
        if side == .terminal, isDemoTerminal(source), view.upperProtocol == IPProtocolNumber.tcp, ports?.destination == 23,
            !destination.isIPv6, AddressPrefix("198.51.100.0/24")!.contains(AddressKey(destination.bytes))
        {
            broken.append("the discarded telnet flow was forwarded")
        }
        return broken
    }

    /// Frames the bridge built in the unregistered terminal's name.
    static func speaksForStranger(_ actions: [FrameAction]) -> Bool {
        actions.contains { action in
            guard case .send(.internet, let frame) = action else { return false }
            if let ethernet = try? EthernetFrameView(frame), ethernet.etherType == EtherType.arp,
                let arp = try? ARPPacket(frame[ethernet.payloadOffset...])
            {
                return arp.senderIP == DemoScenario.stranger.bytes
            }
            guard let (packet, view) = ipPacket(in: frame) else { return false }
            return IPAddress(bytes: view.source(in: packet)) == DemoScenario.stranger
        }
    }

    /// The IP packet a frame carries, parsed; nil when the frame or the packet does not parse.
    static func ipPacket(in frame: [UInt8]) -> (packet: [UInt8], view: IPPacketView)? {
        guard let ethernet = try? EthernetFrameView(frame) else { return nil }
        let packet = Array(frame[ethernet.payloadOffset...])
        guard let view = try? IPPacketView(packet) else { return nil }
        return (packet, view)
    }

    static func isDemoTerminal(_ address: IPAddress) -> Bool {
        !address.isIPv6 && AddressPrefix("10.0.0.0/24")!.contains(AddressKey(address.bytes))
    }

    // MARK: seeds

    /// Recorded conversations: a terminal announcing itself by ARP, the peer negotiating with it through
    /// the bridge (the peer engine answers what the bridge sends out), a terminal starting a protected
    /// flow, bypass and discard flows, and an IPv6 neighbour solicitation.
    public func seeds() -> [[UInt8]] {
        let a = DemoScenario.terminalA
        let b = DemoScenario.terminalB
        var peerInitiated = Self.arp(from: a)
        peerInitiated += Self.converse(start: { peer, now in peer.initiate(connection: "to-\(a)", now: now) }, terminal: a)
        var terminalInitiated = Self.arp(from: b)
        terminalInitiated += Self.converse(start: { _, _ in [] }, terminal: b, firstFrame: Self.icmpEcho(from: b, to: DemoScenario.peer))
        let bypass =
            Self.arp(from: a)
            + Self.record(
                .terminal,
                Self.ipFrame(
                    from: a, to: DemoScenario.dnsServer, protocolNumber: IPProtocolNumber.udp,
                    transport: [0x30, 0x39, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]))
        let discard = Self.record(
            .terminal,
            Self.ipFrame(
                from: a, to: DemoScenario.telnetServer, protocolNumber: IPProtocolNumber.tcp,
                transport: [0x30, 0x39, 0, 23] + [UInt8](repeating: 0, count: 8) + [0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]))
        let stranger =
            Self.arp(from: DemoScenario.stranger)
            + Self.converse(
                start: { peer, now in peer.initiate(connection: "to-\(DemoScenario.stranger)", now: now) }, terminal: DemoScenario.stranger)
        let keyDeliveryFromInternet = Self.record(
            .internet,
            Self.ipFrame(
                from: DemoScenario.peer, to: a, protocolNumber: IPProtocolNumber.udp,
                transport: [0x25, 0x1c, 0x25, 0x1c, 0, 12, 0, 0, 1, 2, 3, 4]))
        return [peerInitiated, terminalInitiated, bypass, discard, stranger, keyDeliveryFromInternet, Self.peerAddressingThePort(a)]
    }

    /// The peer's IKE_SA_INIT for a terminal the bridge never saw, sent to the terminal port's MAC: it once taught
    /// the bridge that the terminal lived at that MAC, and the answer left from the port's own MAC.
    static func peerAddressingThePort(_ terminal: IPAddress) -> [UInt8] {
        let peer = DemoScenario.peerEngine(random: SeededRandom(seed: 22))
        var recorded: [UInt8] = []
        for case .send(let datagram) in peer.initiate(connection: "to-\(terminal)", now: 0) {
            let packet = IPHeaderBuilder.udpPacket(
                source: datagram.source.address.bytes, destination: datagram.destination.address.bytes,
                sourcePort: datagram.source.port, destinationPort: datagram.destination.port, payload: datagram.payload)
            recorded += record(.internet, EthernetFrameView.build(destination: portMAC, source: peerMAC, etherType: EtherType.ipv4, payload: packet))
        }
        return recorded
    }

    static func record(_ side: LinkSide, _ frame: [UInt8]) -> [UInt8] { [side == .internet ? 0 : 1] + FuzzInput.record(frame) }

    static func arp(from terminal: IPAddress) -> [UInt8] {
        let packet = ARPPacket(
            operation: .request, senderMAC: terminalMAC(terminal), senderIP: terminal.bytes,
            targetMAC: MACAddress([0, 0, 0, 0, 0, 0]), targetIP: DemoScenario.peer.bytes)
        return record(
            .terminal,
            EthernetFrameView.build(
                destination: .broadcast, source: terminalMAC(terminal), etherType: EtherType.arp,
                payload: packet.encode()))
    }

    static func ipFrame(from source: IPAddress, to destination: IPAddress, protocolNumber: UInt8, transport: [UInt8]) -> [UInt8] {
        var packet: [UInt8] = []
        IPHeaderBuilder.appendIP(
            to: &packet, source: source.bytes, destination: destination.bytes, protocolNumber: protocolNumber,
            payloadLength: transport.count)
        packet += transport
        if let view = try? IPPacketView(packet) { TransportChecksum.fill(packet: &packet, view: view) }
        let fromTerminal = isDemoTerminal(source)
        return EthernetFrameView.build(
            destination: fromTerminal ? peerMAC : terminalMAC(destination),
            source: fromTerminal ? terminalMAC(source) : peerMAC, etherType: EtherType.ipv4, payload: packet)
    }

    static func icmpEcho(from source: IPAddress, to destination: IPAddress) -> [UInt8] {
        ipFrame(from: source, to: destination, protocolNumber: IPProtocolNumber.icmp, transport: [8, 0, 0, 0, 0, 1, 0, 1] + Array("ping".utf8))
    }

    /// Runs the demo peer against a fresh bridge (with the same seeded randomness `run` uses) and records
    /// every frame the bridge received, so that replaying the record takes the same path.
    static func converse(start: (IKEEngine, Double) -> [EngineAction], terminal: IPAddress, firstFrame: [UInt8]? = nil) -> [UInt8] {
        let bridge = makeBridge()
        let peer = DemoScenario.peerEngine(random: SeededRandom(seed: 22))
        var recorded: [UInt8] = []
        var now = 0.0
        // The ARP the caller put first.
        _ = bridge.receive(from: .terminal, frame: Array(arp(from: terminal).dropFirst(3)), at: ClockReading(monotonic: now, wall: 1_800_000_000))
        now += 0.01
        var toBridge: [(LinkSide, [UInt8])] = firstFrame.map { [(.terminal, $0)] } ?? []
        func framesFor(_ actions: [EngineAction]) {
            for case .send(let datagram) in actions {
                let packet = IPHeaderBuilder.udpPacket(
                    source: datagram.source.address.bytes, destination: datagram.destination.address.bytes,
                    sourcePort: datagram.source.port, destinationPort: datagram.destination.port,
                    payload: datagram.payload)
                toBridge.append(
                    (
                        .internet,
                        EthernetFrameView.build(
                            destination: terminalMAC(datagram.destination.address), source: peerMAC,
                            etherType: EtherType.ipv4, payload: packet)
                    ))
            }
        }
        framesFor(start(peer, now))
        var rounds = 0
        while !toBridge.isEmpty, rounds < 32 {
            rounds += 1
            let (side, frame) = toBridge.removeFirst()
            recorded += record(side, frame)
            let actions = bridge.receive(from: side, frame: frame, at: ClockReading(monotonic: now, wall: 1_800_000_000 + now))
            now += 0.01
            for case .send(.internet, let out) in actions {
                guard let (packet, view) = ipPacket(in: out), view.upperProtocol == IPProtocolNumber.udp,
                    let ports = view.ports(in: packet), view.upperOffset + 8 <= packet.count,
                    let source = IPAddress(bytes: view.source(in: packet)),
                    let destination = IPAddress(bytes: view.destination(in: packet))
                else { continue }
                framesFor(
                    peer.receive(
                        Array(packet[(view.upperOffset + 8)...]), from: Endpoint(source, ports.source),
                        to: Endpoint(destination, ports.destination), now: now))
            }
        }
        return recorded
    }
}
