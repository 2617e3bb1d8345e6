import IKEv2
import Packets
import XCTest

@testable import ESP

/// RFC 4303 section 3.1.1: in transport mode ESP sits after the IPv6 headers the hops act on and before
/// the final destination options, which it protects along with the upper-layer payload.
final class TransportModeExtensionHeaderTests: XCTestCase {
    /// An 8-octet extension header of `kind` naming `next`, filled with a PadN option.
    func extensionHeader(next: UInt8, marker: UInt8) -> [UInt8] { [next, 0, 1, 4, marker, marker, marker, marker] }

    /// An IPv6 UDP packet whose payload is preceded by `headers` (kind, marker) in order.
    func ipv6Packet(headers: [(kind: UInt8, marker: UInt8)], payloadLength: Int = 32) -> [UInt8] {
        let plain = udpPacket(ipv6: true, payloadLength: payloadLength)
        var chain: [UInt8] = []
        for (index, header) in headers.enumerated() {
            let next = index + 1 < headers.count ? headers[index + 1].kind : IPProtocolNumber.udp
            chain += extensionHeader(next: next, marker: header.marker)
        }
        var packet = Array(plain[0..<40])
        let payloadLength = plain.count - 40 + chain.count
        packet[4] = UInt8(payloadLength >> 8)
        packet[5] = UInt8(payloadLength & 0xff)
        packet[6] = headers.first?.kind ?? IPProtocolNumber.udp
        return packet + chain + plain[40...]
    }

    func testFinalDestinationOptionsAreEncryptedAndComeBackOnTheOtherSide() throws {
        for encapsulated in [true, false] {
            let (outbound, inbound) = try saPair(suite: gcm256, mode: .transport, ipv6Outer: true, encapsulated: encapsulated)
            let inner = ipv6Packet(headers: [(60, 0xd0)])
            let sent = try outbound.encapsulate(inner)
            XCTAssertEqual(sent.bytes[6], encapsulated ? IPProtocolNumber.udp : IPProtocolNumber.esp, "nothing in front of ESP")
            XCTAssertEqual(sent.espOffset, encapsulated ? 48 : 40)
            XCTAssertFalse(contains(sent.bytes, [1, 4, 0xd0, 0xd0]), "the destination options travel encrypted")
            let opened = try inbound.decapsulate(sent.espBytes)
            XCTAssertEqual(opened[6], 60, "the rebuilt header names the destination options")
            XCTAssertEqual(Array(opened[40...]), Array(inner[40...]))
            let view = try IPPacketView(opened)
            XCTAssertEqual(view.upperProtocol, IPProtocolNumber.udp)
            XCTAssertEqual(view.ports(in: opened)?.destination, 7)
        }
    }

    func testHopByHopRoutingAndTheirDestinationOptionsStayInFrontOfESP() throws {
        for encapsulated in [true, false] {
            let (outbound, inbound) = try saPair(suite: chacha, mode: .transport, ipv6Outer: true, encapsulated: encapsulated)
            // Hop-by-hop, destination options for the routing hops, routing, final destination options.
            let inner = ipv6Packet(headers: [(0, 0xa0), (60, 0xb0), (43, 0xc0), (60, 0xd0)])
            let sent = try outbound.encapsulate(inner)
            let carrier = encapsulated ? IPProtocolNumber.udp : IPProtocolNumber.esp
            XCTAssertEqual(sent.bytes[6], 0, "hop-by-hop first")
            XCTAssertEqual(Array(sent.bytes[40..<56]), Array(inner[40..<56]), "hop-by-hop and the first options unchanged")
            XCTAssertEqual(Array(sent.bytes[57..<64]), Array(inner[57..<64]))
            XCTAssertEqual(sent.bytes[56], carrier, "the routing header now names ESP (or its UDP)")
            XCTAssertEqual(sent.espOffset, 64 + (encapsulated ? 8 : 0))
            let outer = try IPPacketView(sent.bytes)
            XCTAssertEqual(outer.upperProtocol, carrier)
            XCTAssertEqual(outer.totalLength, sent.bytes.count)
            XCTAssertFalse(contains(Array(sent.bytes[64...]), [1, 4, 0xd0, 0xd0]))
            let opened = try inbound.decapsulate(sent.espBytes)
            XCTAssertEqual(opened[6], 60)
            XCTAssertEqual(Array(opened[40...]), Array(inner[64...]), "only what ESP protected is rebuilt")
        }
    }

    func testFragmentsAreRefusedInTransportModeButTunnelled() throws {
        let (transport, _) = try saPair(suite: gcm128, mode: .transport, ipv6Outer: true)
        var fragment = ipv6Packet(headers: [(44, 0)])
        fragment[40 + 2] = 0
        fragment[40 + 3] = 1  // offset 0, more fragments
        XCTAssertThrowsError(try transport.encapsulate(fragment)) { XCTAssertEqual($0 as? ESPDropReason, .fragmentInTransportMode) }
        let (tunnel, tunnelIn) = try saPair(suite: gcm128, mode: .tunnel, ipv6Outer: true)
        XCTAssertEqual(try tunnelIn.decapsulate(try tunnel.encapsulate(fragment).espBytes), fragment)

        let (transport4, _) = try saPair(suite: gcm128, mode: .transport)
        var fragment4 = udpPacket(payloadLength: 100)
        fragment4[6] = 0x20  // more fragments
        XCTAssertThrowsError(try transport4.encapsulate(fragment4)) { XCTAssertEqual($0 as? ESPDropReason, .fragmentInTransportMode) }
        var dontFragment = udpPacket(payloadLength: 100)
        dontFragment[6] = 0x40  // DF alone is a whole datagram
        XCTAssertNoThrow(try transport4.encapsulate(dontFragment))
    }

    func testHopByHopHeadersCannotRideInAnIPv4OuterHeader() throws {
        let (outbound, _) = try saPair(suite: gcm128, mode: .transport, ipv6Outer: false)
        XCTAssertThrowsError(try outbound.encapsulate(ipv6Packet(headers: [(0, 0xa0)]))) {
            XCTAssertEqual($0 as? ESPDropReason, .badInnerPacket)
        }
    }

    private func contains(_ bytes: [UInt8], _ needle: [UInt8]) -> Bool {
        guard bytes.count >= needle.count else { return false }
        return (0...(bytes.count - needle.count)).contains { Array(bytes[$0..<($0 + needle.count)]) == needle }
    }
}

extension TransportModeExtensionHeaderTests {
    func testIPv4OptionsStayInTheHeaderInFrontOfESP() throws {
        for encapsulated in [true, false] {
            let (outbound, inbound) = try saPair(suite: gcm128, mode: .transport, ipv6Outer: false, encapsulated: encapsulated)
            // A UDP packet with a Router Alert option (RFC 2113): header length 24.
            let plain = udpPacket(payloadLength: 40)
            var packet: [UInt8] = []
            IPHeaderBuilder.appendIPv4(
                to: &packet, source: Array(plain[12..<16]), destination: Array(plain[16..<20]),
                protocolNumber: IPProtocolNumber.udp, payloadLength: plain.count - 20, options: [0x94, 0x04, 0x00, 0x00])
            packet += plain[20...]
            XCTAssertEqual(packet[0], 0x46)
            let sent = try outbound.encapsulate(packet)
            XCTAssertEqual(sent.bytes[0], 0x46, "the outer header carries the option")
            XCTAssertEqual(Array(sent.bytes[20..<24]), [0x94, 0x04, 0x00, 0x00])
            XCTAssertEqual(InternetChecksum.finish(InternetChecksum.add(sent.bytes[0..<24])), 0, "header checksum over the options")
            XCTAssertEqual(sent.espOffset, 24 + (encapsulated ? 8 : 0))
            let outer = try IPPacketView(sent.bytes)
            XCTAssertEqual(outer.totalLength, sent.bytes.count)
            let opened = try inbound.decapsulate(sent.espBytes)
            XCTAssertEqual(Array(opened[20...]), Array(packet[24...]), "the UDP datagram comes back whole")
        }
    }
}
