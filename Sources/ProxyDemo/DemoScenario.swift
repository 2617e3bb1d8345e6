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
    /// A terminal under the quantum-safe profile (`network(quantumSafe:)`, the demo's last step).
    public static let terminalD = IPAddress("10.0.0.14")!
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

    /// Quantum-safe keys for devices that cannot run IKE: X25519 + ML-KEM-768 (RFC 9370) for the IKE SA and for
    /// each CHILD SA's key exchange (its rekeys run IKE_FOLLOWUP_KE), and a required post-quantum preshared key
    /// (RFC 8784) mixed into both.
    public static let hybridIKEProposal = "aes256gcm16-prfsha256-x25519-ke1_mlkem768"
    public static let hybridESPProposal = "aes256gcm16-x25519-ke1_mlkem768"
    public static let postQuantumPresharedKey = PostQuantumPresharedKey(
        identity: Array("demo-ppk".utf8), key: KeyMaterial(Array("demo post-quantum preshared key of 256 bits or more".utf8)), required: true)

    public static func quantumSafeProfile() -> ProtectionProfile {
        var profile = ProtectionProfile(
            name: "quantum-safe", ikeProposals: [try! ProposalSpec(hybridIKEProposal, forIKE: true)],
            espProposals: [try! ProposalSpec(hybridESPProposal, forIKE: false)], preSharedKey: preSharedKey)
        profile.postQuantumPresharedKey = postQuantumPresharedKey
        return profile
    }

    /// The connection a peer at `peer` has to one terminal, host to host, as the peer of the demo and of the
    /// benchmarks configures it (it cannot tell the proxy is there); ESP in UDP, as the terminals speak it.
    public static func peerConnection(
        from peer: IPAddress = peer, to terminal: IPAddress, ikeProposal: String = "aes256gcm16-prfsha256-x25519",
        espProposals: [String] = ["aes256gcm16"]
    ) -> ConnectionConfiguration {
        ConnectionConfiguration(
            name: "to-\(terminal)", localAddress: peer, remoteAddress: terminal, localIdentity: Identity(peer.description),
            remoteIdentity: Identity(terminal.description), preSharedKey: preSharedKey, proposals: [try! ProposalSpec(ikeProposal, forIKE: true)],
            children: [
                ChildConfiguration(
                    name: "child", localTrafficSelectors: [TrafficSelector(cidr: peer.description)!],
                    remoteTrafficSelectors: [TrafficSelector(cidr: terminal.description)!],
                    proposals: espProposals.map { try! ProposalSpec($0, forIKE: false) })
            ],
            forceEncapsulation: true)
    }

    /// The peer's own connections, one per terminal it may talk to; with `quantumSafe`, one more to terminal D
    /// with the quantum-safe profile's proposals and PPK.
    public static func peerEngine(
        random: RandomSource = SystemRandom(), childless: ChildlessMode = .allow,
        espProposals: [String] = ["aes256gcm16"], quantumSafe: Bool = false
    ) -> IKEEngine {
        var connections = [terminalA, terminalB, stranger].map { terminal in
            var connection = peerConnection(to: terminal, espProposals: espProposals)
            connection.childless = childless
            return connection
        }
        if quantumSafe {
            var connection = peerConnection(to: terminalD, ikeProposal: hybridIKEProposal, espProposals: [hybridESPProposal])
            connection.postQuantumPresharedKey = postQuantumPresharedKey
            connections.append(connection)
        }
        return IKEEngine(connections: connections, random: random)
    }

    /// The demo's network; with `engineCount` above 1 the proxy's engines share the IKE SAs by SPI and answer
    /// the IKE datagrams it holds (`KeyExchangeProxy.batchesIKE`) on threads side by side, as the daemon's do.
    /// With `quantumSafe` (e.g. `quantumSafeProfile()`), terminal D is enrolled too and its flows to the peer go
    /// under that profile.
    public static func network(
        hardLifetime: UInt32? = nil, linkLatency: Double = 0.0005, random: RandomSource = SystemRandom(), engineCount: Int = 1,
        quantumSafe: ProtectionProfile? = nil
    ) -> VirtualNetwork {
        let quantumSafeProfile = quantumSafe
        let d = TerminalEntry(address: terminalD, terminalID: 14, enrollmentKey: KeyMaterial(Array(repeating: 0xd4, count: 32)))
        let enrolled = terminals() + (quantumSafeProfile != nil ? [d] : [])
        let registry = TerminalRegistry(allowedPrefixes: [AddressPrefix("10.0.0.0/24")!], terminals: enrolled)
        var table = policy()
        var profiles = [profile(hardLifetime: hardLifetime)]
        if let quantumSafeProfile {
            let rule = PolicyRule(
                source: AddressPrefix(terminalD.description)!, destination: AddressPrefix(peer.description)!,
                action: .protect(profile: quantumSafeProfile.name))
            table = PolicyTable(rules: [rule] + table.rules, defaultAction: table.defaultAction)
            profiles.append(quantumSafeProfile)
        }
        let proxy = KeyExchangeProxy(policy: table, registry: registry, profiles: profiles, engineCount: engineCount, random: random)
        if engineCount > 1 { proxy.batchesIKE = EngineShards.runAtOnce }
        let network = VirtualNetwork(
            proxy: proxy, peer: peerEngine(random: random, quantumSafe: quantumSafeProfile != nil), peerAddress: peer, terminals: enrolled,
            linkLatency: linkLatency)
        network.attach(TerminalEntry(address: stranger, terminalID: 13, enrollmentKey: KeyMaterial(Array(repeating: 0xc3, count: 32))))
        return network
    }
}
