import Foundation
import IKEv2
import Packets
import Proxy

/// `ikeproxy demo`: the whole design in one process, narrated. Returns true when every step worked.
public enum DemoRun {
    public static func run(verbose: Bool = false, print say: @escaping (String) -> Void) -> Bool {
        let network = DemoScenario.network(quantumSafe: DemoScenario.quantumSafeProfile())
        if verbose { network.log = say }
        let peer = DemoScenario.peer
        let a = DemoScenario.terminalA
        let b = DemoScenario.terminalB
        let c = DemoScenario.stranger
        let d = DemoScenario.terminalD
        var failures = 0
        func step(_ ok: Bool, _ text: String) {
            say((ok ? "  ok    " : "  FAIL  ") + text)
            if !ok { failures += 1 }
        }
        func clock() -> Double { ProcessInfo.processInfo.systemUptime }
        func ms(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1000) }
        func pings(from terminal: IPAddress, count: Int) -> Int {
            let before = network.terminals[terminal]!.echoRepliesReceived
            for sequence in 1...count { network.terminalSends(terminal, HostStack.echoRequest(from: terminal, to: peer, sequence: UInt16(sequence))) }
            network.run()
            return network.terminals[terminal]!.echoRepliesReceived - before
        }
        func counter(_ name: String) -> Int { network.proxy.counters[name] ?? 0 }

        say("IKEProxy demo: one process, virtual links with \(ms(network.linkLatency)) one-way latency.")
        say("  Internet peer \(peer) runs IKEv2 and ESP (the project's own endpoint). It believes it talks to the terminals.")
        say("  The proxy sits in the wire with no address of its own. Policy, from the terminals' side:")
        for rule in network.proxy.policy.rules { say("    \(rule)") }
        say("  Terminals A \(a), B \(b) and D \(d) are enrolled (they run ESP, not IKE); C \(c) is not.")
        say("")

        say("1. The peer starts IKE with terminal A's address.")
        var started = clock()
        var virtualStart = network.now
        network.peerInitiates(connection: "to-\(a)")
        network.run()
        var cpu = clock() - started
        let aKeys = network.terminals[a]!.keysInstalledAt
        step(
            aKeys != nil,
            "the proxy answered as A (\(counter("ike_answered_for_terminal")) IKE messages) and set the keys into A: "
                + "\(aKeys.map { ms($0 - virtualStart) } ?? "never") on the virtual clock, \(ms(cpu)) of computing")
        for sequence in 1...20 { network.peerSends(HostStack.echoRequest(from: peer, to: a, sequence: UInt16(sequence))) }
        network.run()
        let peerReplies = network.peer.stack.received.filter(HostStack.isEchoReply).count
        step(
            peerReplies == 20,
            "the peer pinged A 20 times through ESP: \(peerReplies) replies, \(network.peer.espReceived) ESP packets decrypted by the peer")

        say("2. Terminal B sends a packet to the peer; it has no SA (a start request).")
        started = clock()
        virtualStart = network.now
        let firstTry = pings(from: b, count: 1)
        cpu = clock() - started
        let bKeys = network.terminals[b]!.keysInstalledAt
        step(
            firstTry == 0 && bKeys != nil && counter("negotiations_started") == 1,
            "the proxy held the plaintext, negotiated with the peer in B's name and set the keys into B: "
                + "\(bKeys.map { ms($0 - virtualStart) } ?? "never") on the virtual clock, \(ms(cpu)) of computing")
        let bReplies = pings(from: b, count: 20)
        step(bReplies == 20, "B pinged the peer 20 times through ESP: \(bReplies) replies")

        say("3. Terminal A restarts and loses its keys; then it sends again.")
        network.terminals[a]!.restart(epoch: 2)
        started = clock()
        virtualStart = network.now
        _ = pings(from: a, count: 1)
        cpu = clock() - started
        let reused = network.terminals[a]!.keysInstalledAt
        step(
            counter("stored_sa_reused") == 1 && counter("negotiations_started") == 1 && reused != nil,
            "the proxy found A's SA in its store and set it again, no new negotiation: "
                + "\(reused.map { ms($0 - virtualStart) } ?? "never") on the virtual clock, \(ms(cpu)) of computing")
        let aReplies = pings(from: a, count: 10)
        step(aReplies == 10, "A pinged the peer 10 times with the stored SA: \(aReplies) replies")

        say("4. Terminal B opens a telnet connection (tcp/23) to \(DemoScenario.telnetServer): the policy says discard.")
        let plaintextBefore = network.peer.plaintextReceived
        network.terminalSends(b, HostStack.tcpSyn(from: b, to: DemoScenario.telnetServer, destinationPort: 23))
        network.run()
        step(
            counter("drop_policy_discard") == 1 && network.peer.plaintextReceived == plaintextBefore, "dropped and counted; nothing reached the peer")

        say("5. Terminal B sends a DNS query (udp/53) to \(DemoScenario.dnsServer): the policy says bypass.")
        network.terminalSends(
            b, HostStack.udp(from: b, to: DemoScenario.dnsServer, sourcePort: 33000, destinationPort: 53, payload: Array("query".utf8)))
        network.run()
        step(network.peer.plaintextReceived == plaintextBefore + 1, "passed in the clear to the peer")

        say("6. Host C, not enrolled, sends to the peer; the peer also tries IKE with C.")
        _ = pings(from: c, count: 1)
        network.peerInitiates(connection: "to-\(c)")
        network.run()
        step(
            !network.terminals[c]!.hasOutboundSA && counter("drop_start_request_from_unregistered_terminal") >= 1
                && counter("drop_ike_for_unregistered_terminal") >= 1, "no SA for C: its start request and the peer's IKE were dropped")

        say("7. Terminal D sends to the peer; its flows go under the quantum-safe profile.")
        started = clock()
        virtualStart = network.now
        _ = pings(from: d, count: 1)
        cpu = clock() - started
        let dKeys = network.terminals[d]!.keysInstalledAt
        let dIKE = network.peer.engine.sessionSummaries.first { $0.remote.address == d && $0.established }
        step(
            dKeys != nil && dIKE?.suite?.name == DemoScenario.hybridIKEProposal && dIKE?.ppkIdentity == "demo-ppk",
            "the proxy negotiated in D's name with \(dIKE?.suite?.name ?? "nothing") (X25519, then ML-KEM-768 in IKE_INTERMEDIATE) "
                + "and the post-quantum preshared key '\(dIKE?.ppkIdentity ?? "none")', and set the keys into D: "
                + "\(dKeys.map { ms($0 - virtualStart) } ?? "never") on the virtual clock, \(ms(cpu)) of computing")
        network.peerInitiatesRekey(connection: "to-\(d)")
        network.run()
        let rekeyed = network.peer.events.last { $0.kind == .childRekeyed && $0.remote.address == d }?.child?.suite.name
        let dReplies = pings(from: d, count: 5)
        step(
            rekeyed == DemoScenario.hybridESPProposal && dReplies == 5,
            "the peer rekeyed D's CHILD SA with \(rekeyed ?? "nothing") (CREATE_CHILD_SA, then IKE_FOLLOWUP_KE for ML-KEM-768); "
                + "D pinged the peer 5 times on the new keys: \(dReplies) replies")

        let leaked = network.internetLink.contains { packet in
            guard let view = try? IPPacketView(packet) else { return false }
            return view.upperProtocol == IPProtocolNumber.icmp
        }
        say("")
        step(!leaked, "no plaintext of a protected flow crossed the Internet link (\(network.internetLink.count) packets checked)")
        let sas = network.proxy.store.children.values
        step(
            Set(sas.map(\.terminal)) == [a, b, d] && Set(sas.map(\.outbound.spi)).count == sas.count,
            "the store holds \(sas.count) CHILD SAs: A, B and D each with their own keys, for the same peer")
        say(
            "Figures: \(counter("forwarded_esp")) ESP packets forwarded from terminals, "
                + "\(counter("negotiations_started")) negotiations started by terminals, \(network.peer.events.filter { $0.kind == .childEstablished }.count) CHILD SAs established at the peer, "
                + "drops: "
                + network.proxy.counters.filter { $0.key.hasPrefix("drop_") }.sorted { $0.key < $1.key }
                .map { "\($0.key.dropFirst(5))=\($0.value)" }.joined(separator: " "))
        say(failures == 0 ? "Demo complete: every step worked." : "Demo finished with \(failures) failed step(s).")
        return failures == 0
    }
}
