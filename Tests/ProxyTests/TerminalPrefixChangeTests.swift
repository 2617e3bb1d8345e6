import IKEv2
import Packets
import XCTest

@testable import Proxy
@testable import ProxyDemo

/// The terminal prefixes change while the proxy runs (a reload): an enrolled address they no longer cover
/// loses its SAs, in the terminal and with the peer, and gets no new one; covered again, it is a terminal
/// again. Addresses an administrator approved stay allowed whatever the prefixes say.
final class TerminalPrefixChangeTests: XCTestCase {
    let peer = DemoScenario.peer, a = DemoScenario.terminalA, b = DemoScenario.terminalB

    func testAnAddressNoLongerCoveredLosesItsSAsAndComesBackWithItsPrefix() {
        let network = DemoScenario.network()
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        network.terminalSends(b, HostStack.echoRequest(from: b, to: peer, sequence: 1))
        network.run()
        XCTAssertEqual(network.proxy.store.count, 2)

        // 10.0.0.0/24 narrowed to B's address alone.
        network.proxy.registry.allowedPrefixes = [AddressPrefix("10.0.0.12/32")!]
        let actions = network.proxy.withdraw(addresses: [a], at: ClockReading(monotonic: network.now, wall: network.wallClock))
        let lines = actions.compactMap { if case .log(let line) = $0 { line.text } else { nil } }
        XCTAssertTrue(
            lines.contains(
                "terminal 11: 10.0.0.11 is no longer inside the terminal prefixes: not acted for; "
                    + "1 CHILD SA(s) deleted in the terminal and with the peers"), "\(lines)")
        network.perform(actions)
        XCTAssertEqual(
            network.peer.engine.sessionSummaries.filter { $0.established && $0.remote.address == a }.count, 0,
            "the peer's IKE SA with A is deleted")
        XCTAssertTrue(
            network.terminals[a]!.agent.database.outbound.isEmpty && network.terminals[a]!.agent.database.inbound.isEmpty,
            "A's SAs are deleted in A")
        XCTAssertNil(network.proxy.counters["drop_key_delivery_from_unknown_terminal"], "A's acknowledgements were taken")
        XCTAssertTrue(network.proxy.store.children.values.allSatisfy { $0.terminal == b })
        XCTAssertEqual(network.proxy.counters["terminal_addresses_withdrawn"], 1)

        // B goes on; A gets nothing new, from either side.
        let replies = network.terminals[b]!.echoRepliesReceived
        network.terminalSends(b, HostStack.echoRequest(from: b, to: peer, sequence: 2))
        network.run()
        XCTAssertEqual(network.terminals[b]!.echoRepliesReceived, replies + 1)
        network.terminalSends(a, HostStack.echoRequest(from: a, to: peer, sequence: 3))
        network.run()
        XCTAssertGreaterThanOrEqual(network.proxy.counters["drop_start_request_from_unregistered_terminal"] ?? 0, 1)
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        XCTAssertGreaterThanOrEqual(network.proxy.counters["drop_ike_for_unregistered_terminal"] ?? 0, 1)
        XCTAssertFalse(network.terminals[a]!.hasOutboundSA)

        // The prefix back: A is a terminal again, on the same channel.
        network.advance(by: 11)
        network.proxy.registry.allowedPrefixes = [AddressPrefix("10.0.0.0/24")!]
        network.terminalSends(a, HostStack.echoRequest(from: a, to: peer, sequence: 4))
        network.run()
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA, "A has keys again")
        XCTAssertNil(network.proxy.counters["drop_key_delivery_replayed"])
    }

    func testTheBridgeSaysWhichAddressesLeaveAndEnterAndKeepsApprovedOnes() {
        let proxy = KeyExchangeProxy(
            policy: DemoScenario.policy(),
            registry: TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: DemoScenario.terminals()),
            profiles: [DemoScenario.profile()])
        let bridge = EthernetBridge(
            proxy: proxy, terminalPortMAC: MACAddress([0x02, 0, 0, 0, 0, 0xfe]),
            discoveryPrefixes: [AddressPrefix("10.0.0.0/24")!])
        // An administrator adds a terminal inside the prefixes by its address.
        let added = IPAddress("10.0.0.40")!
        bridge.add(terminalID: 40, addresses: [added], enrollmentKey: KeyMaterial(Array(repeating: 0x40, count: 32)), keyDeliveryPort: 9500)

        let narrowed = bridge.replaceTerminalPrefixes([AddressPrefix("10.0.0.12/32")!], at: ClockReading(monotonic: 0, wall: 0))
        XCTAssertEqual(narrowed.withdrawn, [a], "A leaves; B stays; the added terminal stays allowed")
        XCTAssertTrue(narrowed.admitted.isEmpty)
        XCTAssertNotNil(proxy.registry.terminal(at: added))
        XCTAssertNil(proxy.registry.terminal(at: a))
        XCTAssertFalse(bridge.discovery.isInsidePrefixes(a), "discovery lists A's host as pending now")

        let widened = bridge.replaceTerminalPrefixes([AddressPrefix("10.0.0.0/28")!], at: ClockReading(monotonic: 0, wall: 0))
        XCTAssertTrue(widened.withdrawn.isEmpty)
        XCTAssertEqual(widened.admitted, [a])
        XCTAssertNotNil(proxy.registry.terminal(at: added), "10.0.0.40 lies outside 10.0.0.0/28 and stays allowed")
        XCTAssertTrue(bridge.discovery.isInsidePrefixes(a))
    }
}
