import IKEv2
import Packets
import XCTest

@testable import Proxy

final class PolicyTableTests: XCTestCase {
    func prefix(_ text: String) -> AddressPrefix { AddressPrefix(text)! }
    func key(_ source: String, _ destination: String, proto: UInt8 = 6, sport: UInt16 = 40000, dport: UInt16 = 80) -> FlowKey {
        let s = prefix(source)
        let d = prefix(destination)
        return FlowKey(isIPv6: s.isIPv6, source: s.low, destination: d.low, ipProtocol: proto, sourcePort: sport, destinationPort: dport)
    }

    func testFirstMatchWinsAcrossSelectorsAndFamilies() {
        let table = PolicyTable(
            rules: [
                PolicyRule(source: prefix("10.0.0.5/32"), destination: prefix("0.0.0.0/0"), action: .discard),
                PolicyRule(
                    source: prefix("10.0.0.0/24"), destination: prefix("198.51.100.0/24"), ipProtocol: 6,
                    destinationPorts: PortRange(80, 80), action: .bypass),
                PolicyRule(source: prefix("10.0.0.0/24"), destination: prefix("198.51.100.0/24"), action: .protect(profile: "gw")),
                PolicyRule(
                    source: prefix("2001:db8:2::/64"), destination: prefix("2001:db8:1::1"), ipProtocol: 58,
                    sourcePorts: PortRange(128, 128), action: .bypass),
                PolicyRule(source: prefix("::/0"), destination: prefix("2001:db8:1::/48"), action: .protect(profile: "v6"))
            ], defaultAction: .discard)
        XCTAssertEqual(table.action(for: key("10.0.0.5", "198.51.100.7")), .discard)
        XCTAssertEqual(table.action(for: key("10.0.0.9", "198.51.100.7")), .bypass)
        XCTAssertEqual(table.action(for: key("10.0.0.9", "198.51.100.7", dport: 443)), .protect(profile: "gw"))
        XCTAssertEqual(table.action(for: key("10.0.0.9", "198.51.100.7", proto: 17, dport: 80)), .protect(profile: "gw"))
        XCTAssertEqual(table.action(for: key("10.9.0.9", "198.51.100.7")), .discard, "default")
        XCTAssertEqual(table.action(for: key("2001:db8:2::5", "2001:db8:1::1", proto: 58, sport: 128, dport: 0)), .bypass, "ICMPv6 echo request")
        XCTAssertEqual(table.action(for: key("2001:db8:2::5", "2001:db8:1::1", proto: 58, sport: 129, dport: 0)), .protect(profile: "v6"))
        XCTAssertEqual(table.action(for: key("2001:db8:9::5", "2001:db8:1:ffff::1")), .protect(profile: "v6"))
        XCTAssertEqual(table.action(for: key("2001:db8:9::5", "2001:db8:2::1")), .discard)
    }

    /// The index must agree with the plain first-match scan on any table and any packet.
    func testIndexAgreesWithLinearScanOnRandomTables() {
        var state: UInt64 = 42
        func next(_ bound: UInt64) -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (state >> 33) % bound
        }
        func randomPrefix(ipv6: Bool) -> AddressPrefix {
            if ipv6 {
                let length = [0, 32, 48, 64, 128][Int(next(5))]
                return prefix("2001:db8:\(next(4)):\(next(3))::\(next(5))/\(length)")
            }
            let length = [0, 8, 16, 24, 30, 32][Int(next(6))]
            return prefix("10.\(next(3)).\(next(4)).\(next(8))/\(length)")
        }
        for round in 0..<30 {
            let ipv6Share = round % 3
            let rules = (0..<Int(1 + next(200))).map { _ -> PolicyRule in
                let v6 = next(3) < UInt64(ipv6Share)
                let proto: UInt8? = [nil, 6, 17, 1][Int(next(4))]
                let lowPort = UInt16(next(100))
                return PolicyRule(
                    source: randomPrefix(ipv6: v6), destination: randomPrefix(ipv6: v6), ipProtocol: proto,
                    sourcePorts: next(2) == 0 ? .any : PortRange(lowPort, lowPort + UInt16(next(50))),
                    destinationPorts: next(2) == 0 ? .any : PortRange(lowPort, lowPort + UInt16(next(20))),
                    action: [.bypass, .discard, .protect(profile: "p")][Int(next(3))])
            }
            let table = PolicyTable(rules: rules)
            for _ in 0..<500 {
                let v6 = next(3) < UInt64(ipv6Share)
                let source = randomPrefix(ipv6: v6)
                let destination = randomPrefix(ipv6: v6)
                let flow = FlowKey(
                    isIPv6: v6, source: source.low, destination: destination.high, ipProtocol: [6, 17, 1, 50][Int(next(4))],
                    sourcePort: UInt16(next(160)), destinationPort: UInt16(next(160)))
                XCTAssertEqual(table.lookup(flow)?.index, rules.firstIndex { $0.matches(flow) }, "round \(round)")
            }
        }
    }

    func testProtectRulesGiveTheChildSASelectors() {
        let terminals = AddressPrefix("10.0.0.0/24")!
        let peer = AddressPrefix("198.51.100.1")!
        let t = IPAddress("10.0.0.5")!
        let p = IPAddress("198.51.100.1")!
        func selectors(_ rules: [PolicyRule], default action: PolicyAction = .bypass) -> String {
            let s = PolicyTable(rules: rules, defaultAction: action).protectedSelectors(terminal: t, peer: p, profile: "gw")
            return s.local.map(\.description).joined(separator: " ") + " <-> " + s.remote.map(\.description).joined(separator: " ")
        }
        // One rule for TCP to port 443: the SA covers that and nothing else.
        XCTAssertEqual(
            selectors([
                PolicyRule(
                    source: terminals, destination: peer, ipProtocol: 6, destinationPorts: PortRange(443, 443),
                    action: .protect(profile: "gw"))
            ]),
            "10.0.0.5/32[tcp] <-> 198.51.100.1/32[tcp/443]")
        // Two rules of the profile: both flows; a rule of another profile, a bypass rule and a rule for another peer are not counted.
        XCTAssertEqual(
            selectors([
                PolicyRule(
                    source: terminals, destination: peer, ipProtocol: 17, sourcePorts: PortRange(5000, 5999), destinationPorts: PortRange(53, 53),
                    action: .protect(profile: "gw")),
                PolicyRule(source: terminals, destination: peer, ipProtocol: 1, sourcePorts: PortRange(8, 8), action: .protect(profile: "gw")),
                PolicyRule(source: terminals, destination: peer, ipProtocol: 6, action: .protect(profile: "other")),
                PolicyRule(source: terminals, destination: peer, ipProtocol: 6, action: .bypass),
                PolicyRule(source: terminals, destination: AddressPrefix("198.51.100.2")!, action: .protect(profile: "gw"))
            ]), "10.0.0.5/32[udp/5000-5999] 10.0.0.5/32[icmp/8-8(255)] <-> 198.51.100.1/32[udp/53] 198.51.100.1/32[icmp/8-8(255)]")
        // A rule for any protocol, or only the default action: host to host.
        XCTAssertEqual(
            selectors([
                PolicyRule(source: terminals, destination: peer, ipProtocol: 6, action: .protect(profile: "gw")),
                PolicyRule(source: terminals, destination: peer, action: .protect(profile: "gw"))
            ]),
            "10.0.0.5/32 <-> 198.51.100.1/32")
        XCTAssertEqual(selectors([], default: .protect(profile: "gw")), "10.0.0.5/32 <-> 198.51.100.1/32")
        // IPv6 rules do not apply to an IPv4 pair.
        XCTAssertEqual(
            selectors([
                PolicyRule(
                    source: AddressPrefix("2001:db8::/64")!, destination: AddressPrefix("2001:db8::1")!, ipProtocol: 6,
                    action: .protect(profile: "gw"))
            ]), "10.0.0.5/32 <-> 198.51.100.1/32")
    }

    func testPrefixAndPortParsing() {
        XCTAssertNil(AddressPrefix("10.0.0.0/33"))
        XCTAssertNil(AddressPrefix("nonsense"))
        XCTAssertEqual(AddressPrefix("10.0.0.1")?.text, "10.0.0.1/32")
        XCTAssertEqual(PortRange("1000-2000"), PortRange(1000, 2000))
        XCTAssertEqual(PortRange("any"), .any)
        XCTAssertNil(PortRange("2000-1000"))
        XCTAssertNil(PortRange("70000"))
    }
}
