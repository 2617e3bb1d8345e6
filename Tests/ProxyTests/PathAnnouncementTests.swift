import IKEv2
import Packets
import XCTest

@testable import Proxy

/// The frames a daemon taking over sends so that switches learn the new path: for each known host, from its MAC,
/// out of the port facing the other segment.
final class PathAnnouncementTests: XCTestCase {
    let terminalMAC = MACAddress([0x02, 0, 0, 0, 0, 0x11])
    let peerMAC = MACAddress([0x02, 0, 0, 0, 0, 0x22])

    func testATerminalIsAnnouncedOnTheInternetSegmentWithAGratuitousARPFromItsMAC() throws {
        let frames = PathAnnouncement.frames(for: [IPAddress("192.0.2.10")!: Station(mac: terminalMAC, vlanIDs: [7], side: .terminal)])
        XCTAssertEqual(frames.count, 1)
        XCTAssertEqual(frames[0].side, .internet)
        let ethernet = try EthernetFrameView(frames[0].frame)
        XCTAssertEqual(ethernet.destination, .broadcast)
        XCTAssertEqual(ethernet.source, terminalMAC, "the switch learns the terminal's MAC on the new port")
        XCTAssertEqual(ethernet.vlanIDs, [7])
        XCTAssertEqual(ethernet.etherType, EtherType.arp)
        let arp = try ARPPacket(frames[0].frame[ethernet.payloadOffset...])
        XCTAssertEqual(arp.operation, .request, "RFC 5227: a gratuitous ARP is a request for one's own address")
        XCTAssertEqual(arp.senderIP, [192, 0, 2, 10])
        XCTAssertEqual(arp.targetIP, [192, 0, 2, 10])
        XCTAssertEqual(arp.senderMAC, terminalMAC)
    }

    func testAPeerIsAnnouncedOnTheTerminalSegmentWithAnUnsolicitedNeighbourAdvertisement() throws {
        let address = IPAddress("2001:db8::1")!
        let frames = PathAnnouncement.frames(for: [address: Station(mac: peerMAC, vlanIDs: [], side: .internet)])
        XCTAssertEqual(frames.count, 1)
        XCTAssertEqual(frames[0].side, .terminal)
        let ethernet = try EthernetFrameView(frames[0].frame)
        XCTAssertEqual(ethernet.destination, MACAddress([0x33, 0x33, 0, 0, 0, 1]), "all nodes")
        XCTAssertEqual(ethernet.source, peerMAC)
        let packet = Array(frames[0].frame[ethernet.payloadOffset...])
        XCTAssertEqual(packet[6], IPProtocolNumber.icmpv6)
        XCTAssertEqual(packet[7], 255, "RFC 4861: hop limit 255")
        XCTAssertEqual(Array(packet[8..<24]), address.bytes)
        XCTAssertEqual(Array(packet[24..<40]), [0xff, 0x02] + Array(repeating: 0, count: 13) + [1])
        let icmp = Array(packet[40...])
        XCTAssertEqual(icmp[0], 136, "neighbour advertisement")
        XCTAssertEqual(icmp[4], 0x20, "override set, solicited not (RFC 4861 section 7.2.6)")
        XCTAssertEqual(Array(icmp[8..<24]), address.bytes)
        XCTAssertEqual(Array(icmp[24..<32]), [2, 1] + peerMAC.octets, "target link-layer address option")
        // The ICMPv6 checksum over the pseudo-header (RFC 8200 section 8.1), summed here independently: it comes to 0xffff.
        var words = Array(packet[8..<40]) + [0, 0, 0, UInt8(icmp.count >> 8), UInt8(icmp.count & 0xff)].suffix(4) + [0, 0, 0, 58] + icmp
        if words.count % 2 == 1 { words.append(0) }
        var sum = 0
        for index in stride(from: 0, to: words.count, by: 2) { sum += Int(words[index]) << 8 | Int(words[index + 1]) }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        XCTAssertEqual(sum, 0xffff)
    }

    func testEveryStationIsAnnouncedOnceInAStableOrder() {
        let stations = [
            IPAddress("192.0.2.11")!: Station(mac: terminalMAC, vlanIDs: [], side: .terminal),
            IPAddress("192.0.2.1")!: Station(mac: peerMAC, vlanIDs: [], side: .internet),
            IPAddress("2001:db8::11")!: Station(mac: terminalMAC, vlanIDs: [], side: .terminal)
        ]
        let frames = PathAnnouncement.frames(for: stations)
        XCTAssertEqual(frames.map(\.side), [.terminal, .internet, .internet])
        XCTAssertEqual(PathAnnouncement.frames(for: stations).map(\.frame), frames.map(\.frame))
    }
}
