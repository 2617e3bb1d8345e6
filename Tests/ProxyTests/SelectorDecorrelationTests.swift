import ESP
import IKEv2
import XCTest

@testable import Proxy

/// The CHILD SA selectors the proxy derives from the policy: ICMP types and codes carried, earlier rules of
/// other actions cut out where selector lists can say it, and named where they cannot.
final class SelectorDecorrelationTests: XCTestCase {
    let terminals = AddressPrefix("10.0.0.0/24")!, peer = AddressPrefix("198.51.100.1")!
    let t = IPAddress("10.0.0.5")!, p = IPAddress("198.51.100.1")!

    func rule(_ proto: UInt8?, _ source: PortRange = .any, _ destination: PortRange = .any, _ action: PolicyAction) -> PolicyRule {
        PolicyRule(source: terminals, destination: peer, ipProtocol: proto, sourcePorts: source, destinationPorts: destination, action: action)
    }
    let gw = PolicyAction.protect(profile: "gw")

    func selectors(_ rules: [PolicyRule], default action: PolicyAction = .bypass) -> (String, [Int]) {
        let s = PolicyTable(rules: rules, defaultAction: action).protectedSelectors(terminal: t, peer: p, profile: "gw")
        return (s.local.map(\.description).joined(separator: " ") + " <-> " + s.remote.map(\.description).joined(separator: " "), s.stillCovered)
    }

    func testICMPTypesAndCodesAreCarried() {
        // Echo request and reply, any code: one range of type-and-code values on both sides.
        XCTAssertEqual(
            selectors([rule(1, PortRange(0, 8), .any, gw)]).0,
            "10.0.0.5/32[icmp/0-8(255)] <-> 198.51.100.1/32[icmp/0-8(255)]")
        // One type, some codes.
        XCTAssertEqual(selectors([rule(1, PortRange(3, 3), PortRange(0, 4), gw)]).0, "10.0.0.5/32[icmp/3-3(4)] <-> 198.51.100.1/32[icmp/3-3(4)]")
        // Several types, one code: a range per type (one range would take the codes of the types between).
        XCTAssertEqual(
            selectors([rule(1, PortRange(3, 4), PortRange(1, 1), gw)]).0,
            "10.0.0.5/32[icmp/3(1)] 10.0.0.5/32[icmp/4(1)] <-> 198.51.100.1/32[icmp/3(1)] 198.51.100.1/32[icmp/4(1)]")
        // Every type and code: the protocol only.
        XCTAssertEqual(selectors([rule(58, .any, .any, gw)]).0, "10.0.0.5/32[icmpv6] <-> 198.51.100.1/32[icmpv6]")
    }

    func testEarlierRulesAreCutOutWhereSelectorsCanSayIt() {
        // SSH in the clear before "protect TCP": the SA takes every other port of the peer.
        XCTAssertEqual(
            selectors([rule(6, .any, PortRange(22, 22), .bypass), rule(6, .any, .any, gw)]).0,
            "10.0.0.5/32[tcp] <-> 198.51.100.1/32[tcp/0-21] 198.51.100.1/32[tcp/23-65535]")
        XCTAssertEqual(selectors([rule(6, .any, PortRange(22, 22), .bypass), rule(6, .any, .any, gw)]).1, [])
        // Echo requests discarded before "protect ICMP": every other type.
        let icmp = selectors([rule(1, PortRange(8, 8), .any, .discard), rule(1, .any, .any, gw)])
        XCTAssertEqual(
            icmp.0, "10.0.0.5/32[icmp/0-7(255)] 10.0.0.5/32[icmp/9-255(255)] <-> 198.51.100.1/32[icmp/0-7(255)] 198.51.100.1/32[icmp/9-255(255)]")
        XCTAssertEqual(icmp.1, [])
        // A rule of another profile is cut out too; later rules and rules for other addresses are not.
        let mixed = selectors([
            PolicyRule(source: terminals, destination: AddressPrefix("198.51.100.2")!, ipProtocol: 17, action: .discard),
            rule(17, .any, PortRange(53, 53), .protect(profile: "dns")),
            rule(17, .any, .any, gw),
            rule(17, .any, PortRange(100, 200), .bypass)
        ])
        XCTAssertEqual(mixed.0, "10.0.0.5/32[udp] <-> 198.51.100.1/32[udp/0-52] 198.51.100.1/32[udp/54-65535]")
        XCTAssertEqual(mixed.1, [])
        // An earlier rule for every protocol and port leaves nothing of a later one but its own traffic,
        // with that rule named.
        let shadowed = selectors([rule(6, .any, .any, .bypass), rule(6, .any, PortRange(443, 443), gw)])
        XCTAssertEqual(shadowed.0, "10.0.0.5/32[tcp] <-> 198.51.100.1/32[tcp/443]")
        XCTAssertEqual(shadowed.1, [0])
        // ... and the profile protects nothing between the two: the proxy treats the pair as unprotected.
        func isShadowed(_ rules: [PolicyRule]) -> Bool {
            PolicyTable(rules: rules, defaultAction: .bypass).protectedSelectors(terminal: t, peer: p, profile: "gw").shadowed
        }
        XCTAssertTrue(isShadowed([rule(6, .any, .any, .bypass), rule(6, .any, PortRange(443, 443), gw)]))
        XCTAssertTrue(isShadowed([rule(nil, .any, .any, .bypass), rule(nil, .any, .any, gw)]))
        XCTAssertFalse(isShadowed([rule(6, .any, PortRange(22, 22), .bypass), rule(6, .any, .any, gw)]))
        XCTAssertFalse(isShadowed([rule(1, .any, .any, .bypass), rule(nil, .any, .any, gw)]), "inexpressible cuts leave traffic, not a shadow")
    }

    func testWhatSelectorsCannotSayIsNamed() {
        // One protocol out of every protocol: a selector names one or all.
        let icmpOut = selectors([rule(1, .any, .any, .bypass), rule(nil, .any, .any, gw)])
        XCTAssertEqual(icmpOut.0, "10.0.0.5/32 <-> 198.51.100.1/32")
        XCTAssertEqual(icmpOut.1, [0])
        // A port pair cut from both sides: the SA takes every local and remote pair, so it cannot leave one out.
        let pair = selectors([rule(6, PortRange(1000, 1000), PortRange(22, 22), .discard), rule(6, .any, .any, gw)])
        XCTAssertEqual(pair.1, [0])
        // The default action protects: every rule of the table comes first.
        let byDefault = selectors([rule(6, .any, PortRange(22, 22), .bypass)], default: gw)
        XCTAssertEqual(byDefault.0, "10.0.0.5/32 <-> 198.51.100.1/32")
        XCTAssertEqual(byDefault.1, [0])
        XCTAssertEqual(selectors([], default: gw).1, [])
    }

    /// On random tables: every packet the policy protects with the profile is inside the SA (the selectors
    /// never fall short), and a packet an earlier rule takes is inside it only when that rule is named.
    func testSelectorsAgreeWithThePolicyOnRandomTables() throws {
        var state: UInt64 = 7
        func next(_ bound: UInt64) -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (state >> 33) % bound
        }
        func ports() -> PortRange {
            if next(3) == 0 { return .any }
            let low = UInt16(next(12))
            return PortRange(low, low + UInt16(next(4)))
        }
        let suite = ChildCipherSuite(encryption: .aesGCM16(keyBits: 256), integrity: nil, group: nil, extendedSequenceNumbers: false)
        var reachedInto = 0
        var cutOut = 0
        for round in 0..<400 {
            let rules = (0..<Int(1 + next(5))).map { _ in
                rule([nil, 6, 17, 1, 47][Int(next(5))], ports(), ports(), [.bypass, .discard, gw, .protect(profile: "other")][Int(next(4))])
            }
            let table = PolicyTable(rules: rules, defaultAction: [.bypass, gw][Int(next(2))])
            // The proxy asks for these selectors only when the profile protects something between the two.
            guard table.defaultAction == gw || rules.contains(where: { $0.action == gw }) else { continue }
            let s = table.protectedSelectors(terminal: t, peer: p, profile: "gw")
            let sa = SecurityAssociationParameters(
                spi: ChildSPI(0x1000), direction: .outbound, suite: suite, encryptionKey: KeyMaterial([UInt8](repeating: 1, count: 32)),
                integrityKey: KeyMaterial([]), mode: .tunnel, tunnelSource: t, tunnelDestination: p, encapsulation: nil,
                sourceSelectors: s.local, destinationSelectors: s.remote)
            for proto: UInt8 in [6, 17, 1, 47] {
                let hasPorts = proto != 47
                for sport in hasPorts ? Array(UInt16(0)...UInt16(16)) : [0] {
                    for dport in hasPorts ? Array(UInt16(0)...UInt16(16)) : [0] {
                        let key = FlowKey(
                            isIPv6: false, source: AddressKey(t.bytes), destination: AddressKey(p.bytes), ipProtocol: proto,
                            sourcePort: sport, destinationPort: dport)
                        let covered = sa.covers(
                            source: t.bytes[...], destination: p.bytes[...], ipProtocol: proto,
                            ports: hasPorts ? (sport, dport) : nil)
                        let first = table.lookup(key)
                        let action = first?.rule.action ?? table.defaultAction
                        if action == gw {
                            XCTAssertTrue(covered, "round \(round): \(key) is protected by the policy but outside \(s) for \(rules)")
                        } else if covered, let index = first?.index,
                            index < (table.defaultAction == gw ? rules.count : rules.lastIndex { $0.action == gw }!)
                        {
                            XCTAssertTrue(
                                s.stillCovered.contains(index), "round \(round): \(key) goes to rule \(index) yet \(s) covers it, unnamed; \(rules)")
                            reachedInto += 1
                        } else if !covered, first != nil {
                            cutOut += 1
                        }
                    }
                }
            }
        }
        // Both outcomes happen on these tables, or the test proves nothing.
        XCTAssertGreaterThan(reachedInto, 0)
        XCTAssertGreaterThan(cutOut, 0)
    }
}
