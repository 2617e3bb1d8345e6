// Policy lookup rate with 10, 1,000 and 10,000 rules, the indexed table side by side with a linear scan.
// Run: swift run -c release proxy-benchmark [--quick]
import Foundation
import Proxy

let quick = CommandLine.arguments.contains("--quick")

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

nonisolated(unsafe) var state: UInt64 = 7
func next(_ bound: UInt64) -> UInt64 {
    state = state &* 6364136223846793005 &+ 1442695040888963407
    return (state >> 33) % bound
}

/// A table like a deployment's: per terminal, rules from its address to peer networks by protocol and
/// port (some IPv6), then a few broad rules and the default.
func makeRules(_ count: Int) -> [PolicyRule] {
    var rules: [PolicyRule] = []
    var terminal = 0
    while rules.count < count - 3 {
        terminal += 1
        let v6 = terminal % 5 == 0
        let source = v6 ? AddressPrefix("2001:db8:2::\(String(terminal, radix: 16))")! : AddressPrefix("10.\(terminal >> 16 & 255).\(terminal >> 8 & 255).\(terminal & 255)")!
        let peer = v6 ? AddressPrefix("2001:db8:\(1 + terminal % 7)::/48")! : AddressPrefix("198.51.\(terminal % 200).0/24")!
        switch terminal % 3 {
        case 0: rules.append(PolicyRule(source: source, destination: peer, ipProtocol: 6, destinationPorts: PortRange(80, 80), action: .bypass))
        case 1: rules.append(PolicyRule(source: source, destination: peer, ipProtocol: 17, destinationPorts: PortRange(5000, 5999), action: .discard))
        default: break
        }
        rules.append(PolicyRule(source: source, destination: peer, action: .protect(profile: "gw")))
    }
    rules.append(PolicyRule(source: AddressPrefix("10.0.0.0/8")!, destination: AddressPrefix("0.0.0.0/0")!, ipProtocol: 17,
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
        return FlowKey(isIPv6: rule.source.isIPv6, source: rule.source.low,
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
    print(String(format: "| %d | %.2f M | %.2f M | %.0fx |", count, indexed / 1e6, linear / 1e6, indexed / linear)
          + (count == 10000 ? String(format: " (index built in %.0f ms)", buildSeconds * 1000) : ""))
}
print(String(format: "\nlowest indexed rate: %.2f M lookups/s per core (target >= 5 M at 10,000 rules)", worst / 1e6))
exit(worst >= 5e6 ? 0 : 1)
