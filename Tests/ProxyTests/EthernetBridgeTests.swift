import IKEv2
import KeyDelivery
import Packets
import XCTest

@testable import Proxy
@testable import ProxyDemo

/// The proxy at the Ethernet layer: frames passed on unchanged, the key-delivery address answered on the
/// terminal side only, terminals enrolled by MAC through discovery, and IKE framed in the terminal's name.
final class EthernetBridgeTests: XCTestCase {
    let portMAC = MACAddress([0x02, 0, 0, 0, 0, 0xfe])
    let peerMAC = MACAddress([0x02, 0, 0, 0, 0, 0x01])
    let terminalMAC = MACAddress([0x02, 0, 0, 0, 0, 0x11])

    func makeBridge(terminals: [TerminalEntry] = DemoScenario.terminals(), enrollments: [MACAddress: MACEnrollment] = [:]) -> EthernetBridge {
        let proxy = KeyExchangeProxy(
            policy: DemoScenario.policy(),
            registry: TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: terminals),
            profiles: [DemoScenario.profile()])
        return EthernetBridge(proxy: proxy, terminalPortMAC: portMAC, discoveryPrefixes: [AddressPrefix("10.0.0.0/24")!], enrollments: enrollments)
    }

    func arp(_ operation: ARPPacket.Operation, from mac: MACAddress, ip: String, asking target: String, vlan: [UInt16] = []) -> [UInt8] {
        let packet = ARPPacket(
            operation: operation, senderMAC: mac, senderIP: IPAddress(ip)!.bytes,
            targetMAC: MACAddress([0, 0, 0, 0, 0, 0]), targetIP: IPAddress(target)!.bytes)
        return EthernetFrameView.build(destination: .broadcast, source: mac, vlanIDs: vlan, etherType: EtherType.arp, payload: packet.encode())
    }

    func testARPForTheKeyDeliveryAddressIsAnsweredOnTheTerminalSideOnly() throws {
        let bridge = makeBridge()
        let actions = bridge.receive(
            from: .terminal, frame: arp(.request, from: terminalMAC, ip: "10.0.0.11", asking: "169.254.0.1", vlan: [42]),
            at: ClockReading(monotonic: 0, wall: 0))
        guard case .send(.terminal, let reply)? = actions.last else { return XCTFail("no ARP reply: \(actions)") }
        let ethernet = try EthernetFrameView(reply)
        XCTAssertEqual(ethernet.destination, terminalMAC)
        XCTAssertEqual(ethernet.source, portMAC)
        XCTAssertEqual(ethernet.vlanIDs, [42])
        let answer = try ARPPacket(reply[ethernet.payloadOffset...])
        XCTAssertEqual(answer.operation, .reply)
        XCTAssertEqual(answer.senderMAC, portMAC)
        XCTAssertEqual(answer.senderIP, [169, 254, 0, 1])
        XCTAssertFalse(actions.contains(.forward(.internet)), "the request must not reach the Internet side")

        let fromInternet = bridge.receive(
            from: .internet, frame: arp(.request, from: peerMAC, ip: "198.51.100.1", asking: "169.254.0.1"),
            at: ClockReading(monotonic: 0, wall: 0))
        XCTAssertEqual(fromInternet, [.drop(.arpForKeyDeliveryAddressFromInternet)])
        // Any other ARP crosses unchanged.
        XCTAssertEqual(
            bridge.receive(
                from: .internet, frame: arp(.request, from: peerMAC, ip: "198.51.100.1", asking: "10.0.0.11"),
                at: ClockReading(monotonic: 0, wall: 0)), [.forward(.terminal)])
    }

    func solicitation(from mac: MACAddress, source: String, target: String, withOption: Bool = true) throws -> [UInt8] {
        let t = IPAddress(target)!.bytes
        var icmp: [UInt8] = [NeighborSolicitation.type, 0, 0, 0, 0, 0, 0, 0] + t
        if withOption { icmp += [1, 1] + mac.octets }
        let solicitedNode: [UInt8] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15]]
        var packet: [UInt8] = []
        IPHeaderBuilder.appendIPv6(
            to: &packet, source: IPAddress(source)!.bytes, destination: solicitedNode, nextHeader: IPProtocolNumber.icmpv6,
            payloadLength: icmp.count, hopLimit: 255)
        packet += icmp
        TransportChecksum.fill(packet: &packet, view: try IPPacketView(packet))
        return EthernetFrameView.build(
            destination: MACAddress([0x33, 0x33, 0xff, t[13], t[14], t[15]]), source: mac,
            etherType: EtherType.ipv6, payload: packet)
    }

    func testNeighbourSolicitationForTheIPv6KeyDeliveryAddressIsAnsweredOnTheTerminalSideOnly() throws {
        let bridge = makeBridge()
        let actions = bridge.receive(
            from: .terminal, frame: try solicitation(from: terminalMAC, source: "2001:db8::11", target: "fe80::1"),
            at: ClockReading(monotonic: 0, wall: 0))
        guard actions.count == 1, case .send(.terminal, let reply) = actions[0] else { return XCTFail("no advertisement: \(actions)") }
        let ethernet = try EthernetFrameView(reply)
        XCTAssertEqual(ethernet.destination, terminalMAC)
        XCTAssertEqual(ethernet.source, portMAC)
        let packet = Array(reply[ethernet.payloadOffset...])
        let view = try IPPacketView(packet)
        XCTAssertEqual(view.source(in: packet), IPAddress("fe80::1")!.bytes)
        XCTAssertEqual(view.destination(in: packet), IPAddress("2001:db8::11")!.bytes)
        XCTAssertEqual(packet[7], 255, "hop limit 255 (RFC 4861 section 7.1.2)")
        XCTAssertEqual(packet[40], NeighborSolicitation.advertisementType)
        XCTAssertEqual(packet[44], 0x60, "solicited and override flags")
        XCTAssertEqual(Array(packet[48..<64]), IPAddress("fe80::1")!.bytes)
        XCTAssertEqual(Array(packet[64..<72]), [2, 1] + portMAC.octets, "target link-layer address: the terminal port")
        XCTAssertTrue(TransportChecksum.isValid(packet: packet, view: view), "ICMPv6 checksum")
        XCTAssertEqual(bridge.counters["nd_answered_for_key_delivery_address"], 1)

        // Duplicate address detection (unspecified source): the answer goes to all nodes, not solicited.
        let dad = bridge.receive(
            from: .terminal, frame: try solicitation(from: terminalMAC, source: "::", target: "fe80::1", withOption: false),
            at: ClockReading(monotonic: 0, wall: 0))
        guard case .send(.terminal, let toAll)? = dad.first else { return XCTFail("no advertisement for DAD: \(dad)") }
        XCTAssertEqual(try EthernetFrameView(toAll).destination, MACAddress([0x33, 0x33, 0, 0, 0, 1]))
        let allNodes = Array(toAll[14...])
        XCTAssertEqual(Array(allNodes[24..<40]), IPAddress("ff02::1")!.bytes)
        XCTAssertEqual(allNodes[44], 0x20, "override only")

        XCTAssertEqual(
            bridge.receive(
                from: .internet, frame: try solicitation(from: peerMAC, source: "2001:db8::1", target: "fe80::1"),
                at: ClockReading(monotonic: 0, wall: 0)), [.drop(.ndForKeyDeliveryAddressFromInternet)])
        // A solicitation for any other address is not the bridge's to answer.
        let other = bridge.receive(
            from: .terminal, frame: try solicitation(from: terminalMAC, source: "2001:db8::11", target: "2001:db8::1"),
            at: ClockReading(monotonic: 0, wall: 0))
        XCTAssertFalse(other.contains { if case .send = $0 { return true } else { return false } }, "\(other)")
        // Truncated or malformed solicitations are not answered either.
        var short = try solicitation(from: terminalMAC, source: "2001:db8::11", target: "fe80::1")
        short.removeLast(12)
        XCTAssertFalse(
            bridge.receive(from: .terminal, frame: short, at: ClockReading(monotonic: 0, wall: 0)).contains {
                if case .send = $0 { return true } else { return false }
            })
    }

    func testAllowedFramesCrossUnchangedWhateverTheyCarry() {
        let bridge = makeBridge()
        let dns = IPHeaderBuilder.udpPacket(
            source: DemoScenario.terminalA.bytes, destination: DemoScenario.dnsServer.bytes,
            sourcePort: 5353, destinationPort: 53, payload: Array(repeating: 7, count: 8000))
        let tagged = EthernetFrameView.build(destination: peerMAC, source: terminalMAC, vlanIDs: [100, 200], etherType: EtherType.ipv4, payload: dns)
        XCTAssertEqual(
            bridge.receive(from: .terminal, frame: tagged, at: ClockReading(monotonic: 0, wall: 0)), [.forward(.internet)],
            "jumbo, QinQ-tagged bypass frame")
        let lldp = EthernetFrameView.build(
            destination: MACAddress([0x01, 0x80, 0xc2, 0, 0, 0x0e]), source: terminalMAC, etherType: 0x88cc,
            payload: Array(repeating: 0, count: 46))
        XCTAssertEqual(bridge.receive(from: .terminal, frame: lldp, at: ClockReading(monotonic: 0, wall: 0)), [.forward(.internet)])
        let telnet = IPHeaderBuilder.udpPacket(
            source: DemoScenario.terminalA.bytes, destination: DemoScenario.telnetServer.bytes,
            sourcePort: 40000, destinationPort: 23, payload: [1])
        var tcp = telnet
        tcp[9] = IPProtocolNumber.tcp
        XCTAssertEqual(
            bridge.receive(
                from: .terminal,
                frame: EthernetFrameView.build(
                    destination: peerMAC, source: terminalMAC,
                    etherType: EtherType.ipv4, payload: tcp), at: ClockReading(monotonic: 0, wall: 0)),
            [.drop(.policyDiscard)])
        XCTAssertEqual(bridge.receive(from: .terminal, frame: [1, 2, 3], at: ClockReading(monotonic: 0, wall: 0)), [.drop(.malformedFrame)])
        let toPort = EthernetFrameView.build(destination: portMAC, source: terminalMAC, etherType: EtherType.ipv4, payload: dns)
        XCTAssertEqual(bridge.receive(from: .terminal, frame: toPort, at: ClockReading(monotonic: 0, wall: 0)), [.drop(.addressedToProxyPort)])
    }

    func testATerminalEnrolledByMACIsRegisteredAtTheAddressesDiscoveryLearns() {
        let bridge = makeBridge(
            terminals: [], enrollments: [terminalMAC: MACEnrollment(terminalID: 21, enrollmentKey: KeyMaterial(Array(repeating: 1, count: 32)))])
        XCTAssertNil(bridge.proxy.registry.terminal(at: IPAddress("10.0.0.21")!))
        let actions = bridge.receive(
            from: .terminal, frame: arp(.request, from: terminalMAC, ip: "10.0.0.21", asking: "10.0.0.1"), at: ClockReading(monotonic: 0, wall: 0))
        XCTAssertTrue(actions.contains(.discovered("discovered 10.0.0.21 at 02:00:00:00:00:11 (arp): inside the terminal prefixes")), "\(actions)")
        XCTAssertEqual(bridge.proxy.registry.terminal(at: IPAddress("10.0.0.21")!)?.terminalID, 21)
        // A stranger outside the prefixes is only listed as pending, never registered.
        let stranger = MACAddress([0x02, 0, 0, 0, 0, 0x99])
        _ = bridge.receive(
            from: .terminal, frame: arp(.request, from: stranger, ip: "10.9.0.5", asking: "10.9.0.1"), at: ClockReading(monotonic: 1, wall: 1))
        XCTAssertEqual(bridge.discovery.pending.map(\.mac), [stranger])
        XCTAssertNil(bridge.proxy.registry.terminal(at: IPAddress("10.9.0.5")!))
    }

    /// Found by the ethernet-bridge fuzz target: an ARP on the terminal side whose sender MAC was the terminal port's
    /// own taught the bridge that a terminal lived at the port's MAC, and the proxy then spoke for that terminal on
    /// the Internet side from its own MAC. Such frames (and any frame from the port's MAC, and neighbour
    /// solicitations naming it) are dropped, counted, and teach nothing.
    func testFramesClaimingThePortsOwnMACAreDroppedAndTeachNothing() throws {
        let bridge = makeBridge()
        let forged = arp(.request, from: terminalMAC, ip: DemoScenario.terminalA.description, asking: "10.0.0.99")
        var claiming = forged
        let sender = 14 + 8  // Ethernet header, then ARP's hardware/protocol types, sizes and operation
        claiming.replaceSubrange(sender..<sender + 6, with: portMAC.octets)
        XCTAssertEqual(bridge.receive(from: .terminal, frame: claiming, at: ClockReading(monotonic: 0, wall: 0)), [.drop(.fromProxyPortMAC)])
        let looped = EthernetFrameView.build(
            destination: .broadcast, source: portMAC, etherType: EtherType.ipv4, payload: [0x45] + [UInt8](repeating: 0, count: 19))
        XCTAssertEqual(bridge.receive(from: .internet, frame: looped, at: ClockReading(monotonic: 0, wall: 0)), [.drop(.fromProxyPortMAC)])
        XCTAssertEqual(bridge.counters["drop_from_proxy_port_mac"], 2)
        // The IKE the peer then sends for that terminal is answered from the terminal's own MAC (checked below for a
        // bridge that never saw the forgery): here, at least never from the port's. The peer's frame is addressed to
        // the port's MAC (the fuzzer found that this once taught the bridge the terminal lived there): it teaches nothing.
        let peer = DemoScenario.peerEngine()
        for action in peer.initiate(connection: "to-\(DemoScenario.terminalA)", now: 0) {
            guard case .send(let datagram) = action else { continue }
            let ip = IPHeaderBuilder.udpPacket(
                source: datagram.source.address.bytes, destination: datagram.destination.address.bytes,
                sourcePort: datagram.source.port, destinationPort: datagram.destination.port, payload: datagram.payload)
            let frame = EthernetFrameView.build(destination: portMAC, source: peerMAC, etherType: EtherType.ipv4, payload: ip)
            for out in bridge.receive(from: .internet, frame: frame, at: ClockReading(monotonic: 0, wall: 0)) {
                guard case .send(.internet, let bytes) = out else { continue }
                XCTAssertNotEqual(try EthernetFrameView(bytes).source, portMAC)
            }
        }
        XCTAssertNil(bridge.stations.station(for: DemoScenario.terminalA), "the port's MAC is no terminal's link address")
        XCTAssertGreaterThanOrEqual(bridge.counters["drop_no_link_address"] ?? 0, 1, "the answer waits for the terminal's MAC")
    }

    func testIKEForATerminalIsAnsweredFromItsMACAndItsKeysSentToItsMAC() throws {
        let bridge = makeBridge()
        let peer = DemoScenario.peerEngine()
        var toBridge = peer.initiate(connection: "to-\(DemoScenario.terminalA)", now: 0)
        var keyDeliveryFrames: [[UInt8]] = []
        var ikeReplies: [[UInt8]] = []
        var established = false
        var ticked = false
        var heldUntilTheLimit = false
        func carry(_ outs: [FrameAction]) throws -> [EngineAction] {
            var next: [EngineAction] = []
            for out in outs {
                guard case .send(let side, let bytes) = out else { continue }
                let ethernet = try EthernetFrameView(bytes)
                let packet = Array(bytes[ethernet.payloadOffset...])
                let view = try IPPacketView(packet)
                if side == .terminal {
                    keyDeliveryFrames.append(bytes)
                    continue
                }
                ikeReplies.append(bytes)
                XCTAssertEqual(ethernet.source, terminalMAC, "IKE leaves with the terminal's MAC")
                XCTAssertEqual(ethernet.destination, peerMAC)
                XCTAssertEqual(ethernet.vlanIDs, [7])
                XCTAssertEqual(view.source(in: packet), DemoScenario.terminalA.bytes, "and from the terminal's address")
                let ports = view.ports(in: packet)!
                next += peer.receive(
                    Array(packet[(view.upperOffset + 8)...]), from: Endpoint(DemoScenario.terminalA, ports.source),
                    to: Endpoint(DemoScenario.peer, ports.destination), now: 0)
            }
            return next
        }
        for _ in 0..<10 {
            var next: [EngineAction] = []
            for action in toBridge {
                if case .event(let event) = action, event.kind == .childEstablished { established = true }
                guard case .send(let datagram) = action else { continue }
                let ip = IPHeaderBuilder.udpPacket(
                    source: datagram.source.address.bytes, destination: datagram.destination.address.bytes,
                    sourcePort: datagram.source.port, destinationPort: datagram.destination.port, payload: datagram.payload)
                let frame = EthernetFrameView.build(destination: terminalMAC, source: peerMAC, vlanIDs: [7], etherType: EtherType.ipv4, payload: ip)
                next += try carry(bridge.receive(from: .internet, frame: frame, at: ClockReading(monotonic: 0, wall: 0)))
            }
            if next.isEmpty && !ticked && !established {
                // No terminal acknowledges here: the IKE_AUTH answer waits for the new inbound SA until the limit.
                ticked = true
                heldUntilTheLimit = !keyDeliveryFrames.isEmpty
                next = try carry(bridge.tick(at: ClockReading(monotonic: 1.5, wall: 1.5)))
            }
            if next.isEmpty && toBridge.isEmpty { break }
            toBridge = next
        }
        XCTAssertTrue(heldUntilTheLimit, "the answer that made the CHILD SA waited while its keys were on their way to the terminal")
        XCTAssertEqual(bridge.proxy.counters["ike_answer_sent_before_keys"], 1)
        XCTAssertTrue(established, "the peer established a CHILD SA with the terminal's address")
        XCTAssertGreaterThanOrEqual(ikeReplies.count, 2)
        XCTAssertFalse(keyDeliveryFrames.isEmpty, "the SA went to the terminal over key delivery")
        for frame in keyDeliveryFrames {
            let ethernet = try EthernetFrameView(frame)
            XCTAssertEqual(ethernet.destination, terminalMAC)
            XCTAssertEqual(ethernet.source, portMAC)
            let packet = Array(frame[ethernet.payloadOffset...])
            let view = try IPPacketView(packet)
            XCTAssertEqual(view.source(in: packet), [169, 254, 0, 1])
            XCTAssertEqual(view.ports(in: packet)?.destination, 9500)
        }
    }

    /// Frames of one kind among the bridge's actions.
    func sent(_ actions: [FrameAction], on side: LinkSide) -> [[UInt8]] {
        actions.compactMap { if case .send(let s, let frame) = $0, s == side { frame } else { nil } }
    }

    /// Key delivery to a terminal whose MAC the proxy has not seen: it asks with ARP from the key-delivery
    /// address, learns from the answer (which goes no further), and the retransmission reaches the terminal.
    func testAnUnknownTerminalIsAskedForByARPAndTheAnswerTeachesTheBridge() throws {
        let bridge = makeBridge()
        let actions = bridge.frames(for: bridge.proxy.removeTerminal(id: 11, at: ClockReading(monotonic: 0, wall: 0))!)
        XCTAssertTrue(actions.contains { if case .drop(.noLinkAddress) = $0 { true } else { false } })
        let requests = sent(actions, on: .terminal)
        XCTAssertEqual(requests.count, 1, "one ARP request, no key-delivery frame yet")
        let ethernet = try EthernetFrameView(requests[0])
        XCTAssertEqual(ethernet.destination, .broadcast)
        XCTAssertEqual(ethernet.etherType, EtherType.arp)
        let arp = try ARPPacket(requests[0][ethernet.payloadOffset...])
        XCTAssertEqual(arp.operation, .request)
        XCTAssertEqual(arp.senderIP, [169, 254, 0, 1])
        XCTAssertEqual(arp.senderMAC, portMAC)
        XCTAssertEqual(arp.targetIP, DemoScenario.terminalA.bytes)
        // Asked once per round, however many sends fail meanwhile.
        XCTAssertTrue(sent(bridge.tick(at: ClockReading(monotonic: 0.6, wall: 0.6)), on: .terminal).isEmpty)
        let reply = ARPPacket(
            operation: .reply, senderMAC: terminalMAC, senderIP: DemoScenario.terminalA.bytes, targetMAC: portMAC, targetIP: [169, 254, 0, 1])
        let answer = bridge.receive(
            from: .terminal,
            frame: EthernetFrameView.build(
                destination: portMAC, source: terminalMAC, etherType: EtherType.arp,
                payload: reply.encode()), at: ClockReading(monotonic: 1, wall: 1))
        XCTAssertEqual(answer.last, .drop(.addressedToProxyPort), "the answer to the proxy is not forwarded to the Internet")
        XCTAssertFalse(answer.contains { if case .forward = $0 { true } else { false } })
        let retransmitted = sent(bridge.tick(at: ClockReading(monotonic: 2.5, wall: 2.5)), on: .terminal)
        XCTAssertEqual(retransmitted.count, 1, "the FLUSH goes out on its retransmission")
        XCTAssertEqual(try EthernetFrameView(retransmitted[0]).destination, terminalMAC)
    }

    /// An IPv6 terminal is asked for with a neighbour solicitation from fe80::1 to its solicited-node group.
    func testAnUnknownIPv6TerminalIsAskedForByNeighbourSolicitation() throws {
        let address = IPAddress("2001:db8::11")!
        let bridge = makeBridge(terminals: [
            TerminalEntry(address: address, terminalID: 21, enrollmentKey: KeyMaterial(Array(repeating: 7, count: 32)))
        ])
        let requests = sent(bridge.frames(for: bridge.proxy.removeTerminal(id: 21, at: ClockReading(monotonic: 0, wall: 0))!), on: .terminal)
        XCTAssertEqual(requests.count, 1)
        let ethernet = try EthernetFrameView(requests[0])
        XCTAssertEqual(ethernet.destination, MACAddress([0x33, 0x33, 0xff, 0, 0, 0x11]))
        let packet = Array(requests[0][ethernet.payloadOffset...])
        let solicitation = try XCTUnwrap(NeighborSolicitation(ipv6: packet))
        XCTAssertEqual(solicitation.target, address.bytes)
        XCTAssertEqual(solicitation.source, IPAddress("fe80::1")!.bytes)
        XCTAssertEqual(solicitation.sourceLinkAddress, portMAC)
        XCTAssertTrue(TransportChecksum.isValid(packet: packet, view: try IPPacketView(packet)), "ICMPv6 checksum")
        XCTAssertEqual(Array(packet[24..<40]), [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x11])
    }

    /// IKE to a peer whose MAC nothing taught the bridge: the peer is asked with ARP in the terminal's name
    /// (its address, MAC and VLAN tags), and its answer teaches the bridge.
    func testAnUnknownPeerIsAskedForInTheTerminalsName() throws {
        let bridge = makeBridge()
        // A start request whose frame's destination MAC says nothing about the peer (broadcast).
        let ping = HostStack.echoRequest(from: DemoScenario.terminalA, to: DemoScenario.peer, sequence: 1)
        let actions = bridge.receive(
            from: .terminal,
            frame: EthernetFrameView.build(
                destination: .broadcast, source: terminalMAC, vlanIDs: [5],
                etherType: EtherType.ipv4, payload: ping), at: ClockReading(monotonic: 0, wall: 0))
        let requests = sent(actions, on: .internet)
        XCTAssertEqual(requests.count, 1, "no IKE frame yet, one ARP request")
        let ethernet = try EthernetFrameView(requests[0])
        XCTAssertEqual(ethernet.source, terminalMAC)
        XCTAssertEqual(ethernet.vlanIDs, [5])
        let arp = try ARPPacket(requests[0][ethernet.payloadOffset...])
        XCTAssertEqual(arp.senderIP, DemoScenario.terminalA.bytes)
        XCTAssertEqual(arp.senderMAC, terminalMAC)
        XCTAssertEqual(arp.targetIP, DemoScenario.peer.bytes)
        let reply = ARPPacket(
            operation: .reply, senderMAC: peerMAC, senderIP: DemoScenario.peer.bytes, targetMAC: terminalMAC, targetIP: DemoScenario.terminalA.bytes)
        let answer = bridge.receive(
            from: .internet,
            frame: EthernetFrameView.build(
                destination: terminalMAC, source: peerMAC, vlanIDs: [5],
                etherType: EtherType.arp, payload: reply.encode()), at: ClockReading(monotonic: 0.2, wall: 0.2))
        XCTAssertEqual(answer, [.forward(.terminal)], "the answer reaches the terminal, whose name it was asked in")
        XCTAssertEqual(bridge.stations.station(for: DemoScenario.peer)?.mac, peerMAC)
        let ike = sent(bridge.tick(at: ClockReading(monotonic: 1.5, wall: 1.5)), on: .internet)
        XCTAssertEqual(ike.count, 1, "the IKE_SA_INIT goes out on its retransmission")
        XCTAssertEqual(try EthernetFrameView(ike[0]).destination, peerMAC)
    }
    /// A terminal enrolled by MAC that a DHCP server renumbers is acted for at its new address only; the old
    /// one (and what it had there) is let go. One enrolled by address is not touched.
    func testATerminalEnrolledByMACFollowsItsDHCPLease() {
        let enrolled = MACEnrollment(terminalID: 21, enrollmentKey: KeyMaterial(Array(repeating: 0x21, count: 32)), keyDeliveryPort: 9500)
        let bridge = makeBridge(enrollments: [terminalMAC: enrolled])
        func ack(_ address: [UInt8], to client: MACAddress? = nil) -> [UInt8] {
            var dhcp = [UInt8](repeating: 0, count: 240)
            dhcp[0] = 2
            dhcp[1] = 1
            dhcp[2] = 6
            dhcp[16..<20] = ArraySlice(address)
            dhcp[28..<34] = ArraySlice((client ?? terminalMAC).octets)
            dhcp[236..<240] = [99, 130, 83, 99]
            dhcp += [53, 1, 5, 255]
            let packet = IPHeaderBuilder.udpPacket(
                source: [10, 0, 0, 1], destination: [255, 255, 255, 255], sourcePort: 67, destinationPort: 68,
                payload: dhcp)
            return EthernetFrameView.build(destination: .broadcast, source: peerMAC, etherType: EtherType.ipv4, payload: packet)
        }
        _ = bridge.receive(from: .internet, frame: ack([10, 0, 0, 31]), at: ClockReading(monotonic: 0, wall: 0))
        XCTAssertEqual(bridge.proxy.registry.terminal(at: IPAddress("10.0.0.31")!)?.terminalID, 21)
        let actions = bridge.receive(from: .internet, frame: ack([10, 0, 0, 32]), at: ClockReading(monotonic: 1, wall: 1))
        XCTAssertEqual(bridge.proxy.registry.terminal(at: IPAddress("10.0.0.32")!)?.keyDeliveryAddress, IPAddress("10.0.0.32")!)
        XCTAssertNil(bridge.proxy.registry.entries[IPAddress("10.0.0.31")!], "the old address is let go")
        XCTAssertTrue(
            actions.contains(
                .log(
                    "terminal 21: 10.0.0.31 is no longer its address (DHCP lease): not acted for; "
                        + "0 CHILD SA(s) deleted in the terminal and with the peers")), "\(actions)")
        XCTAssertTrue(actions.contains(.forward(.terminal)), "the DHCPACK itself crosses unchanged")
        XCTAssertEqual(bridge.proxy.counters["terminal_addresses_withdrawn"], 1)
        // A terminal enrolled by address (10.0.0.11, terminal 11) keeps it when a lease gives it to someone else.
        let taken = bridge.receive(
            from: .internet, frame: ack([10, 0, 0, 11], to: MACAddress([2, 0, 0, 0, 0, 0x77])), at: ClockReading(monotonic: 2, wall: 2))
        XCTAssertEqual(bridge.proxy.registry.terminal(at: DemoScenario.terminalA)?.terminalID, 11)
        XCTAssertFalse(taken.contains { if case .log(let line) = $0 { line.text.contains("not acted for") } else { false } })
    }
}
