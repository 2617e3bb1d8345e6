import IKEv2
import KeyDelivery
import Packets

/// What the bridge asks its two ports to do.
public enum FrameAction: Equatable, Sendable {
    /// Pass the frame just received on, unchanged, out of this side.
    case forward(LinkSide)
    /// Send a frame the proxy built (IKE in a terminal's name, key delivery, an ARP answer).
    case send(LinkSide, [UInt8])
    /// A frame not passed on, with the counted reason.
    case drop(PacketDropReason)
    case log(LogLine)
    /// Discovery learnt a host or an address, or saw one move (the line says what): worth saving.
    case discovered(String)
    case event(SAEvent)
    /// Ask the OCSP responders (or fetch the CRLs) a peer's certificate chain names; answer with `revocationChecked`.
    case checkRevocation(RevocationCheckRequest)

    /// A line of text alone.
    public static func log(_ text: String) -> FrameAction { .log(LogLine(text)) }
}

/// A terminal the administrator enrolled by its MAC address: discovery supplies its IP addresses.
public struct MACEnrollment: Sendable {
    public var terminalID: UInt64
    public var enrollmentKey: KeyMaterial
    public var keyDeliveryPort: UInt16
    public init(terminalID: UInt64, enrollmentKey: KeyMaterial, keyDeliveryPort: UInt16 = WellKnownPort.keyDelivery) {
        self.terminalID = terminalID
        self.enrollmentKey = enrollmentKey
        self.keyDeliveryPort = keyDeliveryPort
    }
}

/// The proxy at the Ethernet layer, pure: frames from the two ports in, frames out. It wraps the
/// key-exchange proxy (which judges IP packets) with what a bump in the wire with no address needs:
/// learning terminals (ARP, neighbour discovery, DHCP) and the MAC addresses to send from and to,
/// answering ARP for the key-delivery address on the terminal side only, and framing the IKE it sends
/// in a terminal's name with that terminal's MAC and VLAN tags. Frames the policy passes go on
/// unchanged, whatever they carry (ARP, ND, DHCP, VLAN tags, jumbo frames).
public final class EthernetBridge {
    public let proxy: KeyExchangeProxy
    public private(set) var discovery: TerminalDiscovery
    public private(set) var stations: StationTable
    /// The terminal-side port's MAC: the link address of the key-delivery address.
    public let terminalPortMAC: MACAddress
    public private(set) var enrollments: [MACAddress: MACEnrollment]
    public private(set) var counters: [String: Int] = [:]
    /// Addresses whose link address the proxy needed and did not have (after a restart, say): the next
    /// frames that carry them teach it, and the retransmission goes out.
    private var wanted: Set<IPAddress> = []
    /// Addresses asked for (ARP request, neighbour solicitation) since the last round: each asked at most once
    /// every `solicitationInterval` seconds while it stays unknown.
    private var solicited: Set<IPAddress> = []
    private var solicitedRoundAt = 0.0
    /// Host prefixes of the addresses administrators approved or added: allowed whatever the configured prefixes.
    private var authorizedPrefixes: [AddressPrefix] = []
    static let solicitationInterval = 2.0

    public init(
        proxy: KeyExchangeProxy, terminalPortMAC: MACAddress, discoveryPrefixes: [AddressPrefix],
        enrollments: [MACAddress: MACEnrollment] = [:]
    ) {
        self.proxy = proxy
        self.terminalPortMAC = terminalPortMAC
        self.enrollments = enrollments
        stations = StationTable(proxyMAC: terminalPortMAC)
        discovery = TerminalDiscovery(prefixes: discoveryPrefixes)
    }

    private func count(_ counter: BridgeCounter) { counters[counter.rawValue, default: 0] += 1 }
    private func countDrop(_ reason: PacketDropReason) { counters[reason.counterName, default: 0] += 1 }

    /// Judges one frame received on `side`.
    public func receive(from side: LinkSide, frame: [UInt8], at time: ClockReading) -> [FrameAction] {
        guard let ethernet = try? EthernetFrameView(frame) else {
            countDrop(.malformedFrame)
            return [.drop(.malformedFrame)]
        }
        guard ethernet.source != terminalPortMAC else {
            countDrop(.fromProxyPortMAC)
            return [.drop(.fromProxyPortMAC)]
        }
        var actions: [FrameAction] = []
        switch ethernet.etherType {
        case EtherType.ipv4, EtherType.ipv6:
            let packet = Array(frame[ethernet.payloadOffset...])
            if ethernet.etherType == EtherType.ipv6, packet.count >= 64, packet[6] == IPProtocolNumber.icmpv6,
                packet[40] == NeighborSolicitation.type, let answer = answerSolicitation(packet, from: side, ethernet: ethernet)
            {
                return answer
            }
            if let line = discoverIfRelevant(side: side, ethernet: ethernet, frame: frame, packet: packet, now: time.monotonic) {
                actions.append(.discovered(line))
            }
            if !discovery.released.isEmpty { actions += releaseMovedAddresses(at: time) }
            let decisions = proxy.receive(from: side, packet: packet, at: time)
            if !wanted.isEmpty, let view = try? IPPacketView(packet), let source = IPAddress(bytes: view.source(in: packet)),
                let destination = IPAddress(bytes: view.destination(in: packet)), wanted.contains(source) || wanted.contains(destination)
            {
                stations.learn(from: side, ethernet: ethernet, source: source, destination: destination)
                if stations.station(for: source) != nil { wanted.remove(source) }
                if stations.station(for: destination) != nil { wanted.remove(destination) }
            }
            if decisions.count == 1, case .forward(let out) = decisions[0] {
                // The fast path: most frames are only passed on.
                if side == .terminal && ethernet.destination == terminalPortMAC {
                    countDrop(.addressedToProxyPort)
                    return actions + [.drop(.addressedToProxyPort)]
                }
                return actions + [.forward(out)]
            }
            // The proxy acts on this packet (IKE, a start request, key delivery): remember who is where.
            if let view = try? IPPacketView(packet) {
                stations.learn(
                    from: side, ethernet: ethernet, source: IPAddress(bytes: view.source(in: packet)),
                    destination: IPAddress(bytes: view.destination(in: packet)))
            }
            return actions + decisions.flatMap(frame(for:))
        case EtherType.arp:
            guard let arp = try? ARPPacket(frame[ethernet.payloadOffset...]) else { return [.forward(side.other)] }
            guard arp.senderMAC != terminalPortMAC else {
                countDrop(.fromProxyPortMAC)
                return [.drop(.fromProxyPortMAC)]
            }
            if let sender = IPAddress(bytes: arp.senderIP), arp.senderIP != [0, 0, 0, 0] {
                stations.learn(sender, at: Station(mac: arp.senderMAC, vlanIDs: ethernet.vlanIDs, side: side))
            }
            if side == .terminal {
                if let line = discovery.observe(frame: frame, fromTerminalSide: true, now: time.monotonic) {
                    actions.append(.discovered(line))
                    enrollDiscovered(arp.senderMAC)
                }
                if arp.operation == .request, arp.targetIP == proxy.settings.keyDeliverySourceIPv4.bytes {
                    // The key-delivery address lives only on the terminal link: answered here, never forwarded.
                    count(.arpAnsweredForKeyDeliveryAddress)
                    let reply = ARPPacket(
                        operation: .reply, senderMAC: terminalPortMAC, senderIP: arp.targetIP,
                        targetMAC: arp.senderMAC, targetIP: arp.senderIP)
                    return actions + [
                        .send(
                            .terminal,
                            EthernetFrameView.build(
                                destination: arp.senderMAC, source: terminalPortMAC,
                                vlanIDs: ethernet.vlanIDs, etherType: EtherType.arp,
                                payload: reply.encode()))
                    ]
                }
                if ethernet.destination == terminalPortMAC {
                    // The answer to the proxy's own ARP request (learnt above): it goes no further.
                    count(.arpAnswerToProxy)
                    return actions + [.drop(.addressedToProxyPort)]
                }
            } else if arp.targetIP == proxy.settings.keyDeliverySourceIPv4.bytes && arp.operation == .request {
                countDrop(.arpForKeyDeliveryAddressFromInternet)
                return [.drop(.arpForKeyDeliveryAddressFromInternet)]
            }
            return actions + [.forward(side.other)]
        default:
            count(.forwardedOtherEthertype)
            return [.forward(side.other)]
        }
    }

    /// Neighbour solicitations for the IPv6 key-delivery address, the counterpart of the ARP answers: answered
    /// on the terminal side, dropped from the Internet side; nil for any other solicitation (forwarded).
    private func answerSolicitation(_ packet: [UInt8], from side: LinkSide, ethernet: EthernetFrameView) -> [FrameAction]? {
        guard let solicitation = NeighborSolicitation(ipv6: packet), solicitation.target == proxy.settings.keyDeliverySourceIPv6.bytes else {
            return nil
        }
        guard side == .terminal else {
            countDrop(.ndForKeyDeliveryAddressFromInternet)
            return [.drop(.ndForKeyDeliveryAddressFromInternet)]
        }
        let asker = solicitation.sourceLinkAddress ?? ethernet.source
        guard asker != terminalPortMAC else {
            countDrop(.fromProxyPortMAC)
            return [.drop(.fromProxyPortMAC)]
        }
        if let source = IPAddress(bytes: solicitation.source), !solicitation.source.allSatisfy({ $0 == 0 }) {
            stations.learn(source, at: Station(mac: asker, vlanIDs: ethernet.vlanIDs, side: .terminal))
        }
        count(.ndAnsweredForKeyDeliveryAddress)
        let toAllNodes = solicitation.source.allSatisfy { $0 == 0 }
        let destination = toAllNodes ? MACAddress([0x33, 0x33, 0, 0, 0, 1]) : asker
        return [
            .send(
                .terminal,
                EthernetFrameView.build(
                    destination: destination, source: terminalPortMAC, vlanIDs: ethernet.vlanIDs,
                    etherType: EtherType.ipv6, payload: solicitation.advertisement(linkAddress: terminalPortMAC)))
        ]
    }

    /// Puts back a host discovery learnt before a restart; an enrolled one is registered again at once.
    public func restoreDiscovered(_ host: DiscoveredTerminal) {
        discovery.restore(host)
        enrollDiscovered(host.mac)
    }

    /// An administrator approves a discovered host: its addresses become ones the proxy may act for, and it
    /// is enrolled with the given terminal ID and key. Returns the addresses, or nil for an unknown MAC.
    public func approve(mac: MACAddress, enrollment: MACEnrollment) -> [IPAddress]? {
        guard let host = discovery.hosts[mac] else { return nil }
        let addresses = (host.ipv4.union(host.ipv6)).filter { !$0.isLinkLocal }.sorted { $0.description < $1.description }
        addresses.forEach(authorize)
        enrollments[mac] = enrollment
        enrollDiscovered(mac)
        return addresses
    }

    /// An address an administrator named becomes one the proxy may act for, inside the prefixes or not (and
    /// stays one when the configured prefixes change).
    private func authorize(_ address: IPAddress) {
        let prefix = AddressPrefix(address.description + (address.isIPv6 ? "/128" : "/32"))!
        if !authorizedPrefixes.contains(prefix) { authorizedPrefixes.append(prefix) }
        guard !proxy.registry.allowedPrefixes.contains(where: { $0.contains(address) }) else { return }
        proxy.registry.allowedPrefixes.append(prefix)
        discovery.addPrefix(prefix)
    }

    /// The configured terminal prefixes changed (a reload): the addresses administrators approved or added
    /// stay allowed; enrolled addresses no longer covered lose their SAs and are not acted for
    /// (`KeyExchangeProxy.withdraw`), newly covered ones are acted for from now on. Returns both lists.
    public func replaceTerminalPrefixes(_ configured: [AddressPrefix], at time: ClockReading)
        -> (withdrawn: [IPAddress], admitted: [IPAddress], frames: [FrameAction])
    {
        let enrolled = proxy.registry.entries.keys.sorted { $0.description < $1.description }
        let before = Set(enrolled.filter { proxy.registry.terminal(at: $0) != nil })
        let prefixes =
            configured
            + authorizedPrefixes.filter { prefix in
                !configured.contains { $0.isIPv6 == prefix.isIPv6 && $0.contains(prefix.low) }
            }
        proxy.registry.allowedPrefixes = prefixes
        discovery.replacePrefixes(prefixes)
        let after = Set(enrolled.filter { proxy.registry.terminal(at: $0) != nil })
        let withdrawn = enrolled.filter { before.contains($0) && !after.contains($0) }
        let admitted = enrolled.filter { after.contains($0) && !before.contains($0) }
        return (withdrawn, admitted, frames(for: proxy.withdraw(addresses: Set(withdrawn), at: time)))
    }

    /// An administrator adds a terminal by its addresses: they become ones the proxy may act for, whether or
    /// not discovery has seen them; key delivery uses the first IPv4 address (else the first).
    public func add(terminalID: UInt64, addresses: [IPAddress], enrollmentKey: KeyMaterial, keyDeliveryPort: UInt16) {
        let keyAddress = addresses.first { !$0.isIPv6 } ?? addresses[0]
        for address in addresses {
            authorize(address)
            proxy.registry.enroll(
                TerminalEntry(
                    address: address, terminalID: terminalID, enrollmentKey: enrollmentKey,
                    keyDeliveryPort: keyDeliveryPort, keyDeliveryAddress: keyAddress))
        }
    }

    /// A link address saved before a restart: used until the wire teaches a fresher one.
    public func restore(station: Station, for address: IPAddress) {
        if stations.station(for: address) == nil { stations.learn(address, at: station) }
    }

    /// Enrols a host by MAC (a terminal new in the configuration file): registered at once if discovery
    /// knows it, else when it shows itself.
    public func enroll(mac: MACAddress, enrollment: MACEnrollment) {
        enrollments[mac] = enrollment
        enrollDiscovered(mac)
    }

    /// Forgets a terminal's enrollment (registry entries and enrollment by MAC) without touching any SA: at
    /// start, for a terminal the configuration file names but an administrator removed or replaced.
    @discardableResult
    public func forget(terminalID: UInt64) -> Bool {
        let macs = enrollments.filter { $0.value.terminalID == terminalID }.map(\.key)
        for mac in macs { enrollments[mac] = nil }
        return !proxy.registry.remove(terminalID: terminalID).isEmpty || !macs.isEmpty
    }

    /// An administrator removes a terminal: its enrollment by MAC goes too (discovery no longer enrols it
    /// again), and the proxy deletes its SAs. Nil when no terminal has that ID.
    public func remove(terminalID: UInt64, at time: ClockReading) -> [FrameAction]? {
        let macs = enrollments.filter { $0.value.terminalID == terminalID }.map(\.key)
        for mac in macs { enrollments[mac] = nil }
        guard let actions = proxy.removeTerminal(id: terminalID, at: time) else {
            return macs.isEmpty ? nil : []
        }
        return frames(for: actions)
    }

    /// The proxy's decisions (from an administrator's command, say) as frames.
    public func frames(for actions: [ProxyAction]) -> [FrameAction] { actions.flatMap(frame(for:)) }

    /// Timers of the proxy, turned into frames.
    public func tick(at time: ClockReading) -> [FrameAction] {
        if time.monotonic - solicitedRoundAt >= Self.solicitationInterval {
            solicitedRoundAt = time.monotonic
            solicited.removeAll()
        }
        return proxy.tick(at: time).flatMap(frame(for:))
    }

    /// The engines' answers to the IKE datagrams this batch of frames held (`KeyExchangeProxy.batchesIKE`).
    public func answerHeldIKE(at time: ClockReading) -> [FrameAction] { proxy.answerHeldIKE(at: time).flatMap(frame(for:)) }

    /// The OCSP answer for a `.checkRevocation` action.
    public func revocationChecked(_ id: UInt64, _ status: RevocationStatus, at time: ClockReading) -> [FrameAction] {
        proxy.revocationChecked(id, status, at: time).flatMap(frame(for:))
    }

    /// ND and DHCP frames teach discovery; cheap tests first so the forwarding path stays fast.
    private func discoverIfRelevant(side: LinkSide, ethernet: EthernetFrameView, frame: [UInt8], packet: [UInt8], now: Double) -> String? {
        guard packet.count > 20 else { return nil }
        let relevant: Bool
        if ethernet.etherType == EtherType.ipv6 {
            relevant = side == .terminal && packet[6] == IPProtocolNumber.icmpv6
        } else {
            let headerLength = Int(packet[0] & 0x0f) * 4
            relevant =
                packet[9] == IPProtocolNumber.udp && packet.count >= headerLength + 4
                && packet[headerLength] == 0 && packet[headerLength + 1] == 67
        }
        guard relevant, let line = discovery.observe(frame: frame, fromTerminalSide: side == .terminal, now: now) else { return nil }
        if ethernet.etherType == EtherType.ipv6 { enrollDiscovered(ethernet.source) } else { enrollAllDiscovered() }
        return line
    }

    private func enrollAllDiscovered() { for mac in discovery.hosts.keys { enrollDiscovered(mac) } }

    /// Addresses a DHCP lease took from a host: a terminal enrolled by that host's MAC is no longer acted for
    /// there (its SAs at that address deleted, in the terminal and with the peers), and is reached at its
    /// current address. Terminals enrolled by address are the administrator's word and stay as they are.
    private func releaseMovedAddresses(at time: ClockReading) -> [FrameAction] {
        var frames: [FrameAction] = []
        for (mac, address) in discovery.takeReleased() {
            guard let enrollment = enrollments[mac], var entry = proxy.registry.entries[address], entry.terminalID == enrollment.terminalID
            else { continue }
            enrollDiscovered(mac)
            // The deletions go where the terminal is time.monotonic.
            if let current = discovery.hosts[mac].flatMap(Self.keyDeliveryAddress) {
                entry.keyDeliveryAddress = current
                proxy.registry.enroll(entry)
            }
            frames += self.frames(
                for: proxy.withdraw(addresses: [address], reason: "is no longer its address (DHCP lease)", at: time))
            proxy.registry.forget(address: address)
        }
        return frames
    }

    /// A discovered host whose MAC the administrator enrolled becomes a registered terminal at each of its
    /// addresses (the registry still requires them inside its prefixes); key delivery uses its IPv4 address.
    private func enrollDiscovered(_ mac: MACAddress) {
        guard let enrollment = enrollments[mac], let host = discovery.hosts[mac] else { return }
        let keyAddress = Self.keyDeliveryAddress(of: host)
        for address in host.ipv4.union(host.ipv6) {
            proxy.registry.enroll(
                TerminalEntry(
                    address: address, terminalID: enrollment.terminalID, enrollmentKey: enrollment.enrollmentKey,
                    keyDeliveryPort: enrollment.keyDeliveryPort, keyDeliveryAddress: keyAddress))
            if stations.seen[address] == nil {
                stations.learn(address, at: Station(mac: mac, vlanIDs: [], side: .terminal))
            }
        }
    }

    /// Where key delivery reaches a host: its (lowest) IPv4 address, else its lowest IPv6 one.
    static func keyDeliveryAddress(of host: DiscoveredTerminal) -> IPAddress? {
        host.ipv4.sorted { $0.description < $1.description }.first ?? host.ipv6.sorted { $0.description < $1.description }.first
    }

    /// Asks for an address's link address, as a host would before sending to it: on the terminal side from the
    /// key-delivery address and the terminal port's MAC, on the Internet side in the name of the terminal the
    /// proxy speaks for (its address, MAC and VLAN tags, as its IKE frames carry). The answer comes back through
    /// the bridge, which learns from it. A peer beyond a router does not answer: its router's MAC is learnt from
    /// traffic, and kept across restarts.
    private func solicit(_ address: IPAddress, on side: LinkSide, from sender: IPAddress? = nil, at station: Station? = nil) -> [FrameAction] {
        guard solicited.insert(address).inserted else { return [] }
        let senderIP: IPAddress
        let senderMAC: MACAddress
        let vlanIDs: [UInt16]
        switch side {
        case .terminal:
            senderIP = address.isIPv6 ? proxy.settings.keyDeliverySourceIPv6 : proxy.settings.keyDeliverySourceIPv4
            senderMAC = terminalPortMAC
            vlanIDs = []
        case .internet:
            guard let sender, let station, sender.isIPv6 == address.isIPv6 else { return [] }
            (senderIP, senderMAC, vlanIDs) = (sender, station.mac, station.vlanIDs)
        }
        count(.linkAddressSolicited)
        let frame: [UInt8]
        if address.isIPv6 {
            let (packet, group) = NeighborSolicitation.request(target: address.bytes, source: senderIP.bytes, sourceLinkAddress: senderMAC)
            frame = EthernetFrameView.build(destination: group, source: senderMAC, vlanIDs: vlanIDs, etherType: EtherType.ipv6, payload: packet)
        } else {
            let request = ARPPacket(
                operation: .request, senderMAC: senderMAC, senderIP: senderIP.bytes,
                targetMAC: MACAddress([0, 0, 0, 0, 0, 0]), targetIP: address.bytes)
            frame = EthernetFrameView.build(
                destination: .broadcast, source: senderMAC, vlanIDs: vlanIDs, etherType: EtherType.arp, payload: request.encode())
        }
        return [
            .send(side, frame),
            .log(
                "asking for the link address of \(address) on the \(side == .internet ? "Internet" : "terminal") side "
                    + "(\(address.isIPv6 ? "neighbour solicitation" : "ARP request") from \(senderIP))")
        ]
    }

    /// Frames for the proxy's decisions. Packets it builds go out with link addresses learnt from the wire:
    /// IKE from the terminal's MAC to the peer's next hop, key delivery from the terminal port's MAC.
    private func frame(for action: ProxyAction) -> [FrameAction] {
        switch action {
        case .forward(let side): return [.forward(side)]
        case .drop(let reason): return [.drop(reason)]
        case .log(let text): return [.log(text)]
        case .event(let event): return [.event(event)]
        case .checkRevocation(let request): return [.checkRevocation(request)]
        case .send(let side, let packet):
            guard let view = try? IPPacketView(packet), let source = IPAddress(bytes: view.source(in: packet)),
                let destination = IPAddress(bytes: view.destination(in: packet))
            else { return [.drop(.unframeablePacket)] }
            let etherType = view.version == 6 ? EtherType.ipv6 : EtherType.ipv4
            switch side {
            case .internet:
                guard let terminal = stations.station(for: source), let nextHop = stations.station(for: destination) else {
                    for address in [source, destination] where stations.station(for: address) == nil { wanted.insert(address) }
                    countDrop(.noLinkAddress)
                    // Ask for it (the terminal's first: the peer is asked in its name), so the retransmission finds it.
                    let ask =
                        stations.station(for: source).map { solicit(destination, on: .internet, from: source, at: $0) }
                        ?? solicit(source, on: .terminal)
                    return [
                        .drop(.noLinkAddress),
                        .log(
                            "cannot send \(source) -> \(destination): link address of "
                                + (stations.station(for: source) == nil ? "\(source)" : "\(destination)") + " not learnt yet")
                    ] + ask
                }
                return [
                    .send(
                        .internet,
                        EthernetFrameView.build(
                            destination: nextHop.mac, source: terminal.mac, vlanIDs: terminal.vlanIDs,
                            etherType: etherType, payload: packet))
                ]
            case .terminal:
                guard let terminal = stations.station(for: destination) else {
                    wanted.insert(destination)
                    countDrop(.noLinkAddress)
                    return [.drop(.noLinkAddress), .log("cannot send to terminal \(destination): its link address is not learnt yet")]
                        + solicit(destination, on: .terminal)
                }
                return [
                    .send(
                        .terminal,
                        EthernetFrameView.build(
                            destination: terminal.mac, source: terminalPortMAC, vlanIDs: terminal.vlanIDs,
                            etherType: etherType, payload: packet))
                ]
            }
        }
    }
}

extension LinkSide {
    /// The side a frame received here is forwarded to.
    public var other: LinkSide { self == .internet ? .terminal : .internet }
}
