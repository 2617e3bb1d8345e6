/// IP protocol numbers used by the data plane (IANA "Assigned Internet Protocol Numbers").
public enum IPProtocolNumber {
    public static let icmp: UInt8 = 1
    public static let ipv4: UInt8 = 4
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let ipv6: UInt8 = 41
    public static let esp: UInt8 = 50
    public static let icmpv6: UInt8 = 58
    public static let noNextHeader: UInt8 = 59
}

/// Why bytes are not a usable IP packet.
public enum IPPacketError: Error, Equatable, Sendable {
    case truncated
    case unknownVersion(UInt8)
    case badHeaderLength
    case lengthMismatch
}

/// A parsed view of an IPv4 or IPv6 packet: addresses, upper-layer protocol and where its payload starts.
/// IPv6 extension headers (hop-by-hop, routing, destination options, fragment) are walked to find the
/// upper-layer protocol (RFC 8200 section 4).
public struct IPPacketView: Sendable {
    public var version: UInt8
    /// Where the addresses lie in the packet (no copies are made while parsing).
    public var sourceRange: Range<Int>
    public var destinationRange: Range<Int>
    /// The upper-layer protocol after any IPv6 extension headers.
    public var upperProtocol: UInt8
    /// Offset of the first octet after the fixed IP header (IPv4 options included).
    public var headerLength: Int
    /// Offset of the upper-layer header (after IPv6 extension headers).
    public var upperOffset: Int
    /// Total length as the header states it.
    public var totalLength: Int
    /// True for a fragment other than the first (ports are then unknown).
    public var isLaterFragment: Bool

    public init(_ bytes: [UInt8]) throws(IPPacketError) {
        guard let first = bytes.first else { throw .truncated }
        version = first >> 4
        switch version {
        case 4:
            guard bytes.count >= 20 else { throw .truncated }
            let ihl = Int(first & 0x0f) * 4
            guard ihl >= 20, bytes.count >= ihl else { throw .badHeaderLength }
            totalLength = Int(bytes[2]) << 8 | Int(bytes[3])
            guard totalLength >= ihl, totalLength <= bytes.count else { throw .lengthMismatch }
            sourceRange = 12..<16
            destinationRange = 16..<20
            upperProtocol = bytes[9]
            headerLength = ihl
            upperOffset = ihl
            isLaterFragment = (Int(bytes[6] & 0x1f) << 8 | Int(bytes[7])) != 0
        case 6:
            guard bytes.count >= 40 else { throw .truncated }
            totalLength = 40 + (Int(bytes[4]) << 8 | Int(bytes[5]))
            guard totalLength <= bytes.count else { throw .lengthMismatch }
            sourceRange = 8..<24
            destinationRange = 24..<40
            headerLength = 40
            isLaterFragment = false
            var next = bytes[6]
            var offset = 40
            walk: while true {
                switch next {
                case 0, 43, 60:
                    guard offset + 2 <= totalLength else { throw .truncated }
                    let length = (Int(bytes[offset + 1]) + 1) * 8
                    next = bytes[offset]
                    offset += length
                case 44:
                    guard offset + 8 <= totalLength else { throw .truncated }
                    isLaterFragment = (Int(bytes[offset + 2]) << 5 | Int(bytes[offset + 3]) >> 3) != 0
                    next = bytes[offset]
                    offset += 8
                default: break walk
                }
            }
            guard offset <= totalLength else { throw .truncated }
            upperProtocol = next
            upperOffset = offset
        default:
            throw .unknownVersion(version)
        }
    }

    public func source(in bytes: [UInt8]) -> [UInt8] { Array(bytes[sourceRange]) }
    public func destination(in bytes: [UInt8]) -> [UInt8] { Array(bytes[destinationRange]) }

    /// Source and destination ports of a TCP or UDP packet (ICMP type and code for ICMP), when present.
    public func ports(in bytes: [UInt8]) -> (source: UInt16, destination: UInt16)? {
        guard !isLaterFragment else { return nil }
        switch upperProtocol {
        case IPProtocolNumber.tcp, IPProtocolNumber.udp:
            guard upperOffset + 4 <= totalLength else { return nil }
            return (
                UInt16(bytes[upperOffset]) << 8 | UInt16(bytes[upperOffset + 1]),
                UInt16(bytes[upperOffset + 2]) << 8 | UInt16(bytes[upperOffset + 3])
            )
        case IPProtocolNumber.icmp, IPProtocolNumber.icmpv6:
            guard upperOffset + 2 <= totalLength else { return nil }
            return (UInt16(bytes[upperOffset]), UInt16(bytes[upperOffset + 1]))
        default: return nil
        }
    }
}

/// Builds the fixed IPv4 (RFC 791) and IPv6 (RFC 8200) headers and UDP headers (RFC 768).
public enum IPHeaderBuilder {
    /// Appends an IPv4 header (DF clear, TTL 64) with its checksum, and `options` as given (a multiple of
    /// four octets, at most 40, as they stood in a valid header).
    public static func appendIPv4(
        to out: inout [UInt8], source: [UInt8], destination: [UInt8], protocolNumber: UInt8,
        payloadLength: Int, identification: UInt16 = 0, ttl: UInt8 = 64, options: ArraySlice<UInt8> = []
    ) {
        let start = out.count
        let headerLength = 20 + options.count
        let total = headerLength + payloadLength
        out.append(0x40 | UInt8(headerLength / 4))
        out.append(0)
        out.appendBigEndian(UInt16(total))
        out.appendBigEndian(identification)
        out.append(0)
        out.append(0)
        out.append(ttl)
        out.append(protocolNumber)
        out.append(0)
        out.append(0)
        out.append(contentsOf: source)
        out.append(contentsOf: destination)
        out.append(contentsOf: options)
        let checksum = InternetChecksum.finish(InternetChecksum.add(out[start..<(start + headerLength)]))
        out[start + 10] = UInt8(checksum >> 8)
        out[start + 11] = UInt8(checksum & 0xff)
    }

    /// Appends an IPv6 header (traffic class and flow label zero, hop limit 64).
    public static func appendIPv6(
        to out: inout [UInt8], source: [UInt8], destination: [UInt8], nextHeader: UInt8,
        payloadLength: Int, hopLimit: UInt8 = 64
    ) {
        out.append(0x60)
        out.append(0)
        out.append(0)
        out.append(0)
        out.appendBigEndian(UInt16(payloadLength))
        out.append(nextHeader)
        out.append(hopLimit)
        out.append(contentsOf: source)
        out.append(contentsOf: destination)
    }

    /// Appends the IP header for either family, chosen by the address length.
    public static func appendIP(
        to out: inout [UInt8], source: [UInt8], destination: [UInt8], protocolNumber: UInt8,
        payloadLength: Int
    ) {
        if source.count == 16 {
            appendIPv6(to: &out, source: source, destination: destination, nextHeader: protocolNumber, payloadLength: payloadLength)
        } else {
            appendIPv4(to: &out, source: source, destination: destination, protocolNumber: protocolNumber, payloadLength: payloadLength)
        }
    }

    /// The UDP checksum over the pseudo-header (RFC 768 / RFC 8200 section 8.1) and `udp` (header and data,
    /// checksum field zero). A computed zero is sent as 0xffff.
    public static func udpChecksum(source: [UInt8], destination: [UInt8], udp: ArraySlice<UInt8>) -> UInt16 {
        var sum = InternetChecksum.add(source)
        sum = InternetChecksum.add(destination, to: sum)
        sum &+= UInt32(IPProtocolNumber.udp) &+ UInt32(udp.count)
        sum = InternetChecksum.add(udp, to: sum)
        let value = InternetChecksum.finish(sum)
        return value == 0 ? 0xffff : value
    }
}

extension Array where Element == UInt8 {
    /// Appends an integer in network byte order without building a temporary array.
    @inlinable
    public mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        var shift = T.bitWidth - 8
        while shift >= 0 {
            append(UInt8(truncatingIfNeeded: value >> shift))
            shift -= 8
        }
    }
}

extension IPHeaderBuilder {
    /// A complete IPv4 or IPv6 UDP packet with a valid checksum, e.g. an IKE message sent in a terminal's name.
    public static func udpPacket(
        source: [UInt8], destination: [UInt8], sourcePort: UInt16, destinationPort: UInt16,
        payload: [UInt8]
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(48 + payload.count)
        appendIP(to: &out, source: source, destination: destination, protocolNumber: IPProtocolNumber.udp, payloadLength: 8 + payload.count)
        let udpStart = out.count
        out.appendBigEndian(sourcePort)
        out.appendBigEndian(destinationPort)
        out.appendBigEndian(UInt16(8 + payload.count))
        out.appendBigEndian(UInt16(0))
        out.append(contentsOf: payload)
        let checksum = udpChecksum(source: source, destination: destination, udp: out[udpStart...])
        out[udpStart + 6] = UInt8(checksum >> 8)
        out[udpStart + 7] = UInt8(checksum & 0xff)
        return out
    }
}
