// Policy lookup rate with 10, 1,000 and 10,000 rules, the indexed table side by side with a linear scan.
// Run: swift run -c release proxy-benchmark [--quick]
import Crypto
import Foundation
import IKEv2
import KeyDelivery
import Proxy
import ProxyDemo

let quick = CommandLine.arguments.contains("--quick")
let onlyLookups = CommandLine.arguments.contains("--lookups-only")
/// `--crypto-only`: just the bare crypto of one negotiation, halved for one side (benchmarks/ike_rate reads it).
let onlyCrypto = CommandLine.arguments.contains("--crypto-only")

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

nonisolated(unsafe) var state: UInt64 = 7
func next(_ bound: UInt64) -> UInt64 {
    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    return (state >> 33) % bound
}

if onlyCrypto {
    var samples: [Double] = []
    for _ in 0..<2_000 {
        let start = now()
        _ = bareCrypto()
        samples.append(now() - start)
    }
    let median = percentile(samples, 0.5)
    print(String(format: "bare crypto per side: %.4f ms (median of 2000 negotiations, both ends %.4f ms)", median * 500, median * 1000))
    exit(0)
}

/// `--responder-only`: the IKE engine's own cost as a responder (no sockets, no events rendered, no log
/// lines written): N negotiations from an initiating engine, timed only inside the responder's `receive`,
/// beside the bare crypto of one side. What `ike_rate` measures minus the kernel and the endpoint's output.
if CommandLine.arguments.contains("--responder-only") {
    let count = quick ? 300 : 2_000
    let initiatorAddress = IPAddress("192.0.2.1")!
    let responderAddress = IPAddress("192.0.2.2")!
    func connection(_ local: IPAddress, _ remote: IPAddress, localTS: String, remoteTS: String) -> ConnectionConfiguration {
        ConnectionConfiguration(
            name: "c", localAddress: local, remoteAddress: remote, localIdentity: Identity(local.description),
            remoteIdentity: Identity(remote.description), preSharedKey: DemoScenario.preSharedKey,
            proposals: [try! ProposalSpec("aes256gcm16-prfsha256-x25519", forIKE: true)],
            children: [
                ChildConfiguration(
                    name: "ch", localTrafficSelectors: [TrafficSelector(cidr: localTS)!], remoteTrafficSelectors: [TrafficSelector(cidr: remoteTS)!],
                    proposals: [try! ProposalSpec("aes256gcm16", forIKE: false)])
            ])
    }
    let initiator = IKEEngine(connections: [connection(initiatorAddress, responderAddress, localTS: "10.100.0.0/32", remoteTS: "10.200.0.0/32")])
    let responder = IKEEngine(connections: [connection(responderAddress, initiatorAddress, localTS: "10.200.0.0/32", remoteTS: "10.100.0.0/32")])
    var responderSeconds = 0.0
    var established = 0
    var bareSamples: [Double] = []
    for index in 0..<count {
        let clock = Double(index) * 0.001
        var queue = initiator.initiate(connection: "c", now: clock)
        while !queue.isEmpty {
            let action = queue.removeFirst()
            guard case .send(let datagram) = action else {
                if case .event(let event) = action, event.kind == .childEstablished { established += 1 }
                continue
            }
            if datagram.destination.address == responderAddress {
                let start = now()
                let answers = responder.receive(datagram.payload, from: datagram.source, to: datagram.destination, now: clock)
                responderSeconds += now() - start
                queue += answers.filter { if case .send = $0 { return true } else { return false } }
            } else {
                queue += initiator.receive(datagram.payload, from: datagram.source, to: datagram.destination, now: clock)
            }
        }
        if index % 4 == 0 {
            let start = now()
            _ = bareCrypto()
            bareSamples.append(now() - start)
        }
    }
    guard established == count else { fatalError("only \(established) of \(count) CHILD SAs established") }
    // The responder's timer work with every SA up: the endpoint ticks its engines every 0.1 s.
    var tickSeconds = 0.0
    let ticks = 200
    for index in 0..<ticks {
        let start = now()
        _ = responder.tick(now: Double(count) * 0.001 + Double(index) * 0.1)
        tickSeconds += now() - start
    }
    let held = responder.sessionSummaries.count
    print(
        String(
            format: "responder tick with %d IKE SAs: %.4f ms (mean of %d), %.3f us per IKE SA", held, tickSeconds / Double(ticks) * 1000, ticks,
            tickSeconds / Double(ticks) / Double(max(held, 1)) * 1e6))
    let perNegotiation = responderSeconds / Double(count)
    let bareSide = percentile(bareSamples, 0.5) / 2
    print(
        String(
            format: "responder engine per negotiation: %.4f ms (mean of %d); bare crypto per side: %.4f ms (median, same run); ratio %.2f",
            perNegotiation * 1000, count, bareSide * 1000, perNegotiation / bareSide))
    exit(0)
}

/// A table like a deployment's: per terminal, rules from its address to peer networks by protocol and
/// port (some IPv6), then a few broad rules and the default.
func makeRules(_ count: Int) -> [PolicyRule] {
    var rules: [PolicyRule] = []
    var terminal = 0
    while rules.count < count - 3 {
        terminal += 1
        let v6 = terminal % 5 == 0
        let source =
            v6
            ? AddressPrefix("2001:db8:2::\(String(terminal, radix: 16))")!
            : AddressPrefix("10.\(terminal >> 16 & 255).\(terminal >> 8 & 255).\(terminal & 255)")!
        let peer = v6 ? AddressPrefix("2001:db8:\(1 + terminal % 7)::/48")! : AddressPrefix("198.51.\(terminal % 200).0/24")!
        switch terminal % 3 {
        case 0: rules.append(PolicyRule(source: source, destination: peer, ipProtocol: 6, destinationPorts: PortRange(80, 80), action: .bypass))
        case 1: rules.append(PolicyRule(source: source, destination: peer, ipProtocol: 17, destinationPorts: PortRange(5000, 5999), action: .discard))
        default: break
        }
        rules.append(PolicyRule(source: source, destination: peer, action: .protect(profile: "gw")))
    }
    rules.append(
        PolicyRule(
            source: AddressPrefix("10.0.0.0/8")!, destination: AddressPrefix("0.0.0.0/0")!, ipProtocol: 17,
            destinationPorts: PortRange(53, 53), action: .bypass))
    rules.append(PolicyRule(source: AddressPrefix("0.0.0.0/0")!, destination: AddressPrefix("0.0.0.0/0")!, action: .discard))
    rules.append(PolicyRule(source: AddressPrefix("::/0")!, destination: AddressPrefix("::/0")!, action: .discard))
    return Array(rules.prefix(count))
}

/// Flows: mostly from configured terminals to their peers, some to elsewhere.
func makeFlows(_ rules: [PolicyRule], count: Int) -> [FlowKey] {
    (0..<count).map { _ in
        let rule = rules[Int(next(UInt64(rules.count)))]
        let destination = next(4) == 0 ? AddressKey(high: 0, low: next(1 << 32)) : rule.destination.low
        return FlowKey(
            isIPv6: rule.source.isIPv6, source: rule.source.low,
            destination: rule.source.isIPv6 && next(4) == 0 ? rule.destination.high : destination,
            ipProtocol: [6, 17, 1][Int(next(3))], sourcePort: UInt16(next(65536)), destinationPort: [80, 443, 5001, 53][Int(next(4))])
    }
}

func rate(_ flows: [FlowKey], rounds: Int, _ body: (FlowKey) -> Int) -> Double {
    var samples: [Double] = []
    var sink = 0
    for _ in 0..<rounds {
        let start = now()
        for flow in flows { sink &+= body(flow) }
        samples.append(Double(flows.count) / (now() - start))
    }
    if sink == 42 { print("") }
    return samples.sorted()[samples.count / 2]
}

print("| rules | indexed lookups/s | linear scan lookups/s | speed-up |")
print("|---:|---:|---:|---:|")
var worst = Double.infinity
for count in [10, 1000, 10000] {
    let rules = makeRules(count)
    let build = now()
    let table = PolicyTable(rules: rules, defaultAction: .bypass)
    let buildSeconds = now() - build
    let flows = makeFlows(rules, count: quick ? 20_000 : 200_000)
    for flow in flows.prefix(2000) { precondition(table.firstMatch(flow) == table.linearLookup(flow)) }
    let indexed = rate(flows, rounds: quick ? 3 : 7) { table.firstMatch($0) ?? -1 }
    let linearFlows = Array(flows.prefix(count >= 10000 ? 2000 : 20000))
    let linear = rate(linearFlows, rounds: 3) { table.linearLookup($0) ?? -1 }
    worst = min(worst, indexed)
    print(
        String(format: "| %d | %.2f M | %.2f M | %.0fx |", count, indexed / 1e6, linear / 1e6, indexed / linear)
            + (count == 10000 ? String(format: " (index built in %.0f ms)", buildSeconds * 1000) : ""))
}
print(String(format: "\nlowest indexed rate: %.2f M lookups/s per core (target >= 5 M at 10,000 rules)", worst / 1e6))
var ok = worst >= 5e6

// The CHILD SA selectors of one terminal and peer, derived from the policy (decorrelation included): what a
// negotiation, an IKE message from a peer and a policy change cost on top of the lookups.
print("\n| rules | CHILD SA selectors for one terminal and peer, per derivation |")
print("|---:|---:|")
for count in [10, 1000, 10000] {
    let rules = makeRules(count)
    let table = PolicyTable(rules: rules, defaultAction: .bypass)
    let pairs: [(IPAddress, IPAddress)] = rules.prefix(200).filter { $0.action == .protect(profile: "gw") }.map { rule in
        let terminal = IPAddress(
            bytes: rule.source.isIPv6
                ? withUnsafeBytes(of: rule.source.low.high.bigEndian, Array.init) + withUnsafeBytes(of: rule.source.low.low.bigEndian, Array.init)
                : Array(withUnsafeBytes(of: UInt32(truncatingIfNeeded: rule.source.low.low).bigEndian, Array.init)))!
        let peer = IPAddress(
            bytes: rule.source.isIPv6
                ? withUnsafeBytes(of: rule.destination.low.high.bigEndian, Array.init)
                    + withUnsafeBytes(of: rule.destination.low.low.bigEndian, Array.init)
                : Array(withUnsafeBytes(of: UInt32(truncatingIfNeeded: rule.destination.low.low).bigEndian, Array.init)))!
        return (terminal, peer)
    }
    var samples: [Double] = []
    var sink = 0
    for _ in 0..<(quick ? 3 : 7) {
        let start = now()
        for (terminal, peer) in pairs { sink &+= table.protectedSelectors(terminal: terminal, peer: peer, profile: "gw").remote.count }
        samples.append((now() - start) / Double(pairs.count))
    }
    if sink == 42 { print("") }
    print(String(format: "| %d | %.1f µs |", count, samples.sorted()[samples.count / 2] * 1e6))
}
if onlyLookups { exit(ok ? 0 : 1) }

// MARK: start request to keys in the terminal

/// The crypto one negotiation needs, both ends together (peer and proxy run in this process): two
/// X25519 key pairs and shared secrets, SKEYSEED and the IKE SA keys on each side, four PSK AUTH
/// computations, the IKE_AUTH request and response sealed and opened, CHILD SA keys on each side, and
/// the key-delivery messages (two ADD_SA and two ACK) sealed and opened.
func bareCrypto() -> Int {
    let prf = PseudoRandomFunction.hmacSHA256
    let suite = IKECipherSuite(encryption: .aesGCM16(keyBits: 256), integrity: nil, prf: prf, group: .curve25519)
    let child = ChildCipherSuite(encryption: .aesGCM16(keyBits: 256), integrity: nil, group: nil, extendedSequenceNumbers: false)
    let ni = Nonce([UInt8](repeating: 1, count: 32))
    let nr = Nonce([UInt8](repeating: 2, count: 32))
    var sink = 0
    let i = Curve25519.KeyAgreement.PrivateKey()
    let r = Curve25519.KeyAgreement.PrivateKey()
    let s1 = try! i.sharedSecretFromKeyAgreement(with: r.publicKey)
    let s2 = try! r.sharedSecretFromKeyAgreement(with: i.publicKey)
    for shared in [s1, s2] {
        let secret = KeyMaterial(shared.withUnsafeBytes { Array($0) })
        let seed = KeyDerivation.skeyseed(prf: prf, nonceInitiator: ni, nonceResponder: nr, sharedSecret: secret)
        let keys = KeyDerivation.ikeKeys(
            suite: suite, skeyseed: seed, nonceInitiator: ni, nonceResponder: nr,
            spiInitiator: IKESPI(bytes: Array(ni.octets.prefix(8))), spiResponder: IKESPI(bytes: Array(nr.octets.prefix(8))))
        for _ in 0..<2 {
            sink &+=
                KeyDerivation.sharedKeyAuthentication(
                    prf: prf, sharedKey: DemoScenario.preSharedKey, firstMessage: [UInt8](repeating: 3, count: 300),
                    peerNonce: nr, authenticationKey: keys.authenticationInitiator,
                    identification: Identity("10.0.0.1").payload
                ).count
        }
        let message = [UInt8](repeating: 5, count: 240)
        let iv = [UInt8](repeating: 6, count: 8)
        for _ in 0..<2 {
            let sealed = try! suite.encryption.seal(message, key: keys.encryptionInitiator.bytes, iv: iv, additionalData: [1, 2, 3])
            sink &+= (try! suite.encryption.open(sealed[...], key: keys.encryptionInitiator.bytes, iv: iv, additionalData: [1, 2, 3])).count
        }
        sink &+=
            KeyDerivation.childKeys(
                prf: prf, deriving: keys.deriving, suite: child, sharedSecret: nil,
                nonceInitiator: ni, nonceResponder: nr
            ).encryptionInitiator.count
    }
    let proxyEnd = KeyDeliveryChannel(role: .proxy, terminalID: 1, enrollmentKey: KeyMaterial([UInt8](repeating: 7, count: 32)), epoch: 1)
    let terminalEnd = KeyDeliveryChannel(role: .terminal, terminalID: 1, enrollmentKey: KeyMaterial([UInt8](repeating: 7, count: 32)), epoch: 1)
    for _ in 0..<2 {
        let datagram = proxyEnd.send(.flush, at: ClockReading(monotonic: 0, wall: 1_800_000_000))
        if case .message(_, let ack) = terminalEnd.receive(datagram, at: ClockReading(monotonic: 0, wall: 1_800_000_000)) {
            _ = proxyEnd.receive(ack, at: ClockReading(monotonic: 0, wall: 1_800_000_000))
            sink &+= ack.count
        }
    }
    return sink
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

let negotiations = quick ? 200 : 1000
var bare: [Double] = []
for _ in 0..<(quick ? 200 : 1000) {
    let start = now()
    _ = bareCrypto()
    bare.append(now() - start)
}
// Terminal-initiated negotiations: each a new terminal behind the proxy starts a flow to the peer. The same
// run measures the proxy's profile with X25519 alone and with X25519 + ML-KEM-768 (RFC 9370, one IKE_INTERMEDIATE).
let batch = Int(ProcessInfo.processInfo.environment["BATCH"] ?? "100")!
func measure(ikeProposal: String) -> (timings: [Double], virtualTimes: [Double]) {
    var timings: [Double] = []
    var virtualTimes: [Double] = []
    var done = 0
    while done < negotiations {
        let count = min(batch, negotiations - done)
        let peerAddress = DemoScenario.peer
        let entries = (0..<count).map { index in
            TerminalEntry(
                address: IPAddress("10.\(1 + done / 25_000).\((done + index) / 250 % 100).\(1 + (done + index) % 250)")!,
                terminalID: UInt64(done + index + 1), enrollmentKey: KeyMaterial([UInt8](repeating: UInt8(index & 0xff), count: 32)))
        }
        let registry = TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/8")!], terminals: entries)
        let policyTable = PolicyTable(rules: [
            PolicyRule(
                source: AddressPrefix("10.0.0.0/8")!, destination: AddressPrefix(peerAddress.description)!,
                action: .protect(profile: "gateway"))
        ])
        var profile = DemoScenario.profile()
        profile.ikeProposals = [try! ProposalSpec(ikeProposal, forIKE: true)]
        let proxy = KeyExchangeProxy(policy: policyTable, registry: registry, profiles: [profile])
        let peerEngine = IKEEngine(
            connections: entries.map { DemoScenario.peerConnection(from: peerAddress, to: $0.address, ikeProposal: ikeProposal) })
        let network = VirtualNetwork(proxy: proxy, peer: peerEngine, peerAddress: peerAddress, terminals: entries, linkLatency: 0.0005)
        for entry in entries {
            let virtualStart = network.now
            let start = now()
            network.terminalSends(entry.address, HostStack.echoRequest(from: entry.address, to: peerAddress, sequence: 1))
            network.run()
            timings.append(now() - start)
            guard let installed = network.terminals[entry.address]!.keysInstalledAt else { fatalError("no keys for \(entry.address)") }
            virtualTimes.append(installed - virtualStart)
        }
        done += count
    }
    return (timings, virtualTimes)
}
let classic = measure(ikeProposal: "aes256gcm16-prfsha256-x25519")
let hybrid = measure(ikeProposal: "aes256gcm16-prfsha256-x25519-ke1_mlkem768")
let timings = classic.timings
let virtualTimes = classic.virtualTimes
let bareMedian = percentile(bare, 0.5)
let median = percentile(timings, 0.5)
let p99 = percentile(timings, 0.99)
let linkTime = percentile(virtualTimes, 0.5)
print("")
print("| start request to keys in the terminal (\(negotiations) negotiations) | median | 99th percentile |")
print("|---|---:|---:|")
print(String(format: "| computing time, whole exchange (peer, proxy, terminal in one process) | %.0f µs | %.0f µs |", median * 1e6, p99 * 1e6))
print(String(format: "| bare crypto of one negotiation, both ends, same run | %.0f µs | %.0f µs |", bareMedian * 1e6, percentile(bare, 0.99) * 1e6))
print(String(format: "| link time on the virtual clock (0.5 ms per hop) | %.1f ms | %.1f ms |", linkTime * 1e3, percentile(virtualTimes, 0.99) * 1e3))
print(
    String(
        format: "| the same with X25519 + ML-KEM-768 (ke1_mlkem768, one IKE_INTERMEDIATE): computing time | %.0f µs | %.0f µs |",
        percentile(hybrid.timings, 0.5) * 1e6, percentile(hybrid.timings, 0.99) * 1e6))
print(
    String(
        format: "| the same with X25519 + ML-KEM-768: link time on the virtual clock | %.1f ms | %.1f ms |",
        percentile(hybrid.virtualTimes, 0.5) * 1e3, percentile(hybrid.virtualTimes, 0.99) * 1e3))
print(
    String(
        format: "\nratio computing / bare crypto: median %.2f, p99 %.2f (target < 2, plus the link round trips: %.1f ms)",
        median / bareMedian, p99 / bareMedian, linkTime * 1e3))
ok = ok && median < 2 * bareMedian
exit(ok ? 0 : 1)
