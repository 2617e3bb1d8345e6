import ESP
import IKEv2
import Packets
import XCTest

@testable import Proxy
@testable import ProxyDemo

/// Every branch of the two flows of the design, with the real engine, ESP and terminal agent on
/// virtual links (docs/proxy.md).
class ProxyFlowTests: XCTestCase {
    /// The proxy's IKE engines (ShardedProxyFlowTests runs every test again with several).
    class var engineCount: Int { 1 }

    /// A proxy as the tests make it, with `engineCount` engines answering IKE side by side.
    func makeProxy(
        policy: PolicyTable, registry: TerminalRegistry, profiles: [ProtectionProfile], epoch: UInt64 = 1
    ) -> KeyExchangeProxy {
        let proxy = KeyExchangeProxy(policy: policy, registry: registry, profiles: profiles, engineCount: Self.engineCount, epoch: epoch)
        if Self.engineCount > 1 { proxy.batchesIKE = EngineShards.runAtOnce }
        return proxy
    }

    let peer = DemoScenario.peer, a = DemoScenario.terminalA, b = DemoScenario.terminalB, c = DemoScenario.stranger

    func ping(_ network: VirtualNetwork, from terminal: IPAddress, sequence: UInt16 = 1) {
        network.terminalSends(terminal, HostStack.echoRequest(from: terminal, to: peer, sequence: sequence))
        network.run()
    }

    /// No packet on the Internet link carries plaintext between a terminal and the peer, except bypass.
    func assertNoPlaintextLeak(_ network: VirtualNetwork, file: StaticString = #filePath, line: UInt = #line) {
        for packet in network.internetLink {
            guard let view = try? IPPacketView(packet) else { continue }
            let isICMP = view.upperProtocol == IPProtocolNumber.icmp
            XCTAssertFalse(isICMP, "plaintext ICMP crossed the Internet link", file: file, line: line)
        }
    }

    // Internet side

    func testPeerInitiatedNegotiationSetsKeysIntoTheTerminalAndTrafficFlows() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA, "keys set into terminal A")
        XCTAssertEqual(network.proxy.counters["ike_answered_for_terminal"], 2, "IKE_SA_INIT and IKE_AUTH answered in A's name")
        XCTAssertEqual(network.proxy.store.count, 1)
        for sequence in 1...5 { network.peerSends(HostStack.echoRequest(from: peer, to: a, sequence: UInt16(sequence))) }
        network.run()
        XCTAssertEqual(network.peer.stack.received.filter(HostStack.isEchoReply).count, 5, "A answered through ESP")
        XCTAssertEqual(network.peer.espReceived, 5)
        XCTAssertEqual(network.proxy.counters["forwarded_esp"], 5)
        assertNoPlaintextLeak(network)
        // The IKE replies came from A's address: the peer's IKE SA names A as its remote end.
        XCTAssertEqual(network.peer.engine.sessionSummaries.first?.remote.address, a)
    }

    func testInternetPacketsThatPolicyDiscardsAreDropped() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        network.peerSends(HostStack.tcpSyn(from: peer, to: a, destinationPort: 40000).withSourcePort(23))
        network.run()
        XCTAssertEqual(network.proxy.counters["drop_policy_discard"], 1)
        XCTAssertTrue(network.terminals[a]!.stack.received.isEmpty)
    }

    func testNonKeyExchangeTrafficFromTheInternetIsForwarded() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        network.peerSends(HostStack.udp(from: peer, to: b, sourcePort: 53, destinationPort: 33000, payload: [1, 2, 3]))
        network.run()
        XCTAssertEqual(network.terminals[b]!.stack.received.count, 1)
        XCTAssertEqual(network.proxy.counters["forwarded_to_terminal"], 1)
    }

    func testIKEForAnUnregisteredTerminalIsDropped() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        network.peerInitiates(connection: "to-\(c)")
        network.run()
        XCTAssertGreaterThanOrEqual(network.proxy.counters["drop_ike_for_unregistered_terminal"] ?? 0, 1)
        XCTAssertFalse(network.terminals[c]!.hasOutboundSA)
        XCTAssertTrue(network.terminals[c]!.stack.received.isEmpty, "the stranger never sees IKE either")
    }

    func testKeyDeliveryArrivingFromTheInternetIsDropped() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        network.peerSends(HostStack.udp(from: peer, to: a, sourcePort: 9500, destinationPort: 9500, payload: Array(repeating: 0, count: 80)))
        network.run()
        XCTAssertEqual(network.proxy.counters["drop_key_delivery_from_internet"], 1)
        XCTAssertTrue(network.terminals[a]!.stack.received.isEmpty)
    }

    func testPeerRestartingWhileAValidSAIsStoredGetsTheStoredKeysSetAtOnce() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        XCTAssertEqual(network.proxy.counters["stored_sa_set_for_peer_request"], 1)
        XCTAssertEqual(network.proxy.store.count, 2, "and the new negotiation is answered too")
    }

    func testAPeerReauthenticatingMakeBeforeBreakLeavesTheTerminalOnTheNewSA() {
        // As strongSwan with make_before_break: a whole new IKE SA and CHILD SA, then the old IKE SA deleted.
        let network = DemoScenario.network(engineCount: Self.engineCount)
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        let old = network.peer.engine.sessionSummaries.filter(\.established)
        XCTAssertEqual(old.count, 1)
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        XCTAssertEqual(network.proxy.store.count, 2, "old and new CHILD SA overlap")
        network.peerDeletesIKE(connection: "to-\(a)", spiInitiator: old[0].spiInitiator)
        network.run()
        XCTAssertEqual(network.proxy.store.count, 1, "the old CHILD SA left the store with its IKE SA")
        XCTAssertNotEqual(network.proxy.store.children.values.first?.inbound.spi, old[0].children.first?.outbound, "the one left is the new one")
        XCTAssertEqual(network.proxy.engines.sessionSummaries.filter(\.established).count, 1)
        XCTAssertEqual(network.terminals[a]!.agent.database.outbound.count, 1, "the terminal keeps the new SA only")
        for sequence in 1...3 { network.peerSends(HostStack.echoRequest(from: peer, to: a, sequence: UInt16(sequence))) }
        network.run()
        XCTAssertEqual(network.peer.stack.received.filter(HostStack.isEchoReply).count, 3, "A answers through the new SA")
        assertNoPlaintextLeak(network)
    }

    // Terminal side

    func testTerminalStartRequestRunsOneNegotiationAndPlaintextNeverLeaves() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        for sequence in 1...4 {  // concurrent start requests for one flow
            network.terminalSends(b, HostStack.echoRequest(from: b, to: peer, sequence: UInt16(sequence)))
        }
        network.run()
        XCTAssertEqual(network.proxy.counters["negotiations_started"], 1, "one negotiation, however many start requests")
        XCTAssertGreaterThanOrEqual(network.proxy.counters["start_request_joined_negotiation"] ?? 0, 3)
        XCTAssertEqual(network.proxy.counters["drop_plaintext_of_protected_flow"], 4)
        XCTAssertTrue(network.terminals[b]!.hasOutboundSA)
        ping(network, from: b, sequence: 9)
        XCTAssertEqual(network.terminals[b]!.echoRepliesReceived, 1, "then traffic flows through ESP")
        XCTAssertEqual(network.peer.espReceived, 1)
        assertNoPlaintextLeak(network)
    }

    /// The daemon's histograms: how long a negotiation the proxy started took, and key delivery's round trips.
    func testTheNegotiationsTheProxyStartedAndKeyDeliveryAreTimed() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        network.terminalLinkLatency = 0.01
        ping(network, from: a)
        let timings = network.proxy.takeTimings()
        XCTAssertEqual(timings.negotiations.count, 1, "the one negotiation the terminal's packet started")
        XCTAssertGreaterThanOrEqual(timings.negotiations.first ?? 0, 0.0019, "at least IKE_SA_INIT and IKE_AUTH over the peer's link")
        XCTAssertGreaterThanOrEqual(timings.keyDeliveryRoundTrips.count, 2, "both SAs set and acknowledged")
        XCTAssertTrue(
            timings.keyDeliveryRoundTrips.allSatisfy { $0 >= 0.0104 }, "to the terminal 10 ms away and back: \(timings.keyDeliveryRoundTrips)")
        XCTAssertTrue(network.proxy.takeTimings().negotiations.isEmpty, "taken once")
    }

    func testAcquireFromTheTerminalStartsTheSamePath() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        // The agent passes the packet on and sends an ACQUIRE; the proxy drops the one and acts on the other.
        ping(network, from: a)
        XCTAssertGreaterThanOrEqual(network.proxy.counters["acquires"] ?? 0, 1)
        XCTAssertEqual(network.proxy.counters["negotiations_started"], 1)
    }

    func testStoredSAIsReusedWithoutNegotiationAfterATerminalRestart() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        ping(network, from: a)
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA)
        ping(network, from: a, sequence: 5)  // some ESP goes out before the restart
        network.terminals[a]!.restart(epoch: 2)
        XCTAssertFalse(network.terminals[a]!.hasOutboundSA)
        ping(network, from: a, sequence: 2)
        XCTAssertEqual(network.proxy.counters["negotiations_started"], 1, "no second negotiation")
        XCTAssertEqual(network.proxy.counters["stored_sa_reused"], 1)
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA)
        // Never a sequence number (and so never an AEAD nonce) twice with the same keys.
        let resumed = network.terminals[a]!.agent.database.outbound.first!
        let seen = network.proxy.store.highestOutboundSequence[resumed.parameters.spi] ?? 0
        XCTAssertGreaterThan(seen, 0)
        XCTAssertGreaterThanOrEqual(resumed.sequence, seen + SAStore.sequenceMargin)
        ping(network, from: a, sequence: 3)
        XCTAssertEqual(
            network.terminals[a]!.echoRepliesReceived, 2, "one reply before the restart, one with the resumed SA (the peer's replay window moved on)")
    }

    /// A restarted agent reports at once that it holds no SA (its first STATUS): the proxy sets the stored
    /// SAs again without waiting for the terminal to send, so the peer's ESP to it is decrypted again.
    func testATerminalThatReportsNoSAGetsItsStoredSAsBackAtOnce() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        network.peerSends(HostStack.echoRequest(from: peer, to: a, sequence: 1))
        network.run()
        XCTAssertEqual(network.terminals[a]!.echoRepliesReceived, 0)
        XCTAssertEqual(network.peer.espReceived, 1, "the terminal answered through ESP")
        let stored = network.proxy.store.children.values.first { $0.terminal == a }!

        network.terminals[a]!.restart(epoch: 2, statusInterval: 30)
        XCTAssertFalse(network.terminals[a]!.hasOutboundSA)
        network.advance(by: 1)  // the agent's first tick sends its STATUS
        XCTAssertEqual(network.proxy.counters["terminal_lost_its_sas"], 1)
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA, "its keys are back before it sent anything")
        XCTAssertEqual(network.terminals[a]!.agent.database.outbound.first?.parameters.spi, stored.outbound.spi, "the stored SA, not a new one")
        XCTAssertEqual(network.proxy.counters["negotiations_started"], nil, "no negotiation")
        network.peerSends(HostStack.echoRequest(from: peer, to: a, sequence: 2))
        network.run()
        XCTAssertEqual(network.peer.espReceived, 2, "the peer's ESP is decrypted again and answered")

        // Its next STATUS lists the SA: nothing is set again.
        network.advance(by: 31)
        XCTAssertEqual(network.proxy.counters["terminal_lost_its_sas"], 1)
    }

    /// A proxy that lost its state (restarted without a store) sees a terminal's ESP on an SA it does not hold:
    /// it tells the terminal to delete that SA, whose next packets then start a new negotiation; traffic
    /// resumes instead of vanishing until the SA's lifetime ends.
    func testAProxyThatLostItsStateMakesTheTerminalDropItsStaleSA() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        ping(network, from: a)
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA)
        let stale = network.terminals[a]!.agent.database.outbound.first!.parameters.spi
        network.restartProxy(
            makeProxy(
                policy: DemoScenario.policy(),
                registry: TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: DemoScenario.terminals()),
                profiles: [DemoScenario.profile()], epoch: 2))
        ping(network, from: a, sequence: 2)
        XCTAssertEqual(network.proxy.counters["drop_esp_of_unknown_sa"], 1)
        XCTAssertEqual(network.proxy.counters["stale_sa_deleted_in_terminal"], 1)
        XCTAssertFalse(
            network.terminals[a]!.agent.database.outbound.contains { $0.parameters.spi == stale }, "the stale SA is deleted in the terminal")
        let replies = network.terminals[a]!.echoRepliesReceived
        ping(network, from: a, sequence: 3)
        XCTAssertEqual(network.proxy.counters["negotiations_started"], 1, "its next packet started a negotiation")
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA)
        ping(network, from: a, sequence: 4)
        XCTAssertGreaterThan(network.terminals[a]!.echoRepliesReceived, replies, "and its traffic flows again")
    }

    /// The same found by the terminal's STATUS: every SA it lists that the proxy does not hold is deleted in it,
    /// inbound ones too; SAs the proxy holds are left alone.
    func testSAsATerminalReportsThatTheProxyDoesNotHoldAreDeletedInIt() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        ping(network, from: a)
        ping(network, from: DemoScenario.terminalB)
        network.restartProxy(
            makeProxy(
                policy: DemoScenario.policy(),
                registry: TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: DemoScenario.terminals()),
                profiles: [DemoScenario.profile()], epoch: 2))
        ping(network, from: DemoScenario.terminalB, sequence: 2)  // B's stale outbound goes, and B negotiates again
        ping(network, from: DemoScenario.terminalB, sequence: 3)
        let bHeld = network.terminals[DemoScenario.terminalB]!.agent.database
        network.terminals[a]!.agent.statusInterval = 30
        network.terminals[DemoScenario.terminalB]!.agent.statusInterval = 30
        network.advance(by: 31)
        XCTAssertTrue(
            network.terminals[a]!.agent.database.inbound.isEmpty && network.terminals[a]!.agent.database.outbound.isEmpty,
            "A's stale SAs, inbound and outbound, are deleted")
        let bNow = network.terminals[DemoScenario.terminalB]!.agent.database
        XCTAssertEqual(
            bNow.outbound.map(\.parameters.spi),
            bHeld.outbound.filter { network.proxy.store.children[$0.parameters.spi] != nil }
                .map(\.parameters.spi), "B keeps the SA the proxy holds")
        XCTAssertFalse(bNow.outbound.isEmpty)
        XCTAssertEqual(network.proxy.counters["negotiations_started"], 1, "no negotiation came of it")
    }

    func testDiscardAndBypassFromTheTerminalSide() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        network.terminalSends(b, HostStack.tcpSyn(from: b, to: peer, destinationPort: 23))
        network.terminalSends(b, HostStack.udp(from: b, to: peer, sourcePort: 33000, destinationPort: 53, payload: Array("query".utf8)))
        network.run()
        XCTAssertEqual(network.proxy.counters["drop_policy_discard"], 1)
        XCTAssertEqual(network.proxy.counters["bypassed"], 1)
        XCTAssertEqual(network.peer.plaintextReceived, 1, "only the bypass packet reached the peer")
        XCTAssertNil(network.proxy.counters["negotiations_started"], "no SA for flows that are not protected")
        XCTAssertEqual(network.proxy.counters["acquire_for_unprotected_flow"], 2)
    }

    func testUnregisteredTerminalGetsNoSA() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        ping(network, from: c)
        XCTAssertGreaterThanOrEqual(network.proxy.counters["drop_start_request_from_unregistered_terminal"] ?? 0, 1)
        XCTAssertFalse(network.terminals[c]!.hasOutboundSA)
        XCTAssertEqual(network.proxy.store.count, 0)
        assertNoPlaintextLeak(network)
    }

    func testESPWithAnUnknownSPIFromTheTerminalIsDropped() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        network.terminalSends(
            a,
            HostStack.udp(
                from: a, to: peer, sourcePort: 4500, destinationPort: 4500,
                payload: [0xde, 0xad, 0xbe, 0xef] + Array(repeating: 1, count: 40)))
        network.run()
        XCTAssertEqual(network.proxy.counters["drop_esp_of_unknown_sa"], 1)
        XCTAssertEqual(network.peer.espReceived, 0)
    }

    func testTwoTerminalsTalkingToOnePeerEachGetTheirOwnKeys() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        ping(network, from: a)
        ping(network, from: b)
        let sas = network.proxy.store.children.values
        XCTAssertEqual(sas.count, 2)
        XCTAssertEqual(Set(sas.map(\.terminal)), [a, b])
        XCTAssertNotEqual(sas.first?.outbound.encryptionKey, sas.dropFirst().first?.outbound.encryptionKey)
        ping(network, from: a, sequence: 2)
        ping(network, from: b, sequence: 2)
        XCTAssertEqual(network.terminals[a]!.echoRepliesReceived, 1)
        XCTAssertEqual(network.terminals[b]!.echoRepliesReceived, 1)
    }

    func testTheDemoRunsToTheEnd() {
        var lines: [String] = []
        XCTAssertTrue(DemoRun.run { lines.append($0) }, lines.joined(separator: "\n"))
        XCTAssertTrue(lines.last?.contains("every step worked") ?? false)
    }

    /// Issue 22: a profile with hybrid proposals (X25519 + ML-KEM-768) and a required post-quantum preshared key
    /// gives the terminals under it hybrid, PPK-mixed keys in both flows, and keeps them so through CHILD SA rekeys
    /// (IKE_FOLLOWUP_KE) and IKE SA rekeys either side starts; the events name every key exchange and the PPK.
    func testAQuantumSafeProfileGivesHybridKeysInBothFlowsAndTheirRekeys() throws {
        let d = DemoScenario.terminalD
        for flow in ["peer starts", "terminal starts"] {
            var profile = DemoScenario.quantumSafeProfile()
            profile.childRekeyTime = 100
            profile.ikeRekeyTime = 300
            let network = DemoScenario.network(engineCount: Self.engineCount, quantumSafe: profile)
            if flow == "peer starts" {
                network.peerInitiates(connection: "to-\(d)")
                network.run()
            } else {
                ping(network, from: d)
            }
            XCTAssertTrue(network.terminals[d]!.hasOutboundSA, flow)
            let ours = try XCTUnwrap(network.proxy.engines.sessionSummaries.first { $0.established }, flow)
            let theirs = try XCTUnwrap(network.peer.engine.sessionSummaries.first { $0.established }, flow)
            XCTAssertEqual(ours.suite?.name, DemoScenario.hybridIKEProposal, flow)
            XCTAssertEqual(theirs.suite?.name, DemoScenario.hybridIKEProposal, flow)
            XCTAssertEqual(ours.ppkIdentity, "demo-ppk", flow)
            XCTAssertEqual(theirs.ppkIdentity, "demo-ppk", flow)
            XCTAssertEqual(network.peer.events.first { $0.kind == .ikeEstablished }?.ppkIdentity, "demo-ppk")
            let first = try XCTUnwrap(network.proxy.store.children.values.first).outbound.spi
            // A CHILD SA rekey each way: CREATE_CHILD_SA with X25519, then ML-KEM-768 in IKE_FOLLOWUP_KE.
            network.peerInitiatesRekey(connection: "to-\(d)")
            network.run()
            XCTAssertEqual(network.peer.events.last { $0.kind == .childRekeyed }?.child?.suite.name, DemoScenario.hybridESPProposal, flow)
            network.advance(by: 110)  // the profile's rekey_time: the proxy rekeys it
            XCTAssertEqual(network.peer.events.filter { $0.kind == .childRekeyed }.count, 2, flow)
            XCTAssertEqual(network.peer.events.last { $0.kind == .childRekeyed }?.child?.suite.name, DemoScenario.hybridESPProposal, flow)
            // IKE SA rekeys by the peer, then by the proxy (ike_rekey_time), each with its own IKE_FOLLOWUP_KE.
            network.peerInitiatesIKERekey(connection: "to-\(d)")
            network.run()
            network.advance(by: 320)
            let rekeyed = network.peer.events.filter { $0.kind == .ikeRekeyed }
            XCTAssertGreaterThanOrEqual(rekeyed.count, 2, flow)
            XCTAssertTrue(rekeyed.allSatisfy { $0.ikeSuite?.name == DemoScenario.hybridIKEProposal }, flow)
            XCTAssertTrue(rekeyed.allSatisfy { $0.ppkIdentity == "demo-ppk" }, "the rekeyed IKE SAs' keys come from the PPK-mixed SK_d")
            XCTAssertEqual(network.proxy.engines.sessionSummaries.filter(\.established).count, 1, flow)
            XCTAssertEqual(network.proxy.store.count, 1, flow)
            XCTAssertNotEqual(network.proxy.store.children.values.first?.outbound.spi, first, flow)
            ping(network, from: d, sequence: 7)
            XCTAssertEqual(network.terminals[d]!.echoRepliesReceived, 1, "\(flow): traffic flows on the last keys")
            assertNoPlaintextLeak(network)
        }
    }

    // SA store: rekey and expiry

    /// The demo network after the peer made terminal A's SA and rekeyed it: the network and the old outbound SPI.
    func rekeyedByThePeer() -> (VirtualNetwork, ChildSPI) {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        let old = network.proxy.store.children.values.first!.outbound.spi
        network.peerInitiatesRekey(connection: "to-\(a)")
        network.run()
        return (network, old)
    }

    func testRekeyReachesTheTerminalMakeBeforeBreak() {
        let (network, old) = rekeyedByThePeer()
        XCTAssertNotNil(network.proxy.store.children.values.first { $0.outbound.spi != old }, "the new SA is stored")
        XCTAssertNil(network.proxy.store.children[old], "the old one is gone")
        XCTAssertEqual(network.terminals[a]!.agent.database.outbound.count, 1)
        XCTAssertNotEqual(network.terminals[a]!.agent.database.outbound.first?.parameters.spi, old)
        network.peerSends(HostStack.echoRequest(from: peer, to: a, sequence: 1))
        network.run()
        XCTAssertEqual(network.peer.stack.received.filter(HostStack.isEchoReply).count, 1, "traffic flows on the new SA")
        // Counted by event, for the status and the metrics.
        XCTAssertEqual(network.proxy.counters["child_sa_established"], 1)
        XCTAssertEqual(network.proxy.counters["child_sa_rekeyed"], 1)
        XCTAssertNil(network.proxy.counters["child_sa_failed"])
    }

    /// The peer sends on a new CHILD SA as soon as it has the answer that made it, so the proxy answers only once the
    /// terminal acknowledged the new inbound SA: with a terminal 0.2 s away, the peer's IKE_AUTH and its rekey
    /// each complete after the terminal holds the SA the peer will send on; and the terminal sends on the rekeyed
    /// SA only once the peer deleted the old one (it has processed the answer), so no ESP is lost either way.
    func testAnAnswerThatMakesACHILDSAWaitsUntilTheTerminalHoldsItsInboundSA() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        network.terminalLinkLatency = 0.2
        var checked = 0
        var rekeyed: ChildSPI?
        network.onPeerEvent = { event in
            guard let child = event.child, event.kind == .childEstablished || event.kind == .childRekeyed else { return }
            checked += 1
            XCTAssertNotNil(
                network.terminals[self.a]!.agent.database.inbound[child.spiOutbound],
                "the terminal holds \(child.spiOutbound) (in) when the peer has the answer (\(event.kind))")
            if event.kind == .childRekeyed {
                // The terminal sends on the new SA only once the peer deleted the old one, having processed the answer.
                XCTAssertFalse(
                    network.terminals[self.a]!.agent.database.outbound.contains { $0.parameters.spi == child.spiInbound },
                    "the terminal does not send on \(child.spiInbound) before the peer can receive on it")
                rekeyed = child.spiInbound
            }
        }
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        network.peerInitiatesRekey(connection: "to-\(a)")
        network.run()
        XCTAssertEqual(checked, 2, "the peer made a CHILD SA and rekeyed it")
        XCTAssertEqual(
            network.terminals[a]!.agent.database.outbound.map(\.parameters.spi), rekeyed.map { [$0] },
            "after the peer's Delete of the old SA the terminal sends on the new one only")
        XCTAssertEqual(network.proxy.counters["ike_answer_held_for_keys"], 2)
        XCTAssertNil(network.proxy.counters["ike_answer_sent_before_keys"], "none waited until the limit")
        for sequence in 1...3 { network.peerSends(HostStack.echoRequest(from: peer, to: a, sequence: UInt16(sequence))) }
        network.run()
        XCTAssertEqual(network.peer.stack.received.filter(HostStack.isEchoReply).count, 3)
    }

    /// ESP the terminal sent on the old SA just before it had the new one still goes out for a few seconds after
    /// the peer deleted the old CHILD SA (the peer keeps the old inbound SA that long; strongSwan 5 s).
    func testESPOnARekeyedAwaySAStillGoesOutBriefly() {
        let (network, old) = rekeyedByThePeer()
        XCTAssertNil(network.proxy.store.children[old], "the old CHILD SA is deleted")
        let late = IPHeaderBuilder.udpPacket(
            source: a.bytes, destination: peer.bytes, sourcePort: 4500, destinationPort: 4500,
            payload: old.bytes + [0, 0, 0, 9] + Array(repeating: 0xab, count: 40))
        XCTAssertEqual(network.proxy.receive(from: .terminal, packet: late, at: ClockReading(monotonic: network.now, wall: 0)), [.forward(.internet)])
        XCTAssertEqual(network.proxy.counters["forwarded_esp_of_replaced_sa"], 1)
        // Another terminal may not use it, and after the grace it is an unknown SA.
        let stranger = IPHeaderBuilder.udpPacket(
            source: b.bytes, destination: peer.bytes, sourcePort: 4500, destinationPort: 4500,
            payload: old.bytes + [0, 0, 0, 9] + Array(repeating: 0xab, count: 40))
        XCTAssertNotEqual(
            network.proxy.receive(from: .terminal, packet: stranger, at: ClockReading(monotonic: network.now, wall: 0)), [.forward(.internet)])
        let later = network.now + SAStore.replacedSAGrace + 1
        _ = network.proxy.tick(at: ClockReading(monotonic: later, wall: 0))
        XCTAssertNotEqual(network.proxy.receive(from: .terminal, packet: late, at: ClockReading(monotonic: later, wall: 0)), [.forward(.internet)])
        XCTAssertEqual(network.proxy.counters["drop_esp_of_unknown_sa"], 2)
    }

    /// The demo network with the proxy's profile changed by `edit`.
    func network(_ edit: (inout ProtectionProfile) -> Void) -> VirtualNetwork {
        var profile = DemoScenario.profile()
        edit(&profile)
        let registry = TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: DemoScenario.terminals())
        let proxy = makeProxy(policy: DemoScenario.policy(), registry: registry, profiles: [profile])
        return VirtualNetwork(proxy: proxy, peer: DemoScenario.peerEngine(), peerAddress: peer, terminals: DemoScenario.terminals())
    }

    func testAChildlessProfileGetsTheTerminalsSAFromCREATE_CHILD_SA() {
        let network = network { $0.childless = .force }
        var lines: [String] = []
        network.log = { lines.append($0) }
        ping(network, from: a)
        XCTAssertTrue(lines.contains { $0.contains("IKE_AUTH without a CHILD SA (childless, RFC 6023)") }, "\(lines)")
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA, "keys set into terminal A after CREATE_CHILD_SA")
        XCTAssertEqual(network.proxy.counters["negotiations_started"], 1)
        XCTAssertEqual(network.proxy.store.count, 1)
        ping(network, from: a, sequence: 2)
        XCTAssertEqual(network.terminals[a]!.echoRepliesReceived, 1, "traffic flows through ESP")
        assertNoPlaintextLeak(network)
    }

    func testAPeersChildlessIKESAThenItsChildReachTheTerminal() {
        let registry = TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: DemoScenario.terminals())
        let proxy = makeProxy(policy: DemoScenario.policy(), registry: registry, profiles: [DemoScenario.profile()])
        let network = VirtualNetwork(
            proxy: proxy, peer: DemoScenario.peerEngine(childless: .force), peerAddress: peer,
            terminals: DemoScenario.terminals())
        var lines: [String] = []
        network.log = { lines.append($0) }
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        XCTAssertTrue(lines.contains { $0.contains("childless IKE_AUTH, RFC 6023") }, "\(lines)")
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA, "keys set into terminal A")
        XCTAssertEqual(network.proxy.store.count, 1)
        for sequence in 1...3 { network.peerSends(HostStack.echoRequest(from: peer, to: a, sequence: UInt16(sequence))) }
        network.run()
        XCTAssertEqual(network.peer.stack.received.filter(HostStack.isEchoReply).count, 3, "A answered through ESP")
        assertNoPlaintextLeak(network)
    }

    /// A table whose only protect rule is TCP to the peer's port 5001; the rest bypasses.
    func tcpOnlyNetwork() -> VirtualNetwork {
        let terminals = AddressPrefix("10.0.0.0/24")!
        let policy = PolicyTable(
            rules: [
                PolicyRule(
                    source: terminals, destination: AddressPrefix(peer.description)!, ipProtocol: 6,
                    destinationPorts: PortRange(5001, 5001), action: .protect(profile: "gateway"))
            ],
            defaultAction: .bypass)
        let proxy = makeProxy(
            policy: policy, registry: TerminalRegistry(allowedPrefixes: [terminals], terminals: DemoScenario.terminals()),
            profiles: [DemoScenario.profile()])
        return VirtualNetwork(proxy: proxy, peer: DemoScenario.peerEngine(), peerAddress: peer, terminals: DemoScenario.terminals())
    }

    func testAProtocolAndPortRuleGivesAnSAForThatFlowOnly() {
        let network = tcpOnlyNetwork()
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 5001))
        network.run()
        let child = network.proxy.store.children.values.first
        XCTAssertEqual(child.map { $0.outbound.sourceSelectors.map(\.description) }, ["\(a)/32[tcp]"])
        XCTAssertEqual(child.map { $0.outbound.destinationSelectors.map(\.description) }, ["198.51.100.1/32[tcp/5001]"])
        // The peer, configured host to host, narrowed its side to what the proxy asked for.
        let peerChild = network.peer.events.last { $0.kind == .childEstablished }?.child
        XCTAssertEqual(peerChild?.remoteTrafficSelectors.map(\.description), ["\(a)/32[tcp]"])
        // TCP to 5001 now goes through ESP; a ping is not the SA's and passes in the clear, as the policy says.
        let espBefore = network.peer.espReceived
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 5001))
        network.run()
        XCTAssertEqual(network.peer.espReceived, espBefore + 1, "the TCP segment went through ESP")
        ping(network, from: a, sequence: 7)
        XCTAssertEqual(network.terminals[a]!.echoRepliesReceived, 1, "the ping went and came back in the clear")
        XCTAssertEqual(network.peer.espReceived, espBefore + 1, "not through ESP")
        XCTAssertGreaterThanOrEqual(network.proxy.counters["bypassed"] ?? 0, 1)
    }

    func testAPeerOfferingHostToHostIsNarrowedToThePolicysFlow() {
        let network = tcpOnlyNetwork()
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        let peerChild = network.peer.events.last { $0.kind == .childEstablished }?.child
        XCTAssertEqual(peerChild?.localTrafficSelectors.map(\.description), ["198.51.100.1/32[tcp/5001]"], "narrowed by the proxy (RFC 7296 2.9)")
        XCTAssertEqual(peerChild?.remoteTrafficSelectors.map(\.description), ["\(a)/32[tcp]"])
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA)
    }

    /// The demo's terminals and peer with these rules from the terminals to the peer (the rest bypassed).
    func network(
        rules: [(ipProtocol: UInt8?, sourcePorts: PortRange, destinationPorts: PortRange, action: PolicyAction)],
        profiles: [ProtectionProfile] = [DemoScenario.profile()], peerEngine: IKEEngine = DemoScenario.peerEngine()
    ) -> VirtualNetwork {
        let terminals = AddressPrefix("10.0.0.0/24")!
        let peerPrefix = AddressPrefix(peer.description)!
        let policy = PolicyTable(
            rules: rules.map {
                PolicyRule(
                    source: terminals, destination: peerPrefix, ipProtocol: $0.ipProtocol,
                    sourcePorts: $0.sourcePorts, destinationPorts: $0.destinationPorts, action: $0.action)
            },
            defaultAction: .bypass)
        let proxy = makeProxy(
            policy: policy, registry: TerminalRegistry(allowedPrefixes: [terminals], terminals: DemoScenario.terminals()),
            profiles: profiles)
        return VirtualNetwork(proxy: proxy, peer: peerEngine, peerAddress: peer, terminals: DemoScenario.terminals())
    }

    /// SSH bypassed before "protect TCP": the SA leaves port 22 out, so the terminal sends SSH in the clear for
    /// the policy to pass, and the rest of TCP through ESP.
    func testAnEarlierBypassRuleIsCutOutOfTheSA() {
        let network = network(rules: [(6, .any, PortRange(22, 22), .bypass), (6, .any, .any, .protect(profile: "gateway"))])
        var lines: [String] = []
        network.log = { lines.append($0) }
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 5001))
        network.run()
        let child = network.proxy.store.children.values.first
        XCTAssertEqual(
            child.map { $0.outbound.destinationSelectors.map(\.description) }, ["198.51.100.1/32[tcp/0-21]", "198.51.100.1/32[tcp/23-65535]"])
        XCTAssertFalse(lines.contains { $0.contains("still cover") }, "everything was cut out: nothing to report")
        let espBefore = network.peer.espReceived
        let bypassedBefore = network.proxy.counters["bypassed"] ?? 0
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 22))
        network.run()
        XCTAssertEqual(network.peer.espReceived, espBefore, "SSH is not the SA's")
        XCTAssertEqual(network.proxy.counters["bypassed"] ?? 0, bypassedBefore + 1, "SSH passed in the clear, as the policy says")
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 5001))
        network.run()
        XCTAssertEqual(network.peer.espReceived, espBefore + 1, "other TCP goes through ESP")
    }

    /// Two profiles for one terminal and peer (TCP with AES-GCM in tunnel mode, UDP with ChaCha20-Poly1305): one IKE
    /// SA, set up by the first profile, with a CHILD SA per profile, each with its own transforms and selectors,
    /// each made when a flow of its profile first needs it.
    func testEachProfileGetsItsOwnCHILDSAOnThePairsIKESA() {
        var other = DemoScenario.profile()
        other.name = "other"
        other.espProposals = [try! ProposalSpec("chacha20poly1305", forIKE: false)]
        other.hardLifetime = 900
        let network = network(
            rules: [(6, .any, .any, .protect(profile: "gateway")), (17, .any, .any, .protect(profile: "other"))],
            profiles: [DemoScenario.profile(), other],
            peerEngine: DemoScenario.peerEngine(espProposals: ["aes256gcm16", "chacha20poly1305"]))
        network.terminalSends(a, HostStack.udp(from: a, to: peer, sourcePort: 5000, destinationPort: 53, payload: [1, 2, 3]))
        network.run()
        XCTAssertEqual(network.proxy.store.count, 1, "the UDP flow's CHILD SA, made with the IKE SA")
        let udp = network.proxy.store.children.values.first
        XCTAssertEqual(udp?.childName, "other-child")
        XCTAssertEqual(udp?.outbound.suite.name, "chacha20poly1305")
        XCTAssertEqual(udp?.outbound.destinationSelectors.map(\.description), ["198.51.100.1/32[udp]"])
        XCTAssertEqual(udp.flatMap { $0.hardLifetime }, 900, "the UDP profile's lifetime")
        // A TCP flow: the first profile's CHILD SA, with CREATE_CHILD_SA on the same IKE SA.
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 5001))
        network.run()
        XCTAssertEqual(network.proxy.store.count, 2)
        let tcp = network.proxy.store.children.values.first { $0.childName == "gateway-child" }
        XCTAssertEqual(tcp?.outbound.suite.name, "aes256gcm16")
        XCTAssertEqual(tcp?.outbound.destinationSelectors.map(\.description), ["198.51.100.1/32[tcp]"])
        XCTAssertEqual(tcp.map { $0.ikeSPIs.initiator }, udp.map { $0.ikeSPIs.initiator }, "one IKE SA for both")
        XCTAssertEqual(network.proxy.engines.sessionSummaries.filter(\.established).count, 1)
        // Both flows now go through ESP, each on its own SA.
        let espBefore = network.peer.espReceived
        network.terminalSends(a, HostStack.udp(from: a, to: peer, sourcePort: 5000, destinationPort: 53, payload: [4, 5, 6]))
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 5001))
        network.run()
        XCTAssertEqual(network.peer.espReceived, espBefore + 2)
        XCTAssertEqual(network.terminals[a]!.agent.database.outbound.count, 2)
        XCTAssertEqual(network.peer.plaintextReceived, 0)
    }

    /// A protect rule added (over the API, say) after the SA was made: the flow it protects gets a CHILD SA with
    /// the current selectors at its first packet, which replaces the old SA (make-before-break, no restart, no
    /// manual delete), and then goes through ESP.
    func testAPolicyChangeReachesTheNextFlowWithANewCHILDSA() {
        let network = tcpOnlyNetwork()
        var lines: [String] = []
        network.log = { lines.append($0) }
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 5001))
        network.run()
        let old = network.proxy.store.children.values.first!.outbound.spi
        let terminals = AddressPrefix("10.0.0.0/24")!
        network.proxy.policy = PolicyTable(
            rules: network.proxy.policy.rules + [
                PolicyRule(
                    source: terminals, destination: AddressPrefix(peer.description)!,
                    ipProtocol: 17, action: .protect(profile: "gateway"))
            ],
            defaultAction: .bypass)
        network.terminalSends(a, HostStack.udp(from: a, to: peer, sourcePort: 5000, destinationPort: 53, payload: [1, 2, 3]))
        network.run()
        XCTAssertEqual(network.proxy.counters["renegotiated_after_policy_change"], 1)
        XCTAssertEqual(network.proxy.counters["child_sa_replaced_after_policy_change"], 1)
        XCTAssertEqual(network.proxy.store.count, 1, "the old SA was deleted")
        let new = network.proxy.store.children.values.first!
        XCTAssertNotEqual(new.outbound.spi, old)
        XCTAssertEqual(new.outbound.destinationSelectors.map(\.description), ["198.51.100.1/32[tcp/5001]", "198.51.100.1/32[udp]"])
        XCTAssertEqual(network.terminals[a]!.agent.database.outbound.map(\.parameters.spi), [new.outbound.spi], "the terminal holds the new SA only")
        let espBefore = network.peer.espReceived
        network.terminalSends(a, HostStack.udp(from: a, to: peer, sourcePort: 5000, destinationPort: 53, payload: [4, 5, 6]))
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 5001))
        network.run()
        XCTAssertEqual(network.peer.espReceived, espBefore + 2, "UDP and TCP through ESP")
        XCTAssertEqual(network.peer.plaintextReceived, 0)
        XCTAssertTrue(lines.contains { $0.contains("the policy changed since SA \(old) was made") }, "\(lines)")
    }

    /// A bypass rule put before the protect rule (over the API, say) reaches the SA at once: applyPolicy has it
    /// replaced by one without that port, and the port's traffic then leaves the terminal in the clear. A policy
    /// that no longer protects the pair has the SA deleted.
    func testApplyingAChangedPolicyReplacesOrDeletesTheSAs() {
        let terminals = AddressPrefix("10.0.0.0/24")!
        let peerPrefix = AddressPrefix(peer.description)!
        let protectTCP = PolicyRule(source: terminals, destination: peerPrefix, ipProtocol: 6, action: .protect(profile: "gateway"))
        let network = network(rules: [(6, .any, .any, .protect(profile: "gateway"))])
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 5001))
        network.run()
        let old = network.proxy.store.children.values.first!.outbound.spi
        XCTAssertTrue(network.proxy.applyPolicy(at: ClockReading(monotonic: network.now, wall: 0)).isEmpty, "nothing changed, nothing to do")
        network.proxy.policy = PolicyTable(
            rules: [
                PolicyRule(
                    source: terminals, destination: peerPrefix, ipProtocol: 6,
                    destinationPorts: PortRange(22, 22), action: .bypass), protectTCP
            ],
            defaultAction: .bypass)
        for action in network.proxy.applyPolicy(at: ClockReading(monotonic: network.now, wall: 0)) {
            if case .send(let side, let packet) = action { network.inject(side, packet) }
        }
        network.run()
        XCTAssertEqual(network.proxy.counters["renegotiated_after_policy_change"], 1)
        XCTAssertEqual(network.proxy.store.count, 1)
        let new = network.proxy.store.children.values.first!
        XCTAssertNotEqual(new.outbound.spi, old, "replaced")
        XCTAssertEqual(new.outbound.destinationSelectors.map(\.description), ["198.51.100.1/32[tcp/0-21]", "198.51.100.1/32[tcp/23-65535]"])
        XCTAssertEqual(network.terminals[a]!.agent.database.outbound.map(\.parameters.spi), [new.outbound.spi])
        let bypassed = network.proxy.counters["bypassed"] ?? 0
        let esp = network.peer.espReceived
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 22))
        network.run()
        XCTAssertEqual(network.proxy.counters["bypassed"] ?? 0, bypassed + 1, "SSH now leaves in the clear, as the new rule says")
        XCTAssertEqual(network.peer.espReceived, esp)
        // Nothing protected any more: the SA goes, in the store and in the terminal.
        network.proxy.policy = PolicyTable(rules: [], defaultAction: .bypass)
        for action in network.proxy.applyPolicy(at: ClockReading(monotonic: network.now, wall: 0)) {
            if case .send(let side, let packet) = action { network.inject(side, packet) }
        }
        network.run()
        XCTAssertEqual(network.proxy.store.count, 0)
        XCTAssertEqual(network.proxy.counters["child_sa_deleted_after_policy_change"], 1)
        XCTAssertTrue(network.terminals[a]!.agent.database.outbound.isEmpty)
    }

    /// A policy change that finds the pair negotiating (here: another profile's CHILD SA) is applied again from
    /// tick once that is done.
    func testAPolicyChangeDuringANegotiationIsAppliedAfterIt() {
        var other = DemoScenario.profile()
        other.name = "other"
        let network = network(
            rules: [(6, .any, PortRange(5001, 5001), .protect(profile: "gateway")), (17, .any, .any, .protect(profile: "other"))],
            profiles: [DemoScenario.profile(), other])
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 5001))
        network.run()
        let tcp = network.proxy.store.children.values.first!.outbound.spi
        // A UDP flow starts the other profile's CHILD SA; its packets are still on the links.
        network.terminalSends(a, HostStack.udp(from: a, to: peer, sourcePort: 5000, destinationPort: 53, payload: [1]))
        network.run(for: 0.0007)
        XCTAssertTrue(network.proxy.isNegotiating(terminal: a, peer: peer))
        // All TCP protected now: the TCP SA must be replaced, but the pair is busy.
        let terminals = AddressPrefix("10.0.0.0/24")!
        let peerPrefix = AddressPrefix(peer.description)!
        network.proxy.policy = PolicyTable(
            rules: [
                PolicyRule(source: terminals, destination: peerPrefix, ipProtocol: 6, action: .protect(profile: "gateway")),
                PolicyRule(source: terminals, destination: peerPrefix, ipProtocol: 17, action: .protect(profile: "other"))
            ],
            defaultAction: .bypass)
        XCTAssertTrue(network.proxy.applyPolicy(at: ClockReading(monotonic: network.now, wall: 0)).isEmpty, "skipped while the pair negotiates")
        network.run()
        XCTAssertEqual(network.proxy.store.count, 2, "the UDP CHILD SA is made")
        XCTAssertNil(network.proxy.counters["renegotiated_after_policy_change"])
        network.advance(by: 2)
        XCTAssertEqual(network.proxy.counters["renegotiated_after_policy_change"], 1, "tick applied the change")
        XCTAssertNil(network.proxy.store.children[tcp], "the TCP SA made for port 5001 is replaced")
        XCTAssertEqual(
            network.proxy.store.children.values.first { $0.childName == "gateway-child" }?.outbound.destinationSelectors.map(\.description),
            ["198.51.100.1/32[tcp]"])
    }

    /// A flow the policy protects but that the peer narrowed out of the SA gets no futile key delivery and no
    /// endless renegotiation: counted, said once, and its packets stay dropped.
    func testAFlowThePeerNarrowedOutGetsNoKeysAgain() {
        // The peer takes TCP to its port 5001 only.
        var connection = DemoScenario.peerEngine().connection(named: "to-\(a)")!
        connection.children[0].localTrafficSelectors = [try! TrafficSelector(text: "\(peer)[tcp/5001]")]
        let network = network(rules: [(6, .any, .any, .protect(profile: "gateway"))], peerEngine: IKEEngine(connections: [connection]))
        var lines: [String] = []
        network.log = { lines.append($0) }
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 5001))
        network.run()
        XCTAssertEqual(network.proxy.store.children.values.first?.outbound.destinationSelectors.map(\.description), ["198.51.100.1/32[tcp/5001]"])
        let reusedBefore = network.proxy.counters["stored_sa_reused"] ?? 0
        for _ in 0..<3 {
            network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 6000))
            network.run()
        }
        XCTAssertGreaterThanOrEqual(network.proxy.counters["start_request_outside_stored_sa"] ?? 0, 3)
        XCTAssertEqual(network.proxy.counters["stored_sa_reused"] ?? 0, reusedBefore, "no keys set again")
        XCTAssertNil(network.proxy.counters["renegotiated_after_policy_change"], "the policy did not change: no renegotiation")
        XCTAssertEqual(network.proxy.store.count, 1)
        XCTAssertEqual(lines.filter { $0.contains("which the peer narrowed to that") }.count, 1, "\(lines)")
        XCTAssertEqual(network.peer.plaintextReceived, 0, "the TCP to port 6000 never left in the clear")
    }

    /// Echo requests and replies protected, by type: pings go through ESP both ways.
    func testAnICMPTypeRuleGivesAnSAForThoseTypes() {
        let network = network(rules: [(1, PortRange(0, 8), .any, .protect(profile: "gateway"))])
        ping(network, from: a)
        ping(network, from: a, sequence: 2)
        let child = network.proxy.store.children.values.first
        XCTAssertEqual(child.map { $0.outbound.sourceSelectors.map(\.description) }, ["\(a)/32[icmp/0-8(255)]"])
        XCTAssertEqual(network.terminals[a]!.echoRepliesReceived, 1, "the second ping went and came back through ESP")
        XCTAssertGreaterThanOrEqual(network.peer.espReceived, 1)
        assertNoPlaintextLeak(network)
    }

    /// Pings bypassed before "protect everything": a selector names one protocol or all, so the SA takes the
    /// pings too; the proxy says so once, naming the rule, however many terminals it concerns (each counted).
    func testWhatTheSelectorsCannotCutOutIsLoggedOnce() {
        let network = network(rules: [(1, .any, .any, .bypass), (nil, .any, .any, .protect(profile: "gateway"))])
        var lines: [String] = []
        network.log = { lines.append($0) }
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 5001))
        network.run()
        network.terminalSends(b, HostStack.tcpSyn(from: b, to: peer, destinationPort: 5001))
        network.run()
        network.proxy.store.children.values.forEach { XCTAssertEqual($0.outbound.destinationSelectors.map(\.description), ["198.51.100.1/32"]) }
        let notes = lines.filter { $0.contains("still cover traffic of the rule at position 0") }
        XCTAssertEqual(notes.count, 1, "once for both terminals: \(notes)")
        XCTAssertTrue(notes.first?.contains("of profile 'gateway'") == true, "\(notes)")
        XCTAssertEqual(network.proxy.counters["selectors_covering_earlier_rules"], 2, "counted per terminal and peer")
        // The peer negotiates for A anew: the same selectors, no new line.
        let answeredBefore = network.proxy.counters["ike_answered_for_terminal"] ?? 0
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        XCTAssertGreaterThan(network.proxy.counters["ike_answered_for_terminal"] ?? 0, answeredBefore)
        XCTAssertEqual(lines.filter { $0.contains("still cover") }.count, 1, "not repeated")
        XCTAssertEqual(network.proxy.counters["selectors_covering_earlier_rules"], 2, "nor counted again")
    }

    func testAFailedNegotiationHoldsStartRequestsThenRetriesOnTheSameIKESA() {
        // The peer accepts UDP only; the proxy's rule is TCP to port 5001: the CHILD SA is refused (TS_UNACCEPTABLE).
        let terminals = AddressPrefix("10.0.0.0/24")!
        let policy = PolicyTable(rules: [
            PolicyRule(
                source: terminals, destination: AddressPrefix(peer.description)!, ipProtocol: 6,
                destinationPorts: PortRange(5001, 5001), action: .protect(profile: "gateway"))
        ])
        let proxy = makeProxy(
            policy: policy, registry: TerminalRegistry(allowedPrefixes: [terminals], terminals: DemoScenario.terminals()),
            profiles: [DemoScenario.profile()])
        var udpOnly = ConnectionConfiguration(
            name: "to-a", localAddress: peer, remoteAddress: a, localIdentity: Identity(peer.description),
            remoteIdentity: Identity(a.description), preSharedKey: DemoScenario.preSharedKey,
            proposals: [try! ProposalSpec("aes256gcm16-prfsha256-x25519", forIKE: true)], children: [],
            forceEncapsulation: true)
        udpOnly.children = [
            ChildConfiguration(
                name: "child", localTrafficSelectors: [try! TrafficSelector(text: "\(peer)[udp]")],
                remoteTrafficSelectors: [try! TrafficSelector(text: "\(a)[udp]")],
                proposals: [try! ProposalSpec("aes256gcm16", forIKE: false)])
        ]
        let network = VirtualNetwork(proxy: proxy, peer: IKEEngine(connections: [udpOnly]), peerAddress: peer, terminals: DemoScenario.terminals())
        var lines: [String] = []
        network.log = { lines.append($0) }
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 5001))
        network.run()
        XCTAssertEqual(network.proxy.counters["negotiation_failed"], 1)
        XCTAssertTrue(
            lines.contains {
                $0.contains(
                    "negotiation \(a) -> \(peer) failed: CHILD SA 'gateway-child': refused by peer: TS_UNACCEPTABLE; start requests wait 10 s")
            },
            "\(lines)")
        // More packets of the flow within the hold-down start nothing.
        for _ in 1...5 { network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 5001)) }
        network.run()
        XCTAssertEqual(network.proxy.counters["negotiations_started"], 1)
        XCTAssertEqual(network.proxy.counters["start_request_held_after_failure"], 5)
        // After it, the next packet asks again, with CREATE_CHILD_SA on the IKE SA that stands.
        network.advance(by: 11)
        network.terminalSends(a, HostStack.tcpSyn(from: a, to: peer, destinationPort: 5001))
        network.run()
        XCTAssertEqual(network.proxy.counters["negotiations_started"], 2)
        XCTAssertEqual(network.proxy.counters["negotiation_failed"], 2)
        XCTAssertEqual(network.proxy.engines.sessionSummaries.filter(\.established).count, 1, "one IKE SA, reused")
        XCTAssertTrue(lines.contains { $0.contains("asked for on the established IKE SA") }, "\(lines)")
        XCTAssertFalse(network.terminals[a]!.hasOutboundSA)
    }

    func testAVolumeLifetimeMakesTheTerminalAskForOneRekey() {
        let network = network { $0.volumeLifetime = ESPLifetime(softPackets: 5, hardPackets: 50) }
        var lines: [String] = []
        network.log = { lines.append($0) }
        ping(network, from: a)  // the start request
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA)
        for sequence in 2...7 {
            ping(network, from: a, sequence: UInt16(sequence))
            network.advance(by: 1)
        }
        // Both directions passed 5 packets; the proxy rekeyed once and the terminal moved to the new SA.
        let rekeys = network.peer.events.filter { $0.kind == .childRekeyed }
        XCTAssertEqual(rekeys.count, 1, "\(network.peer.events.map(\.kind))")
        XCTAssertEqual(lines.filter { $0.contains("soft expiry of") }.count, 2, "one soft expiry per direction: \(lines)")
        XCTAssertEqual(network.terminals[a]!.echoRepliesReceived, 6, "no ping lost across the rekey")
        XCTAssertEqual(network.terminals[a]!.agent.database.outbound.count, 1)
        XCTAssertEqual(network.terminals[a]!.agent.database.outbound.first?.parameters.lifetime.softPackets, 5)
    }

    func testTheProxyRekeysTheIKESAWhenTheProfileSaysSo() {
        let network = network { $0.ikeRekeyTime = 60 }
        ping(network, from: a)
        let before = network.proxy.engines.sessionSummaries.filter(\.established)
        XCTAssertEqual(before.count, 1)
        let child = network.proxy.store.children.keys.first
        network.advance(by: 70)
        let after = network.proxy.engines.sessionSummaries.filter(\.established)
        XCTAssertEqual(after.count, 1, "one IKE SA, the rekeyed one")
        XCTAssertNotEqual(after.first?.spiInitiator, before.first?.spiInitiator, "new IKE SPIs")
        XCTAssertEqual(network.proxy.store.children.keys.first, child, "the CHILD SA moved to the new IKE SA unchanged")
        XCTAssertEqual(
            network.peer.engine.sessionSummaries.filter(\.established).first?.spiResponder, after.first?.spiResponder,
            "the peer holds the same new IKE SA")
        ping(network, from: a, sequence: 2)
        XCTAssertEqual(network.terminals[a]!.echoRepliesReceived, 1, "traffic flows on (the first ping was the start request)")
    }

    func testADeadPeerIsDetectedAndTheTerminalsKeysAreDeleted() {
        let network = network { $0.livenessInterval = 10 }
        ping(network, from: a)
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA)
        // While the peer answers, the checks keep the SA.
        network.advance(by: 30)
        XCTAssertEqual(network.proxy.store.count, 1, "a live peer keeps its SA")
        network.peerIsDown = true
        // The check after 10 s, then retransmissions (1 + 2 + 4 + 8 + 16 + 32 s) go unanswered.
        network.advance(by: 90)
        XCTAssertTrue(network.proxy.engines.sessionSummaries.isEmpty, "the dead peer's IKE SA is gone")
        XCTAssertEqual(network.proxy.store.count, 0)
        XCTAssertFalse(network.terminals[a]!.hasOutboundSA, "the terminal's keys were deleted")
        // Without checks nothing notices: the SA stays until its lifetime.
        let unchecked = self.network { _ in }
        ping(unchecked, from: a)
        unchecked.peerIsDown = true
        unchecked.advance(by: 120)
        XCTAssertEqual(unchecked.proxy.store.count, 1)
    }

    /// At its hard lifetime a CHILD SA leaves the store and the terminal, and the peer: left there, it would
    /// keep the peer sending on keys nobody holds.
    func testExpiredSAIsRemovedFromStoreTerminalAndPeer() {
        let network = DemoScenario.network(hardLifetime: 30, engineCount: Self.engineCount)
        ping(network, from: a)
        XCTAssertEqual(network.proxy.store.count, 1)
        XCTAssertEqual(network.peer.engine.sessionSummaries.flatMap(\.children).count, 1)
        network.advance(by: 40)
        XCTAssertEqual(network.proxy.store.count, 0)
        XCTAssertFalse(network.terminals[a]!.hasOutboundSA)
        XCTAssertGreaterThanOrEqual(network.proxy.counters["sa_expired"] ?? 0, 1)
        XCTAssertEqual(network.peer.engine.sessionSummaries.flatMap(\.children).count, 0, "the peer's CHILD SA is deleted too")
        XCTAssertEqual(network.proxy.engines.sessionSummaries.flatMap(\.children).count, 0, "and the proxy's engine's")
        XCTAssertEqual(network.proxy.engines.sessionSummaries.count, 1, "the IKE SA stays, for the next CHILD SA")
        // The terminal's next packet gets a new CHILD SA on that IKE SA.
        ping(network, from: a, sequence: 2)
        XCTAssertTrue(network.terminals[a]!.hasOutboundSA)
        XCTAssertEqual(network.peer.engine.sessionSummaries.flatMap(\.children).count, 1)
    }
}

extension Array where Element == UInt8 {
    /// The same TCP/UDP packet with another source port (checksum recomputed).
    func withSourcePort(_ port: UInt16) -> [UInt8] {
        var packet = self
        guard let view = try? IPPacketView(packet) else { return self }
        packet[view.upperOffset] = UInt8(port >> 8)
        packet[view.upperOffset + 1] = UInt8(port & 0xff)
        TransportChecksum.fill(packet: &packet, view: view)
        return packet
    }
}

/// Every flow again with three engines sharing the proxy's IKE SAs by SPI, each batch's IKE answered on
/// threads side by side (issue 21): the outcomes are those of one engine.
/// (Linux's XCTest runs the inherited tests for a subclass that declares a test of its own.)
final class ShardedProxyFlowTests: ProxyFlowTests {
    override class var engineCount: Int { 3 }

    /// IKE SAs made by either side, each held by the engine whose SPI it is on our side; the peer restarting
    /// (INITIAL_CONTACT) five times leaves one IKE SA per terminal, whichever engine held the stale one.
    func testEveryIKESASitsInTheEngineOfItsSPIAndInitialContactReachesAll() {
        let network = DemoScenario.network(engineCount: Self.engineCount)
        for round in 0..<6 {
            if round == 0 {
                ping(network, from: a)
                ping(network, from: b)
            } else {
                network.restartPeer(DemoScenario.peerEngine())
                network.peerInitiates(connection: "to-\(a)")
                network.peerInitiates(connection: "to-\(b)")
                network.run()
            }
            let engines = network.proxy.engines.engines
            for (index, engine) in engines.enumerated() {
                for summary in engine.sessionSummaries {
                    let ours = summary.isOriginalInitiator ? summary.spiInitiator : summary.spiResponder
                    XCTAssertTrue(IKEShard(index: index, count: engines.count).owns(ours), "round \(round): engine \(index) holds \(ours)")
                }
            }
            let established = network.proxy.engines.sessionSummaries.filter(\.established)
            XCTAssertEqual(established.filter { $0.local.address == a }.count, 1, "round \(round): one IKE SA for A")
            XCTAssertEqual(established.filter { $0.local.address == b }.count, 1, "round \(round): one IKE SA for B")
        }
        XCTAssertEqual(network.proxy.engines.counters["initial_contact_removed_ike_sa"], 10, "two stale IKE SAs at each restart")
    }
}
