import Packets

/// Where the ESP header goes in a transport-mode packet (RFC 4303 section 3.1.1): after the IP header,
/// IPv4 options included (they travel in the outer header). IPv6 extension headers
/// that routers act on (hop-by-hop options, routing, and destination options placed before a routing
/// header) stay outside, in front of ESP; destination options meant for the final host travel inside,
/// protected with the upper-layer payload. A fragment cannot be protected on its own in transport mode (the
/// receiver decrypts before it could reassemble), so fragments are refused.
struct TransportModeLayout: Equatable {
    /// The extension headers that stay in front of ESP, as they were (empty for IPv4 and most IPv6).
    var outerExtensionHeaders: Range<Int>
    /// Where the last outer extension header starts: its next-header octet must name ESP (or UDP) instead.
    var lastOuterHeaderStart: Int?
    /// The protected part: remaining extension headers and the upper-layer payload.
    var protectedRange: Range<Int>
    /// The protocol number of the first protected header, carried in the ESP trailer.
    var protectedNextHeader: UInt8

    init(_ packet: [UInt8], view: IPPacketView) throws(ESPDropReason) {
        guard view.version == 6 else {
            let fragmentField = Int(packet[6]) << 8 | Int(packet[7])
            // More-fragments set or a non-zero offset: a piece of a datagram.
            guard fragmentField & 0x3fff == 0 else { throw .fragmentInTransportMode }
            outerExtensionHeaders = view.headerLength..<view.headerLength
            protectedRange = view.upperOffset..<view.totalLength
            protectedNextHeader = view.upperProtocol
            return
        }
        var next = packet[6]
        var offset = 40
        var outerEnd = 40
        var outerNext = next
        while offset < view.upperOffset {
            let start = offset
            switch next {
            case 44: throw .fragmentInTransportMode
            case 0, 43, 60: offset += (Int(packet[offset + 1]) + 1) * 8
            default: throw .badInnerPacket
            }
            let kind = next
            next = packet[start]
            if kind == 0 || kind == 43 {
                outerEnd = offset
                outerNext = next
                lastOuterHeaderStart = start
            }
        }
        outerExtensionHeaders = 40..<outerEnd
        protectedRange = outerEnd..<view.totalLength
        protectedNextHeader = outerNext
    }
}
