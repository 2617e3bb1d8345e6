import ESP
import IKEv2
import KeyDelivery
import Packets
import XCTest

@testable import Proxy
@testable import ProxyDemo

/// The remaining branches: malformed input, IPv6, keepalives, IKE or foreign key delivery from the
/// terminal side, and expiry reported by the terminal.
final class ProxyEdgeTests: XCTestCase {
    let peer = DemoScenario.peer, a = DemoScenario.terminalA

    func makeProxy(
        policy: PolicyTable = DemoScenario.policy(), terminals: [TerminalEntry] = DemoScenario.terminals(),
        prefixes: [String] = ["10.0.0.0/24", "2001:db8:a::/64"]
    ) -> KeyExchangeProxy {
        KeyExchangeProxy(
            policy: policy, registry: TerminalRegistry(allowedPrefixes: prefixes.map { AddressPrefix($0)! }, terminals: terminals),
            profiles: [DemoScenario.profile()])
    }

    /// A terminal (or a host posing as it) sending to many addresses of a broad protect rule gets at most
    /// max_negotiations_per_terminal negotiations at once; the rest are counted drops, logged once in 10 s;
    /// other terminals are not held back, and once those negotiations end new ones may start.
    func testNegotiationsInOneTerminalsNameAreLimited() {
        var settings = ProxySettings()
        settings.maxNegotiationsPerTerminal = 3
        settings.maxNegotiations = 4
        let broad = PolicyTable(
            rules: [
                PolicyRule(
                    source: AddressPrefix("10.0.0.0/24")!, destination: AddressPrefix("198.51.100.0/24")!,
                    action: .protect(profile: "gateway"))
            ], defaultAction: .bypass)
        var engineSettings = EngineSettings()
        // The engine gives up after 1 + 2 + 4 s, later than a half-open SA's timeout.
        engineSettings.retransmitLimit = 2
        engineSettings.halfOpenTimeout = 5
        let proxy = KeyExchangeProxy(
            policy: broad,
            registry: TerminalRegistry(
                allowedPrefixes: [AddressPrefix("10.0.0.0/24")!],
                terminals: DemoScenario.terminals()),
            profiles: [DemoScenario.profile()], settings: settings, engineSettings: engineSettings)
        var logs: [String] = []
        func send(from terminal: IPAddress, to host: Int, at now: Double) {
            let actions = proxy.receive(
                from: .terminal, packet: HostStack.echoRequest(from: terminal, to: IPAddress("198.51.100.\(host)")!, sequence: 1),
                at: ClockReading(monotonic: now, wall: now))
            logs += actions.compactMap { if case .log(let line) = $0 { line.text } else { nil } }
        }
        for host in 1...6 { send(from: a, to: host, at: 0) }
        XCTAssertEqual(proxy.counters["negotiations_started"], 3)
        XCTAssertEqual(proxy.counters["drop_start_request_over_negotiation_limit"], 3)
        XCTAssertEqual(
            logs.filter { $0.contains("refused: 3 negotiations are under way in its name already (max_negotiations_per_terminal 3)") }.count, 1,
            "said once: \(logs)")
        // Another terminal still gets one, up to the limit in all.
        send(from: DemoScenario.terminalB, to: 10, at: 1)
        send(from: DemoScenario.terminalB, to: 11, at: 1)
        XCTAssertEqual(proxy.counters["negotiations_started"], 4)
        XCTAssertTrue(logs.contains { $0.contains("4 negotiations are under way already (max_negotiations 4)") }, "\(logs)")
        // No peer answers: the negotiations fail, and new start requests may go on.
        for second in stride(from: 1.0, through: 40, by: 1) { _ = proxy.tick(at: ClockReading(monotonic: second, wall: second)) }
        XCTAssertEqual(proxy.counters["negotiation_failed"], 4, "each one reported failed when the engine gave up, none just dropped")
        XCTAssertNil(proxy.counters["negotiation_abandoned"])
        send(from: a, to: 7, at: 41)
        XCTAssertEqual(proxy.counters["negotiations_started"], 5)
        XCTAssertEqual(EngineSettings().requestGiveUpTime, 63, "1 s, doubled at each of 5 retransmissions: 1 + 2 + 4 + 8 + 16 + 32")
    }

    func testAProfileThatSignsWithTheTerminalsCertificateRefusesATerminalWithoutOne() {
        var profile = DemoScenario.profile()
        profile.authenticatesWithTerminalCertificate = true
        let proxy = KeyExchangeProxy(
            policy: DemoScenario.policy(),
            registry: TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: DemoScenario.terminals()),
            profiles: [profile])
        let actions = proxy.receive(
            from: .terminal, packet: HostStack.echoRequest(from: a, to: peer, sequence: 1), at: ClockReading(monotonic: 0, wall: 0))
        XCTAssertTrue(actions.contains(.drop(.noCertificateForTerminal)), "\(actions)")
        XCTAssertTrue(actions.contains { if case .log(let text) = $0 { return text.text.contains("has none configured") } else { return false } })
        XCTAssertNil(proxy.counters["negotiations_started"], "no IKE in the terminal's name without its certificate")
        XCTAssertFalse(actions.contains { if case .send(.internet, _) = $0 { return true } else { return false } })
    }

    /// The proxy's lines about a peer's IKE message name the terminal it was for (the JSON log's `terminal` field).
    func testALineAboutAPeersIKEMessageNamesTheTerminal() throws {
        let proxy = makeProxy()
        let peerEngine = IKEEngine(connections: [
            DemoScenario.peerConnection(to: a, ikeProposal: "aes128-sha256-prfsha256-modp2048", espProposals: ["aes128-sha256"])
        ])
        let request = try XCTUnwrap(
            peerEngine.initiate(connection: peerEngine.connections[0].name, now: 0).compactMap { if case .send(let d) = $0 { d } else { nil } }.first)
        let actions = proxy.receive(
            from: .internet,
            packet: HostStack.udp(
                from: peer, to: a, sourcePort: request.source.port, destinationPort: request.destination.port, payload: request.payload),
            at: ClockReading(monotonic: 0, wall: 0))
        let lines = actions.compactMap { if case .log(let line) = $0 { line } else { nil } }
        let refusal = try XCTUnwrap(lines.first { $0.text.contains("no acceptable proposal") }, "\(lines)")
        XCTAssertEqual(refusal.facts.terminal, a.description)
        XCTAssertEqual(refusal.facts.peer, peer.description)
        XCTAssertEqual(refusal.facts.ikeSPIs?.hasSuffix("_0000000000000000"), true)
    }

    func testMalformedPacketsFromEitherSideAreCountedDrops() {
        let proxy = makeProxy()
        for garbage in [[], [0x45], [0x60, 0, 0], Array(repeating: 0x45, count: 30)] as [[UInt8]] {
            XCTAssertEqual(proxy.receive(from: .internet, packet: garbage, at: ClockReading(monotonic: 0, wall: 0)), [.drop(.malformed)])
            XCTAssertEqual(proxy.receive(from: .terminal, packet: garbage, at: ClockReading(monotonic: 0, wall: 0)), [.drop(.malformed)])
        }
        XCTAssertEqual(proxy.counters["drop_malformed"], 8)
    }

    func testIKEFromTheTerminalSideAndKeyDeliveryFromStrangersAreDropped() {
        let proxy = makeProxy()
        let ike = IPHeaderBuilder.udpPacket(
            source: a.bytes, destination: peer.bytes, sourcePort: 4500, destinationPort: 4500,
            payload: [0, 0, 0, 0] + Array(repeating: 1, count: 40))
        XCTAssertEqual(proxy.receive(from: .terminal, packet: ike, at: ClockReading(monotonic: 0, wall: 0)), [.drop(.ikeFromTerminal)])
        let stranger = IPHeaderBuilder.udpPacket(
            source: IPAddress("10.0.0.99")!.bytes, destination: IPAddress("169.254.0.1")!.bytes,
            sourcePort: 9500, destinationPort: 9500, payload: Array(repeating: 0, count: 90))
        XCTAssertEqual(
            proxy.receive(from: .terminal, packet: stranger, at: ClockReading(monotonic: 0, wall: 0)), [.drop(.keyDeliveryFromUnknownTerminal)])
        // From an enrolled terminal but sealed with the wrong key: refused as forged, never forwarded.
        let forger = KeyDeliveryChannel(role: .terminal, terminalID: 11, enrollmentKey: KeyMaterial(Array(repeating: 9, count: 32)), epoch: 1)
        let forged = IPHeaderBuilder.udpPacket(
            source: a.bytes, destination: IPAddress("169.254.0.1")!.bytes, sourcePort: 9500,
            destinationPort: 9500, payload: forger.send(.flush, at: ClockReading(monotonic: 0, wall: 0)))
        XCTAssertEqual(proxy.receive(from: .terminal, packet: forged, at: ClockReading(monotonic: 0, wall: 0)), [.drop(.keyDeliveryForged)])
    }

    /// Found by fuzzing (the ethernet-bridge target): a UDP header cut after its ports, to the key-delivery
    /// port, crossed the proxy unjudged. Whatever the rest, such a datagram crosses neither way.
    func testAKeyDeliveryDatagramCutShortCrossesNeitherWay() {
        let proxy = makeProxy()
        func truncatedUDP(from source: IPAddress, to destination: IPAddress) -> [UInt8] {
            var packet: [UInt8] = []
            IPHeaderBuilder.appendIPv4(
                to: &packet, source: source.bytes, destination: destination.bytes, protocolNumber: IPProtocolNumber.udp,
                payloadLength: 4)
            return packet + [0x30, 0x39, 0x25, 0x1c]  // source port 12345, destination port 9500, nothing more
        }
        XCTAssertEqual(
            proxy.receive(from: .internet, packet: truncatedUDP(from: peer, to: a), at: ClockReading(monotonic: 0, wall: 0)),
            [.drop(.keyDeliveryFromInternet)])
        XCTAssertEqual(
            proxy.receive(from: .terminal, packet: truncatedUDP(from: a, to: IPAddress("169.254.0.1")!), at: ClockReading(monotonic: 0, wall: 0)),
            [.drop(.malformedKeyDelivery)])
        XCTAssertEqual(
            proxy.receive(from: .terminal, packet: truncatedUDP(from: a, to: DemoScenario.dnsServer), at: ClockReading(monotonic: 0, wall: 0)),
            [.drop(.malformedKeyDelivery)], "not even where the policy bypasses")
    }

    func testNATKeepalivesAndPlainESPOfKnownAndUnknownSAs() {
        let proxy = makeProxy()
        let keepalive = IPHeaderBuilder.udpPacket(source: a.bytes, destination: peer.bytes, sourcePort: 4500, destinationPort: 4500, payload: [0xff])
        XCTAssertEqual(proxy.receive(from: .terminal, packet: keepalive, at: ClockReading(monotonic: 0, wall: 0)), [.forward(.internet)])
        var esp: [UInt8] = []
        IPHeaderBuilder.appendIPv4(to: &esp, source: a.bytes, destination: peer.bytes, protocolNumber: IPProtocolNumber.esp, payloadLength: 40)
        esp += [0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1] + Array(repeating: 0, count: 32)
        let dropped = proxy.receive(from: .terminal, packet: esp, at: ClockReading(monotonic: 0, wall: 0))
        XCTAssertEqual(dropped.first, .drop(.espOfUnknownSA))
        XCTAssertTrue(
            dropped.contains(
                .log("ESP from 10.0.0.11 on SPI 12345678 dropped: no SA of this terminal has it (said once per SPI; counted as esp_of_unknown_sa)")))
        XCTAssertEqual(
            proxy.receive(from: .terminal, packet: esp, at: ClockReading(monotonic: 0, wall: 0)), [.drop(.espOfUnknownSA)],
            "said once, counted always")
        XCTAssertEqual(proxy.counters["drop_esp_of_unknown_sa"], 2)
    }

    func testIPv6TerminalNegotiatesAndCarriesTraffic() {
        let peer6 = IPAddress("2001:db8:1::1")!
        let terminal6 = IPAddress("2001:db8:a::11")!
        let entry = TerminalEntry(address: terminal6, terminalID: 61, enrollmentKey: KeyMaterial(Array(repeating: 0x66, count: 32)))
        let policy = PolicyTable(
            rules: [
                PolicyRule(
                    source: AddressPrefix("2001:db8:a::/64")!, destination: AddressPrefix("2001:db8:1::/64")!,
                    action: .protect(profile: "gateway"))
            ], defaultAction: .discard)
        let proxy = makeProxy(policy: policy, terminals: [entry])
        let peerEngine = IKEEngine(connections: [DemoScenario.peerConnection(from: peer6, to: terminal6)])
        let network = VirtualNetwork(proxy: proxy, peer: peerEngine, peerAddress: peer6, terminals: [entry])
        network.terminalSends(terminal6, HostStack.echoRequest(from: terminal6, to: peer6, sequence: 1))
        network.run()
        XCTAssertTrue(network.terminals[terminal6]!.hasOutboundSA, "IPv6 start request answered with keys")
        network.terminalSends(terminal6, HostStack.echoRequest(from: terminal6, to: peer6, sequence: 2))
        network.run()
        XCTAssertEqual(network.terminals[terminal6]!.echoRepliesReceived, 1, "ICMPv6 echo through ESP over IPv6")
        XCTAssertEqual(network.peer.espReceived, 1)
    }

    func testSoftExpiryReportedByTheTerminalRekeysAndTheTerminalGetsTheNewSA() {
        let network = DemoScenario.network()
        network.terminalSends(a, HostStack.echoRequest(from: a, to: peer, sequence: 1))
        network.run()
        let first = network.proxy.store.children.values.first!
        // The terminal reports the soft lifetime of its inbound SA over key delivery.
        let terminalChannel = network.terminals[a]!.agent.channel
        let expire = terminalChannel.send(
            .expire(spi: first.inbound.spi, direction: .inbound, hard: false),
            at: ClockReading(monotonic: network.now, wall: 1_800_000_000 + network.now))
        _ = network.proxy.receive(
            from: .terminal,
            packet: IPHeaderBuilder.udpPacket(
                source: a.bytes, destination: IPAddress("169.254.0.1")!.bytes,
                sourcePort: 9500, destinationPort: 9500, payload: expire),
            at: ClockReading(monotonic: network.now, wall: 1_800_000_000 + network.now)
        )
        .forEach { action in if case .send(let side, let packet) = action { network.inject(side, packet) } }
        network.run()
        XCTAssertNil(network.proxy.store.children[first.outbound.spi], "the old SA was replaced")
        XCTAssertEqual(network.proxy.store.count, 1)
        XCTAssertNotEqual(network.terminals[a]!.agent.database.outbound.first?.parameters.spi, first.outbound.spi)
    }
}

extension ProxyEdgeTests {
    /// A peer and a profile that do not force UDP encapsulation, with no NAT between them: the SA the
    /// proxy sets into the terminal is plain ESP (IP protocol 50), which crosses the proxy both ways.
    func testPlainESPWithoutEncapsulationCrossesTheProxyBothWays() {
        var profile = DemoScenario.profile()
        profile.forceEncapsulation = false
        var connections = DemoScenario.peerEngine().connections
        for index in connections.indices { connections[index].forceEncapsulation = false }
        let proxy = KeyExchangeProxy(
            policy: DemoScenario.policy(),
            registry: TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: DemoScenario.terminals()),
            profiles: [profile])
        let network = VirtualNetwork(proxy: proxy, peer: IKEEngine(connections: connections), peerAddress: peer, terminals: DemoScenario.terminals())
        network.terminalSends(a, HostStack.echoRequest(from: a, to: peer, sequence: 1))
        network.run()
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA)
        XCTAssertNil(network.terminals[a]!.agent.database.outbound.first?.parameters.encapsulation, "the SA is plain ESP")
        network.terminalSends(a, HostStack.echoRequest(from: a, to: peer, sequence: 2))
        network.run()
        XCTAssertEqual(network.terminals[a]!.echoRepliesReceived, 1, "the reply came back through plain ESP")
        XCTAssertGreaterThanOrEqual(network.terminals[a]!.agent.counters["plain_esp_received"] ?? 0, 1)
        XCTAssertGreaterThanOrEqual(network.proxy.counters["forwarded_esp"] ?? 0, 1)
        let protocol50 = network.internetLink.filter { (try? IPPacketView($0))?.upperProtocol == IPProtocolNumber.esp }
        XCTAssertGreaterThanOrEqual(protocol50.count, 2, "ESP crossed the Internet link as IP protocol 50, both ways")
    }
}
