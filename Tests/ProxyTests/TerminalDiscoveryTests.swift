import IKEv2
import Packets
import XCTest

@testable import Proxy

final class TerminalDiscoveryTests: XCTestCase {
    let mac = MACAddress([2, 0, 0, 0, 0, 0x11]), other = MACAddress([2, 0, 0, 0, 0, 0x99])

    func frame(_ source: MACAddress, _ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        EthernetFrameView.build(destination: .broadcast, source: source, etherType: type, payload: payload)
    }

    func testARPNeighbourDiscoveryAndDHCPTeachAddresses() {
        var discovery = TerminalDiscovery(prefixes: [AddressPrefix("10.0.0.0/24")!, AddressPrefix("2001:db8:a::/64")!])
        let arp = ARPPacket(
            operation: .request, senderMAC: mac, senderIP: [10, 0, 0, 11], targetMAC: MACAddress([0, 0, 0, 0, 0, 0]), targetIP: [10, 0, 0, 1])
        XCTAssertEqual(
            discovery.observe(frame: frame(mac, EtherType.arp, arp.encode()), fromTerminalSide: true, now: 1),
            "discovered 10.0.0.11 at 02:00:00:00:00:11 (arp): inside the terminal prefixes")
        XCTAssertNil(discovery.observe(frame: frame(mac, EtherType.arp, arp.encode()), fromTerminalSide: true, now: 2), "nothing new")
        let probe = ARPPacket(
            operation: .request, senderMAC: other, senderIP: [0, 0, 0, 0], targetMAC: MACAddress([0, 0, 0, 0, 0, 0]), targetIP: [10, 0, 0, 50])
        XCTAssertNil(discovery.observe(frame: frame(other, EtherType.arp, probe.encode()), fromTerminalSide: true, now: 2), "probes teach nothing")

        // Neighbour solicitation from 2001:db8:a::11.
        var ns: [UInt8] = []
        let source6 = IPAddress("2001:db8:a::11")!
        IPHeaderBuilder.appendIPv6(
            to: &ns, source: source6.bytes, destination: IPAddress("ff02::1:ff00:1")!.bytes, nextHeader: IPProtocolNumber.icmpv6, payloadLength: 24)
        ns += [135, 0, 0, 0, 0, 0, 0, 0] + IPAddress("2001:db8:a::1")!.bytes
        discovery.observe(frame: frame(mac, EtherType.ipv6, ns), fromTerminalSide: true, now: 3)
        XCTAssertEqual(discovery.hosts[mac]?.ipv6, [source6])

        // A DHCPACK giving 192.168.7.20 to the other host: outside the prefixes, so pending.
        var dhcp = [UInt8](repeating: 0, count: 240)
        dhcp[0] = 2
        dhcp[1] = 1
        dhcp[2] = 6
        dhcp[16..<20] = [192, 168, 7, 20]
        dhcp[28..<34] = ArraySlice(other.octets)
        dhcp[236..<240] = [99, 130, 83, 99]
        dhcp += [53, 1, 5, 255]
        let packet = IPHeaderBuilder.udpPacket(
            source: [192, 168, 7, 1], destination: [255, 255, 255, 255], sourcePort: 67, destinationPort: 68, payload: dhcp)
        XCTAssertEqual(
            discovery.observe(frame: frame(MACAddress([2, 0, 0, 0, 0, 1]), EtherType.ipv4, packet), fromTerminalSide: false, now: 4),
            "discovered 192.168.7.20 at 02:00:00:00:00:99 (dhcp): pending approval")
        XCTAssertEqual(discovery.registered.map(\.mac), [mac])
        XCTAssertEqual(discovery.pending.map(\.mac), [other])
    }

    /// A DHCPACK frame from a server leasing `address` to `client`.
    func dhcpAck(_ client: MACAddress, _ address: [UInt8]) -> [UInt8] {
        var dhcp = [UInt8](repeating: 0, count: 240)
        dhcp[0] = 2
        dhcp[1] = 1
        dhcp[2] = 6
        dhcp[16..<20] = ArraySlice(address)
        dhcp[28..<34] = ArraySlice(client.octets)
        dhcp[236..<240] = [99, 130, 83, 99]
        dhcp += [53, 1, 5, 255]
        let packet = IPHeaderBuilder.udpPacket(
            source: [10, 0, 0, 1], destination: [255, 255, 255, 255], sourcePort: 67, destinationPort: 68, payload: dhcp)
        return frame(MACAddress([2, 0, 0, 0, 0, 1]), EtherType.ipv4, packet)
    }

    /// A lease moves an address: the renumbered host loses its old one, and a host whose address is leased to
    /// another loses it; ARP alone never takes an address away.
    func testADHCPLeaseMovesAnAddress() {
        var discovery = TerminalDiscovery(prefixes: [AddressPrefix("10.0.0.0/24")!])
        discovery.observe(frame: dhcpAck(mac, [10, 0, 0, 5]), fromTerminalSide: true, now: 1)
        XCTAssertTrue(discovery.takeReleased().isEmpty)
        XCTAssertEqual(
            discovery.observe(frame: dhcpAck(mac, [10, 0, 0, 9]), fromTerminalSide: true, now: 2),
            "02:00:00:00:00:11 leased 10.0.0.9 by DHCP, replacing 10.0.0.5")
        XCTAssertEqual(discovery.hosts[mac]?.ipv4, [IPAddress("10.0.0.9")!])
        XCTAssertEqual(discovery.takeReleased().map { "\($0.mac) \($0.address)" }, ["02:00:00:00:00:11 10.0.0.5"])
        XCTAssertTrue(discovery.takeReleased().isEmpty, "taken once")
        // 10.0.0.9 leased to the other host: the first one loses it.
        XCTAssertEqual(
            discovery.observe(frame: dhcpAck(other, [10, 0, 0, 9]), fromTerminalSide: true, now: 3),
            "02:00:00:00:00:99 leased 10.0.0.9 by DHCP, which 02:00:00:00:00:11 had")
        XCTAssertEqual(discovery.hosts[mac]?.ipv4, [])
        XCTAssertEqual(discovery.hosts[other]?.ipv4, [IPAddress("10.0.0.9")!])
        XCTAssertEqual(discovery.takeReleased().map { "\($0.mac) \($0.address)" }, ["02:00:00:00:00:11 10.0.0.9"])
        // ARP from the first host for another address adds it, and takes nothing.
        let arp = ARPPacket(
            operation: .request, senderMAC: mac, senderIP: [10, 0, 0, 7], targetMAC: MACAddress([0, 0, 0, 0, 0, 0]), targetIP: [10, 0, 0, 1])
        discovery.observe(frame: frame(mac, EtherType.arp, arp.encode()), fromTerminalSide: true, now: 4)
        XCTAssertEqual(discovery.hosts[other]?.ipv4, [IPAddress("10.0.0.9")!])
        XCTAssertTrue(discovery.takeReleased().isEmpty)
    }

    func testGarbageFramesTeachNothingAndNeverCrash() {
        var discovery = TerminalDiscovery(prefixes: [AddressPrefix("10.0.0.0/24")!])
        var state: UInt64 = 3
        for _ in 0..<3000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let length = Int(state % 300)
            var bytes = (0..<length).map { UInt8(truncatingIfNeeded: state >> UInt64($0 % 57) &+ UInt64($0)) }
            if bytes.count > 14 {
                bytes[12] = [0x08, 0x86, 0x08][Int(state % 3)]
                bytes[13] = [0x06, 0xdd, 0x00][Int(state % 3)]
            }
            discovery.observe(frame: bytes, fromTerminalSide: true, now: 0)
        }
        XCTAssertTrue(discovery.hosts.values.allSatisfy { !$0.mac.isMulticast })
        // A UDP 67 -> 68 header cut short after the ports must not be read past its end.
        var short = IPHeaderBuilder.udpPacket(
            source: [192, 168, 7, 1], destination: [255, 255, 255, 255], sourcePort: 67, destinationPort: 68, payload: [])
        short = Array(short.prefix(24))
        short[2] = 0
        short[3] = 24
        XCTAssertNil(discovery.observe(frame: frame(mac, EtherType.ipv4, short), fromTerminalSide: false, now: 0))
    }
}
