/// IPv6 neighbour solicitation and advertisement (RFC 4861 sections 4.3, 4.4, 7.2): what the bridge needs
/// to answer for an address that lives only on the terminal link (the key-delivery source), the IPv6
/// counterpart of answering ARP.
public struct NeighborSolicitation: Equatable, Sendable {
    public static let type: UInt8 = 135
    public static let advertisementType: UInt8 = 136

    /// The address being resolved.
    public var target: [UInt8]
    /// The asking host's address; all zeros during duplicate address detection.
    public var source: [UInt8]
    /// The asking host's link address, when it sent the option.
    public var sourceLinkAddress: MACAddress?

    /// Reads a solicitation from an IPv6 packet: ICMPv6 straight after the fixed header, hop limit 255 and
    /// code 0 as RFC 4861 requires; anything else is not one (nil).
    public init?(ipv6 packet: [UInt8]) {
        guard packet.count >= 40 + 24, packet[0] >> 4 == 6, packet[6] == IPProtocolNumber.icmpv6, packet[7] == 255,
            packet[40] == Self.type, packet[41] == 0
        else { return nil }
        let payloadLength = Int(packet[4]) << 8 | Int(packet[5])
        guard payloadLength >= 24, 40 + payloadLength <= packet.count else { return nil }
        source = Array(packet[8..<24])
        target = Array(packet[48..<64])
        var offset = 64
        let end = 40 + payloadLength
        while offset + 8 <= end {
            let length = Int(packet[offset + 1]) * 8
            guard length > 0, offset + length <= end else { return nil }
            if packet[offset] == 1 { sourceLinkAddress = MACAddress(Array(packet[offset + 2..<offset + 8])) }
            offset += length
        }
    }

    /// The advertisement answering this solicitation for `linkAddress`: solicited and overriding, sent to
    /// the asker (or to all nodes when it asked from the unspecified address), with the target's link
    /// address option and its ICMPv6 checksum.
    public func advertisement(linkAddress: MACAddress) -> [UInt8] {
        let unspecified = source.allSatisfy { $0 == 0 }
        let destination: [UInt8] = unspecified ? [0xff, 0x02] + Array(repeating: 0, count: 13) + [1] : source
        var icmp: [UInt8] = [Self.advertisementType, 0, 0, 0]
        icmp += [unspecified ? 0x20 : 0x60, 0, 0, 0]  // S only when solicited by a unicast source; O always
        icmp += target
        icmp += [2, 1] + linkAddress.octets  // target link-layer address option
        return Self.packet(source: target, destination: destination, icmp: icmp)
    }

    /// An ICMPv6 neighbour discovery message in its IPv6 packet: hop limit 255 (RFC 4861 checks it), checksum filled.
    public static func packet(source: [UInt8], destination: [UInt8], icmp: [UInt8]) -> [UInt8] {
        var packet: [UInt8] = []
        IPHeaderBuilder.appendIPv6(
            to: &packet, source: source, destination: destination, nextHeader: IPProtocolNumber.icmpv6,
            payloadLength: icmp.count, hopLimit: 255)
        packet += icmp
        if let view = try? IPPacketView(packet) { TransportChecksum.fill(packet: &packet, view: view) }
        return packet
    }
}

extension NeighborSolicitation {
    /// A solicitation asking for `target`'s link address (RFC 4861 section 7.2.2), sent from `source` (an address
    /// of the asker) to the target's solicited-node multicast group, with the asker's link address as an option
    /// so the answer comes straight back. Returns the IPv6 packet and the Ethernet group to send it to.
    public static func request(target: [UInt8], source: [UInt8], sourceLinkAddress: MACAddress) -> (packet: [UInt8], destination: MACAddress) {
        let group: [UInt8] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff] + target[13..<16]
        var icmp: [UInt8] = [type, 0, 0, 0, 0, 0, 0, 0]
        icmp += target
        icmp += [1, 1] + sourceLinkAddress.octets  // source link-layer address option
        return (packet(source: source, destination: group, icmp: icmp), MACAddress([0x33, 0x33] + Array(group[12..<16])))
    }
}
