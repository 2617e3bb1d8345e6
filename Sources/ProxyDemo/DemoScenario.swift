import IKEv2
import Proxy

/// The standard scene of `ikeproxy demo` and the proxy tests: one Internet peer, a proxy, two enrolled
/// terminals A and B and a stranger C on the terminal side, and a policy with a bypass, a discard and
/// a protect rule.
public enum DemoScenario {
    public static let peer = IPAddress("198.51.100.1")!
    public static let terminalA = IPAddress("10.0.0.11")!
    public static let terminalB = IPAddress("10.0.0.12")!
    public static let stranger = IPAddress("10.0.0.13")!
    /// Other hosts on the peer's network: a DNS server (bypass) and a telnet server (discard).
    public static let dnsServer = IPAddress("198.51.100.53")!
    public static let telnetServer = IPAddress("198.51.100.23")!
    public static let preSharedKey = KeyMaterial(Array("demo pre-shared key, not a secret".utf8))

    public static func terminals() -> [TerminalEntry] {
        [
            TerminalEntry(address: terminalA, terminalID: 11, enrollmentKey: KeyMaterial(Array(repeating: 0xa1, count: 32))),
            TerminalEntry(address: terminalB, terminalID: 12, enrollmentKey: KeyMaterial(Array(repeating: 0xb2, count: 32)))
        ]
    }

    public static func policy() -> PolicyTable {
        let terminals = AddressPrefix("10.0.0.0/24")!
        let peers = AddressPrefix("198.51.100.0/24")!
        return PolicyTable(
            rules: [
                PolicyRule(source: terminals, destination: peers, ipProtocol: 17, destinationPorts: PortRange(53, 53), action: .bypass),
                PolicyRule(source: terminals, destination: peers, ipProtocol: 6, destinationPorts: PortRange(23, 23), action: .discard),
                PolicyRule(source: terminals, destination: AddressPrefix(peer.description)!, action: .protect(profile: "gateway"))
            ], defaultAction: .bypass)
    }

    public static func profile(hardLifetime: UInt32? = nil) -> ProtectionProfile {
        ProtectionProfile(
            name: "gateway", ikeProposals: [try! ProposalSpec("aes256gcm16-prfsha256-x25519", forIKE: true)],
            espProposals: [try! ProposalSpec("aes256gcm16", forIKE: false)], preSharedKey: preSharedKey,
            hardLifetime: hardLifetime)
    }

    /// The peer's own connections, one per terminal it may talk to (it cannot tell the proxy is there).
    public static func peerEngine(
        random: RandomSource = SystemRandom(), childless: ChildlessMode = .allow,
        espProposals: [String] = ["aes256gcm16"]
    ) -> IKEEngine {
        let connections = [terminalA, terminalB, stranger].map { terminal in
            var connection = ConnectionConfiguration(
                name: "to-\(terminal)", localAddress: peer, remoteAddress: terminal, localIdentity: Identity(peer.description),
                remoteIdentity: Identity(terminal.description), preSharedKey: preSharedKey,
                proposals: [try! ProposalSpec("aes256gcm16-prfsha256-x25519", forIKE: true)],
                children: [
                    ChildConfiguration(
                        name: "child", localTrafficSelectors: [TrafficSelector(cidr: peer.description)!],
                        remoteTrafficSelectors: [TrafficSelector(cidr: terminal.description)!],
                        proposals: espProposals.map { try! ProposalSpec($0, forIKE: false) })
                ],
                forceEncapsulation: true)
            connection.childless = childless
            return connection
        }
        return IKEEngine(connections: connections, random: random)
    }

    /// The demo's network; with `engineCount` above 1 the proxy's engines share the IKE SAs by SPI and answer
    /// the IKE datagrams it holds (`KeyExchangeProxy.batchesIKE`) on threads side by side, as the daemon's do.
    public static func network(
        hardLifetime: UInt32? = nil, linkLatency: Double = 0.0005, random: RandomSource = SystemRandom(), engineCount: Int = 1
    ) -> VirtualNetwork {
        let registry = TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: terminals())
        let proxy = KeyExchangeProxy(
            policy: policy(), registry: registry, profiles: [profile(hardLifetime: hardLifetime)], engineCount: engineCount, random: random)
        if engineCount > 1 { proxy.batchesIKE = EngineShards.runAtOnce }
        let network = VirtualNetwork(
            proxy: proxy, peer: peerEngine(random: random), peerAddress: peer, terminals: terminals(),
            linkLatency: linkLatency)
        network.attach(TerminalEntry(address: stranger, terminalID: 13, enrollmentKey: KeyMaterial(Array(repeating: 0xc3, count: 32))))
        return network
    }
}
