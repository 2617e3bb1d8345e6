import XCTest

@testable import Packets

final class PacketsTests: XCTestCase {
    let a = MACAddress([2, 0, 0, 0, 0, 1]), b = MACAddress([2, 0, 0, 0, 0, 2])
    let v4a: [UInt8] = [192, 0, 2, 1], v4b: [UInt8] = [192, 0, 2, 2]
    let v6a: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1]
    let v6b: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [2]

    func testEthernetWithAndWithoutVLANTagsRoundTrips() throws {
        for tags in [[], [100], [10, 200]] as [[UInt16]] {
            let frame = EthernetFrameView.build(destination: a, source: b, vlanIDs: tags, etherType: EtherType.ipv4, payload: [1, 2, 3])
            let view = try EthernetFrameView(frame)
            XCTAssertEqual(view.destination, a)
            XCTAssertEqual(view.source, b)
            XCTAssertEqual(view.vlanIDs, tags)
            XCTAssertEqual(view.etherType, EtherType.ipv4)
            XCTAssertEqual(Array(frame[view.payloadOffset...]), [1, 2, 3])
        }
        XCTAssertEqual(MACAddress.broadcast.description, "ff:ff:ff:ff:ff:ff")
        XCTAssertTrue(MACAddress.broadcast.isMulticast)
    }

    func testARPRoundTrips() throws {
        let arp = ARPPacket(operation: .request, senderMAC: a, senderIP: v4a, targetMAC: MACAddress([0, 0, 0, 0, 0, 0]), targetIP: v4b)
        XCTAssertEqual(try ARPPacket(arp.encode()[...]), arp)
        XCTAssertThrowsError(try ARPPacket(Array(arp.encode().prefix(27))[...]))
    }

    func testUDPPacketsOfBothFamiliesHaveValidChecksums() throws {
        for (source, destination) in [(v4a, v4b), (v6a, v6b)] {
            let packet = IPHeaderBuilder.udpPacket(
                source: source, destination: destination, sourcePort: 500, destinationPort: 4500,
                payload: Array("ike".utf8))
            let view = try IPPacketView(packet)
            XCTAssertTrue(view.headerChecksumIsValid(packet))
            XCTAssertTrue(TransportChecksum.isValid(packet: packet, view: view))
            XCTAssertEqual(try TransportHeader(packet: packet, view: view), .udp(sourcePort: 500, destinationPort: 4500, length: 11))
            var corrupted = packet
            corrupted[corrupted.count - 1] ^= 0xff
            XCTAssertFalse(TransportChecksum.isValid(packet: corrupted, view: view))
        }
    }

    func testTCPAndICMPChecksumsFillAndVerify() throws {
        for (proto, header) in [
            (IPProtocolNumber.tcp, [0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0] as [UInt8]),
            (IPProtocolNumber.icmp, [8, 0, 0, 0, 0x12, 0x34, 0, 1])
        ] {
            var packet: [UInt8] = []
            IPHeaderBuilder.appendIPv4(to: &packet, source: v4a, destination: v4b, protocolNumber: proto, payloadLength: header.count + 5)
            packet += header + [1, 2, 3, 4, 5]
            let view = try IPPacketView(packet)
            XCTAssertFalse(TransportChecksum.isValid(packet: packet, view: view))
            TransportChecksum.fill(packet: &packet, view: view)
            XCTAssertTrue(TransportChecksum.isValid(packet: packet, view: view))
        }
        var icmpv6: [UInt8] = []
        IPHeaderBuilder.appendIPv6(to: &icmpv6, source: v6a, destination: v6b, nextHeader: IPProtocolNumber.icmpv6, payloadLength: 8)
        icmpv6 += [128, 0, 0, 0, 0, 1, 0, 1]
        let view = try IPPacketView(icmpv6)
        TransportChecksum.fill(packet: &icmpv6, view: view)
        XCTAssertTrue(TransportChecksum.isValid(packet: icmpv6, view: view))
        XCTAssertEqual(try TransportHeader(packet: icmpv6, view: view), .icmpv6(type: 128, code: 0))
    }

    func testIPv6ExtensionHeadersAreWalkedAndFragmentsRecognised() throws {
        // Hop-by-hop (8 octets), then a fragment header (offset 0: first fragment), then UDP.
        let udp: [UInt8] = [0x01, 0xf4, 0x11, 0x94, 0, 8, 0, 0]
        var first: [UInt8] = []
        IPHeaderBuilder.appendIPv6(to: &first, source: v6a, destination: v6b, nextHeader: 0, payloadLength: 8 + 8 + udp.count)
        first += [44, 0, 1, 4, 0, 0, 0, 0] + [IPProtocolNumber.udp, 0, 0, 1, 0, 0, 0, 7] + udp
        let view = try IPPacketView(first)
        XCTAssertEqual(view.upperProtocol, IPProtocolNumber.udp)
        XCTAssertEqual(view.upperOffset, 56)
        XCTAssertFalse(view.isLaterFragment)
        XCTAssertEqual(view.ports(in: first)?.destination, 4500)
        var later = first
        later[50] = 0
        later[51] = 0x08  // fragment offset 1 (8 octets)
        XCTAssertTrue(try IPPacketView(later).isLaterFragment)
        XCTAssertEqual(try TransportHeader(packet: later, view: IPPacketView(later)), .laterFragment(protocolNumber: IPProtocolNumber.udp))
        // IPv4 later fragment.
        var v4 = IPHeaderBuilder.udpPacket(source: v4a, destination: v4b, sourcePort: 1, destinationPort: 2, payload: [])
        v4[6] = 0
        v4[7] = 3
        XCTAssertTrue(try IPPacketView(v4).isLaterFragment)
        XCTAssertNil(try IPPacketView(v4).ports(in: v4))
    }

    func testEveryTruncationIsATypedErrorNeverACrash() {
        let frame = EthernetFrameView.build(
            destination: a, source: b, vlanIDs: [5], etherType: EtherType.ipv6,
            payload: IPHeaderBuilder.udpPacket(source: v6a, destination: v6b, sourcePort: 1, destinationPort: 2, payload: [9, 9]))
        for length in 0..<frame.count {
            let cut = Array(frame.prefix(length))
            if let view = try? EthernetFrameView(cut), let ip = try? IPPacketView(Array(cut[view.payloadOffset...])) {
                _ = try? TransportHeader(packet: Array(cut[view.payloadOffset...]), view: ip)
                XCTFail("a truncated packet parsed as whole at length \(length)")
            }
        }
        XCTAssertThrowsError(try IPPacketView([0x45] + Array(repeating: 0, count: 10)))
        XCTAssertThrowsError(try IPPacketView([0x75] + Array(repeating: 0, count: 40))) { XCTAssertEqual($0 as? IPPacketError, .unknownVersion(7)) }
        // Garbage of every length from a fixed generator.
        var state: UInt64 = 1
        for _ in 0..<2000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let bytes = (0..<Int(state % 90)).map { UInt8(truncatingIfNeeded: (state >> UInt64($0 % 56)) &+ UInt64($0)) }
            if let view = try? IPPacketView(bytes) {
                _ = try? TransportHeader(packet: bytes, view: view)
                _ = view.ports(in: bytes)
            }
            _ = try? EthernetFrameView(bytes)
            _ = try? ARPPacket(bytes[...])
        }
    }
}
