import IKEv2
import Packets

/// A host seen on the terminal side: its MAC and the addresses it used, and how we learnt them.
public struct DiscoveredTerminal: Equatable, Sendable {
    public var mac: MACAddress
    public var ipv4: Set<IPAddress> = []
    public var ipv6: Set<IPAddress> = []
    public var lastSeen: Double
    public var learntFrom: Set<String> = []

    public init(mac: MACAddress, ipv4: Set<IPAddress> = [], ipv6: Set<IPAddress> = [], lastSeen: Double, learntFrom: Set<String> = []) {
        self.mac = mac
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.lastSeen = lastSeen
        self.learntFrom = learntFrom
    }
}

/// Learns the terminals attached to the terminal-side port by snooping the frames they send: ARP
/// (RFC 826), IPv6 neighbour discovery (RFC 4861: neighbour and router solicitations, neighbour
/// advertisements) and DHCP (RFC 2131: the address a server acknowledges). An address inside the
/// configured prefixes is `registered`; anything else is listed as `pending` for an administrator.
public struct TerminalDiscovery: Sendable {
    public private(set) var prefixes: [AddressPrefix]
    public private(set) var hosts: [MACAddress: DiscoveredTerminal] = [:]

    public init(prefixes: [AddressPrefix]) { self.prefixes = prefixes }

    public func isInsidePrefixes(_ address: IPAddress) -> Bool { prefixes.contains { $0.contains(address) } }

    /// Addresses inside the prefixes, by MAC: the ones the proxy may act for once enrolled.
    public var registered: [DiscoveredTerminal] { hosts.values.filter { h in (h.ipv4.union(h.ipv6)).contains(where: isInsidePrefixes) } }
    /// Hosts with no address inside the prefixes: listed for an administrator to approve.
    public var pending: [DiscoveredTerminal] { hosts.values.filter { h in !(h.ipv4.union(h.ipv6)).contains(where: isInsidePrefixes) } }

    /// Widens the prefixes (an administrator approved a pending host).
    public mutating func addPrefix(_ prefix: AddressPrefix) { prefixes.append(prefix) }

    /// Takes other prefixes (the configuration's changed): hosts move between registered and pending.
    public mutating func replacePrefixes(_ prefixes: [AddressPrefix]) { self.prefixes = prefixes }

    /// Puts back a host learnt before a restart (its addresses are added to what is known of it).
    public mutating func restore(_ host: DiscoveredTerminal) {
        var merged = hosts[host.mac] ?? host
        merged.ipv4.formUnion(host.ipv4)
        merged.ipv6.formUnion(host.ipv6)
        merged.learntFrom.formUnion(host.learntFrom)
        hosts[host.mac] = merged
    }

    /// Looks at one frame sent or received on the terminal side; returns a line for the log when it taught
    /// us something new.
    @discardableResult
    public mutating func observe(frame: [UInt8], fromTerminalSide: Bool, now: Double) -> String? {
        guard let ethernet = try? EthernetFrameView(frame) else { return nil }
        let payload = Array(frame[ethernet.payloadOffset...])
        switch ethernet.etherType {
        case EtherType.arp:
            // Requests and replies both carry the sender's MAC and address; 0.0.0.0 is a probe (RFC 5227).
            guard fromTerminalSide, let arp = try? ARPPacket(payload[...]), arp.senderIP != [0, 0, 0, 0],
                let address = IPAddress(bytes: arp.senderIP)
            else { return nil }
            return learn(mac: arp.senderMAC, address: address, via: "arp", now: now)
        case EtherType.ipv6:
            guard fromTerminalSide, let view = try? IPPacketView(payload), view.upperProtocol == IPProtocolNumber.icmpv6,
                view.upperOffset + 1 < view.totalLength
            else { return nil }
            let type = payload[view.upperOffset]
            // 133 router solicitation, 135 neighbour solicitation, 136 neighbour advertisement.
            guard [133, 135, 136].contains(type), let source = IPAddress(bytes: view.source(in: payload)),
                !source.bytes.allSatisfy({ $0 == 0 })
            else { return nil }
            var line = learn(mac: ethernet.source, address: source, via: "nd", now: now)
            if type == 136, view.upperOffset + 24 <= view.totalLength,
                let target = IPAddress(bytes: Array(payload[(view.upperOffset + 8)..<(view.upperOffset + 24)]))
            {
                line = learn(mac: ethernet.source, address: target, via: "nd", now: now) ?? line
            }
            return line
        case EtherType.ipv4:
            // A DHCPACK from a server (on either side) names the client's MAC and its new address.
            guard let view = try? IPPacketView(payload), view.upperProtocol == IPProtocolNumber.udp,
                let ports = view.ports(in: payload), ports.source == 67, ports.destination == 68,
                view.upperOffset + 8 <= view.totalLength
            else { return nil }
            let dhcp = Array(payload[(view.upperOffset + 8)..<view.totalLength])
            guard dhcp.count >= 240, dhcp[0] == 2, dhcp[2] == 6, dhcp[236..<240] == [99, 130, 83, 99],
                Self.dhcpMessageType(dhcp) == 5, let address = IPAddress(bytes: Array(dhcp[16..<20])),
                !address.bytes.allSatisfy({ $0 == 0 })
            else { return nil }
            return leased(mac: MACAddress(Array(dhcp[28..<34])), address: address, now: now)
        default:
            return nil
        }
    }

    /// Option 53 of a DHCP message (RFC 2132), walking the options after the magic cookie.
    static func dhcpMessageType(_ dhcp: [UInt8]) -> UInt8? {
        var index = 240
        while index < dhcp.count {
            let code = dhcp[index]
            if code == 255 { return nil }
            if code == 0 {
                index += 1
                continue
            }
            guard index + 1 < dhcp.count else { return nil }
            let length = Int(dhcp[index + 1])
            if code == 53, length == 1, index + 2 < dhcp.count { return dhcp[index + 2] }
            index += 2 + length
        }
        return nil
    }

    /// IPv4 addresses a host no longer holds since a DHCP server leased it (or another host) a different
    /// one; taken by `takeReleased`.
    public private(set) var released: [(mac: MACAddress, address: IPAddress)] = []

    /// The releases noted since the last call.
    public mutating func takeReleased() -> [(mac: MACAddress, address: IPAddress)] {
        defer { released = [] }
        return released
    }

    /// A DHCPACK leases `address` to `mac` (RFC 2131): it is that host's IPv4 address from now on, its other
    /// IPv4 addresses and any other host's claim on this one are gone (a renumbered terminal, an address handed
    /// to another device). Only a lease moves addresses: ARP and neighbour discovery add, never take away.
    private mutating func leased(mac: MACAddress, address: IPAddress, now: Double) -> String? {
        guard !mac.isMulticast else { return nil }
        for (other, host) in hosts where other != mac && host.ipv4.contains(address) {
            hosts[other]?.ipv4.remove(address)
            released.append((other, address))
        }
        var previous: [IPAddress] = []
        if let host = hosts[mac] {
            previous = host.ipv4.filter { $0 != address }.sorted { $0.description < $1.description }
            hosts[mac]?.ipv4.subtract(previous)
            released += previous.map { (mac, $0) }
        }
        let line = learn(mac: mac, address: address, via: "dhcp", now: now)
        let taken = released.filter { $0.address == address && $0.mac != mac }.map(\.mac.description)
        guard !previous.isEmpty || !taken.isEmpty else { return line }
        return "\(mac) leased \(address) by DHCP" + (previous.isEmpty ? "" : ", replacing \(previous.map(\.description).joined(separator: ", "))")
            + (taken.isEmpty ? "" : ", which \(taken.joined(separator: ", ")) had")
    }

    private mutating func learn(mac: MACAddress, address: IPAddress, via: String, now: Double) -> String? {
        guard !mac.isMulticast else { return nil }
        var host = hosts[mac] ?? DiscoveredTerminal(mac: mac, lastSeen: now)
        host.lastSeen = now
        host.learntFrom.insert(via)
        let isNew = address.isIPv6 ? host.ipv6.insert(address).inserted : host.ipv4.insert(address).inserted
        hosts[mac] = host
        guard isNew else { return nil }
        return "discovered \(address) at \(mac) (\(via)): " + (isInsidePrefixes(address) ? "inside the terminal prefixes" : "pending approval")
    }
}
