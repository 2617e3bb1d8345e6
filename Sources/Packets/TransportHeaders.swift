/// The upper-layer header of an IP packet, parsed: ports for TCP and UDP (RFC 9293, RFC 768), type and
/// code for ICMP and ICMPv6 (RFC 792, RFC 4443). Later fragments have none.
public enum TransportHeader: Equatable, Sendable {
    case udp(sourcePort: UInt16, destinationPort: UInt16, length: Int)
    case tcp(sourcePort: UInt16, destinationPort: UInt16, flags: UInt8)
    case icmp(type: UInt8, code: UInt8)
    case icmpv6(type: UInt8, code: UInt8)
    case other(protocolNumber: UInt8)
    case laterFragment(protocolNumber: UInt8)

    public init(packet: [UInt8], view: IPPacketView) throws(IPPacketError) {
        let o = view.upperOffset
        let end = view.totalLength
        if view.isLaterFragment {
            self = .laterFragment(protocolNumber: view.upperProtocol)
            return
        }
        switch view.upperProtocol {
        case IPProtocolNumber.udp:
            guard o + 8 <= end else { throw .truncated }
            let length = Int(packet[o + 4]) << 8 | Int(packet[o + 5])
            guard length >= 8, o + length <= end else { throw .lengthMismatch }
            self = .udp(
                sourcePort: UInt16(packet[o]) << 8 | UInt16(packet[o + 1]),
                destinationPort: UInt16(packet[o + 2]) << 8 | UInt16(packet[o + 3]), length: length)
        case IPProtocolNumber.tcp:
            guard o + 20 <= end else { throw .truncated }
            let dataOffset = Int(packet[o + 12] >> 4) * 4
            guard dataOffset >= 20, o + dataOffset <= end else { throw .badHeaderLength }
            self = .tcp(
                sourcePort: UInt16(packet[o]) << 8 | UInt16(packet[o + 1]),
                destinationPort: UInt16(packet[o + 2]) << 8 | UInt16(packet[o + 3]), flags: packet[o + 13])
        case IPProtocolNumber.icmp:
            guard o + 4 <= end else { throw .truncated }
            self = .icmp(type: packet[o], code: packet[o + 1])
        case IPProtocolNumber.icmpv6:
            guard o + 4 <= end else { throw .truncated }
            self = .icmpv6(type: packet[o], code: packet[o + 1])
        default:
            self = .other(protocolNumber: view.upperProtocol)
        }
    }
}

/// Upper-layer checksums over the IPv4 or IPv6 pseudo-header (RFC 768, RFC 9293, RFC 8200 section 8.1);
/// ICMP for IPv4 has no pseudo-header (RFC 792).
public enum TransportChecksum {
    /// The checksum field's offset within the upper-layer header, for the protocols that have one.
    public static func fieldOffset(for protocolNumber: UInt8) -> Int? {
        switch protocolNumber {
        case IPProtocolNumber.udp: return 6
        case IPProtocolNumber.tcp: return 16
        case IPProtocolNumber.icmp, IPProtocolNumber.icmpv6: return 2
        default: return nil
        }
    }

    static func sum(packet: [UInt8], view: IPPacketView) -> UInt32 {
        let segment = packet[view.upperOffset..<view.totalLength]
        var total: UInt32 = 0
        if view.upperProtocol != IPProtocolNumber.icmp {
            total = InternetChecksum.add(packet[view.sourceRange])
            total = InternetChecksum.add(packet[view.destinationRange], to: total)
            total &+= UInt32(view.upperProtocol) &+ UInt32(segment.count)
        }
        return InternetChecksum.add(segment, to: total)
    }

    /// True when the packet's upper-layer checksum verifies (a zero UDP checksum over IPv4 means none).
    public static func isValid(packet: [UInt8], view: IPPacketView) -> Bool {
        guard let field = fieldOffset(for: view.upperProtocol), !view.isLaterFragment,
            view.upperOffset + field + 2 <= view.totalLength
        else { return true }
        if view.upperProtocol == IPProtocolNumber.udp && view.version == 4
            && packet[view.upperOffset + 6] == 0 && packet[view.upperOffset + 7] == 0
        {
            return true
        }
        return InternetChecksum.finish(sum(packet: packet, view: view)) == 0
    }

    /// Recomputes and stores the upper-layer checksum in place.
    public static func fill(packet: inout [UInt8], view: IPPacketView) {
        guard let field = fieldOffset(for: view.upperProtocol), view.upperOffset + field + 2 <= view.totalLength else { return }
        let at = view.upperOffset + field
        packet[at] = 0
        packet[at + 1] = 0
        var value = InternetChecksum.finish(sum(packet: packet, view: view))
        if value == 0 && view.upperProtocol == IPProtocolNumber.udp { value = 0xffff }
        packet[at] = UInt8(value >> 8)
        packet[at + 1] = UInt8(value & 0xff)
    }
}

extension IPPacketView {
    /// True when an IPv4 header checksum verifies (IPv6 has none).
    public func headerChecksumIsValid(_ packet: [UInt8]) -> Bool {
        version != 4 || InternetChecksum.finish(InternetChecksum.add(packet[0..<headerLength])) == 0
    }
}
