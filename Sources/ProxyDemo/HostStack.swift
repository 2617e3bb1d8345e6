import IKEv2
import Packets

/// The little a simulated host does with packets addressed to it: answer ICMP echo requests (IPv4 and
/// IPv6) and remember what it received, so the demo and the tests can tell what got through.
public struct HostStack {
    var received: [[UInt8]] = []

    public static func echoRequest(from source: IPAddress, to destination: IPAddress, sequence: UInt16, size: Int = 56) -> [UInt8] {
        let type: UInt8 = source.isIPv6 ? 128 : 8
        var packet: [UInt8] = []
        let body: [UInt8] = [type, 0, 0, 0, 0x1d, 0x2c, UInt8(sequence >> 8), UInt8(sequence & 0xff)] + (0..<size).map { UInt8($0 & 0xff) }
        IPHeaderBuilder.appendIP(
            to: &packet, source: source.bytes, destination: destination.bytes,
            protocolNumber: source.isIPv6 ? IPProtocolNumber.icmpv6 : IPProtocolNumber.icmp, payloadLength: body.count)
        packet += body
        if let view = try? IPPacketView(packet) { TransportChecksum.fill(packet: &packet, view: view) }
        return packet
    }

    public static func udp(from source: IPAddress, to destination: IPAddress, sourcePort: UInt16, destinationPort: UInt16, payload: [UInt8])
        -> [UInt8]
    {
        IPHeaderBuilder.udpPacket(
            source: source.bytes, destination: destination.bytes, sourcePort: sourcePort,
            destinationPort: destinationPort, payload: payload)
    }

    public static func tcpSyn(from source: IPAddress, to destination: IPAddress, destinationPort: UInt16) -> [UInt8] {
        var packet: [UInt8] = []
        let header: [UInt8] = [
            0xa0, 0x00, UInt8(destinationPort >> 8), UInt8(destinationPort & 0xff), 0, 0, 0, 1, 0, 0, 0, 0,
            0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0
        ]
        IPHeaderBuilder.appendIP(
            to: &packet, source: source.bytes, destination: destination.bytes, protocolNumber: IPProtocolNumber.tcp,
            payloadLength: header.count)
        packet += header
        if let view = try? IPPacketView(packet) { TransportChecksum.fill(packet: &packet, view: view) }
        return packet
    }

    /// Takes a packet for this host; returns the echo reply it sends, if it was an echo request.
    mutating func receive(_ packet: [UInt8]) -> [UInt8]? {
        received.append(packet)
        guard let view = try? IPPacketView(packet), view.upperOffset + 8 <= view.totalLength,
            let source = IPAddress(bytes: view.source(in: packet)), let destination = IPAddress(bytes: view.destination(in: packet))
        else { return nil }
        let request: UInt8 = view.version == 6 ? 128 : 8
        guard view.upperProtocol == IPProtocolNumber.icmp || view.upperProtocol == IPProtocolNumber.icmpv6,
            packet[view.upperOffset] == request
        else { return nil }
        var reply: [UInt8] = []
        var body = Array(packet[view.upperOffset..<view.totalLength])
        body[0] = view.version == 6 ? 129 : 0
        IPHeaderBuilder.appendIP(
            to: &reply, source: destination.bytes, destination: source.bytes, protocolNumber: view.upperProtocol,
            payloadLength: body.count)
        reply += body
        if let replyView = try? IPPacketView(reply) { TransportChecksum.fill(packet: &reply, view: replyView) }
        return reply
    }

    public static func isEchoReply(_ packet: [UInt8]) -> Bool {
        guard let view = try? IPPacketView(packet), view.upperOffset < view.totalLength else { return false }
        return packet[view.upperOffset] == (view.version == 6 ? 129 : 0)
            && (view.upperProtocol == IPProtocolNumber.icmp || view.upperProtocol == IPProtocolNumber.icmpv6)
    }
}
