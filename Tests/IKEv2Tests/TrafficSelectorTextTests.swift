import XCTest

@testable import IKEv2

/// The strongSwan-like text form of traffic selectors: read from configuration, written in logs and events.
final class TrafficSelectorTextTests: XCTestCase {
    func testPrefixesProtocolsAndPortsAreRead() throws {
        let cases: [(String, UInt8, UInt16, UInt16, String)] = [
            ("10.0.0.0/24", 0, 0, 65535, "10.0.0.0/24"),
            ("2001:db8::1", 0, 0, 65535, "2001:db8::1/128"),
            ("192.0.2.1/32[tcp]", 6, 0, 65535, "192.0.2.1/32[tcp]"),
            ("192.0.2.1[tcp/443]", 6, 443, 443, "192.0.2.1/32[tcp/443]"),
            ("192.0.2.1[UDP/1000-2000]", 17, 1000, 2000, "192.0.2.1/32[udp/1000-2000]"),
            ("192.0.2.1[udp/%any]", 17, 0, 65535, "192.0.2.1/32[udp]"),
            ("2001:db8::/64[ipv6-icmp]", 58, 0, 65535, "2001:db8::/64[icmpv6]"),
            ("192.0.2.1[47]", 47, 0, 65535, "192.0.2.1/32[47]"),
            ("192.0.2.1[%any]", 0, 0, 65535, "192.0.2.1/32"),
            ("192.0.2.1[sctp/9]", 132, 9, 9, "192.0.2.1/32[sctp/9]"),
            // ICMP: type in the high octet, code in the low one; strongSwan's notation.
            ("192.0.2.1[icmp/8]", 1, 0x0800, 0x0800, "192.0.2.1/32[icmp/8]"),
            ("192.0.2.1[icmp/3(4)]", 1, 0x0304, 0x0304, "192.0.2.1/32[icmp/3(4)]"),
            ("192.0.2.1[icmp/3-3(255)]", 1, 0x0300, 0x03ff, "192.0.2.1/32[icmp/3-3(255)]"),
            ("192.0.2.1[icmp/0-8(255)]", 1, 0x0000, 0x08ff, "192.0.2.1/32[icmp/0-8(255)]"),
            ("192.0.2.1[icmp/772]", 1, 772, 772, "192.0.2.1/32[icmp/3(4)]"),
            ("192.0.2.1[icmp/0(5)]", 1, 5, 5, "192.0.2.1/32[icmp/0(5)]"),
            ("2001:db8::1[ipv6-icmp/128]", 58, 0x8000, 0x8000, "2001:db8::1/128[icmpv6/128]")
        ]
        for (text, proto, low, high, written) in cases {
            let selector = try TrafficSelector(text: text)
            XCTAssertEqual(selector.ipProtocol, proto, text)
            XCTAssertEqual(selector.startPort, low, text)
            XCTAssertEqual(selector.endPort, high, text)
            XCTAssertEqual(selector.description, written, text)
            // What is written reads back as the same selector.
            XCTAssertEqual(try TrafficSelector(text: written), selector, written)
        }
    }

    func testEveryICMPTypeAndCodeReadsBackAsWritten() throws {
        for value in UInt16(0)...UInt16.max {
            let selector = TrafficSelector(
                ipProtocol: 1, startPort: value, endPort: value, startAddress: IPAddress("192.0.2.1")!, endAddress: IPAddress("192.0.2.1")!)
            XCTAssertEqual(try TrafficSelector(text: selector.description), selector, selector.description)
        }
    }

    /// The description names a prefix exactly when the range is one: checked against the search over every
    /// prefix length the range could have, on random ranges of both families.
    func testARangeIsWrittenAsAPrefixExactlyWhenItIsOne() {
        var generator = SystemRandomNumberGenerator()
        func slowPrefix(_ ts: TrafficSelector) -> Int? {
            (0...(ts.startAddress.bytes.count * 8)).first { ts.startAddress.range(prefixLength: $0) == (ts.startAddress, ts.endAddress) }
        }
        for index in 0..<4000 {
            let octets = index % 2 == 0 ? 4 : 16
            let base = IPAddress(bytes: (0..<octets).map { _ in UInt8.random(in: 0...255, using: &generator) })!
            let ts: TrafficSelector
            switch index % 4 {
            case 0, 1:  // a prefix of a random length
                let (low, high) = base.range(prefixLength: Int.random(in: 0...(octets * 8), using: &generator))
                ts = TrafficSelector(startAddress: low, endAddress: high)
            case 2:  // a prefix's end moved by one bit: never a prefix unless it happens to make one
                var (low, high) = base.range(prefixLength: Int.random(in: 0...(octets * 8), using: &generator))
                var bytes = high.bytes
                bytes[Int.random(in: 0..<octets, using: &generator)] ^= 1 << UInt8.random(in: 0...7, using: &generator)
                high = IPAddress(bytes: bytes)!
                ts = TrafficSelector(startAddress: low, endAddress: high)
            default:  // any two addresses
                ts = TrafficSelector(
                    startAddress: base, endAddress: IPAddress(bytes: (0..<octets).map { _ in UInt8.random(in: 0...255, using: &generator) })!)
            }
            XCTAssertEqual(ts.prefixLength, slowPrefix(ts), "\(ts.startAddress)..\(ts.endAddress)")
        }
        XCTAssertEqual(TrafficSelector(cidr: "0.0.0.0/0")!.description, "0.0.0.0/0")
        XCTAssertEqual(TrafficSelector(cidr: "::/0")!.description, "::/0")
        XCTAssertEqual(TrafficSelector(cidr: "2001:db8::1/128")!.description, "2001:db8::1/128")
        XCTAssertEqual(TrafficSelector(startAddress: IPAddress("10.0.0.0")!, endAddress: IPAddress("10.0.0.5")!).description, "10.0.0.0..10.0.0.5")
    }

    func testGarbageIsRefusedWithTheReason() {
        let cases: [(String, String)] = [
            ("10.0.0/24", "'10.0.0/24' is not a prefix"),
            ("10.0.0.1[tcp", "a protocol selector ends with ']'"),
            ("10.0.0.1[gre]", "protocol 'gre' is not tcp, udp"),
            ("10.0.0.1[tcp/http]", "port 'http' is not a number or a range"),
            ("10.0.0.1[tcp/2000-1000]", "is not a number or a range"),
            ("10.0.0.1[tcp/70000]", "is not a number or a range"),
            ("10.0.0.1[icmp/echo]", "'echo' is not an ICMP type, type(code) or a range of them"),
            ("10.0.0.1[icmp/3(256)]", "is not an ICMP type"),
            ("10.0.0.1[icmp/8-3]", "is not an ICMP type"),
            ("10.0.0.1[icmp/3(4]", "is not an ICMP type"),
            ("10.0.0.1[any/80]", "ports apply to tcp, udp, sctp and udplite, types to icmp and icmpv6 only"),
            ("10.0.0.1[47/80]", "ports apply to tcp, udp, sctp and udplite"),
            ("10.0.0.1[256]", "is not tcp, udp")
        ]
        for (text, reason) in cases {
            XCTAssertThrowsError(try TrafficSelector(text: text)) { error in
                XCTAssertTrue("\(error)".contains(reason), "\(text): \(error)")
            }
        }
    }
}
