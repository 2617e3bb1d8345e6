import IKEv2

/// The traffic selectors of the CHILD SA the proxy negotiates for a terminal and a peer: what the protect
/// rules naming the profile say about traffic between those two addresses (RFC 4301 section 4.4.1: the
/// SPD entry's selectors, taken "from the policy", not from the one packet). A rule for TCP port 443
/// gives an SA for TCP port 443 only, so that the terminal encrypts that flow and leaves the rest to the
/// policy; a rule for any protocol makes it host to host. Rules earlier in the table that bypass or
/// discard part of that traffic are not subtracted (no decorrelation): order them after, or narrow the
/// protect rule.
public struct ProtectedTrafficSelectors: Equatable, Sendable {
    public var local: [TrafficSelector]
    public var remote: [TrafficSelector]

    /// Host to host, every protocol.
    public static func hostToHost(terminal: IPAddress, peer: IPAddress) -> ProtectedTrafficSelectors {
        ProtectedTrafficSelectors(local: [TrafficSelector(cidr: terminal.description)!], remote: [TrafficSelector(cidr: peer.description)!])
    }
}

extension PolicyTable {
    /// The selectors for `terminal` and `peer` from the protect rules naming `profile` that cover both
    /// addresses; host to host when one of them covers every protocol, or when only the default action
    /// protects them. Ports are kept for TCP, UDP, SCTP and UDP-Lite; for ICMP the rule's type and code
    /// are not carried (the selector then covers the whole protocol).
    public func protectedSelectors(terminal: IPAddress, peer: IPAddress, profile: String) -> ProtectedTrafficSelectors {
        let t = AddressKey(terminal.bytes), p = AddressKey(peer.bytes)
        let covering = rules.filter { rule in
            rule.action == .protect(profile: profile) && rule.source.isIPv6 == terminal.isIPv6 && rule.source.contains(t) && rule.destination.contains(p)
        }
        let hostToHost = ProtectedTrafficSelectors.hostToHost(terminal: terminal, peer: peer)
        guard !covering.isEmpty, !covering.contains(where: { $0.ipProtocol == nil }) else { return hostToHost }
        var selectors = ProtectedTrafficSelectors(local: [], remote: [])
        for rule in covering {
            let ipProtocol = rule.ipProtocol ?? 0
            let ports = TrafficSelector.protocolsWithPorts.contains(ipProtocol)
            let local = TrafficSelector(ipProtocol: ipProtocol, startPort: ports ? rule.sourcePorts.low : 0, endPort: ports ? rule.sourcePorts.high : 65535,
                                        startAddress: terminal, endAddress: terminal)
            let remote = TrafficSelector(ipProtocol: ipProtocol, startPort: ports ? rule.destinationPorts.low : 0,
                                         endPort: ports ? rule.destinationPorts.high : 65535, startAddress: peer, endAddress: peer)
            if !selectors.local.contains(local) { selectors.local.append(local) }
            if !selectors.remote.contains(remote) { selectors.remote.append(remote) }
        }
        return selectors
    }
}
