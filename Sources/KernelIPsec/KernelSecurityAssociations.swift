import ESP
import IKEv2

/// What a terminal's kernel holds of the SAs the proxy set, and the XFRM requests that change it: each
/// SA with the policies that steer its traffic through it (outbound SAs) or require ESP for it (inbound
/// SAs). A policy is shared by every SA with the same selectors, so a rekey's new SA is added before the
/// old one is removed and the policy stays in place all along (make-before-break): the kernel sends with
/// the newest SA of a policy's reqid. Trap policies from the configuration stay when no SA uses them,
/// so that a packet with no SA makes the kernel ask for one (ACQUIRE). Pure: the requests are bytes for
/// a netlink socket to send.
public struct KernelSecurityAssociations: Sendable {
    public struct PolicyKey: Hashable, Sendable {
        public var selector: KernelSelector
        public var direction: XFRMRequest.PolicyDirection
    }

    struct Installed: Sendable {
        var destination: IPAddress
        var policies: [PolicyKey]
    }

    struct SAKey: Hashable, Sendable {
        var spi: ChildSPI
        var direction: ESPDirection
    }

    private var installed: [SAKey: Installed] = [:]
    private var users: [PolicyKey: Set<SAKey>] = [:]
    /// Trap policies: outbound, ESP in transport mode with no SA behind them until one is installed.
    public let traps: [KernelSelector]
    private var sequence: UInt32 = 1

    public init(traps: [KernelSelector] = []) { self.traps = traps }

    /// The reqid ties an SA to the policies of its selectors: equal selectors, equal reqid. A stable hash
    /// (FNV-1a), so that it is the same after the agent restarts.
    static func reqid(for sa: SecurityAssociationParameters) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        let text =
            "\(sa.mode.rawValue)|" + sa.sourceSelectors.map(\.description).joined(separator: ",") + "|"
            + sa.destinationSelectors.map(\.description).joined(separator: ",")
        for octet in text.utf8 { hash = (hash ^ UInt32(octet)) &* 16_777_619 }
        return (hash & 0x7fff_ffff) | 0x1000
    }

    static let trapReqid: UInt32 = 1

    private mutating func nextSequence() -> UInt32 {
        defer { sequence &+= 2 }
        return sequence
    }

    /// Start-up: everything ESP in the kernel flushed (what an agent that starts holds is nothing), the
    /// neighbour discovery bypass, then the traps.
    public mutating func start() -> [NetlinkMessage] {
        installed = [:]
        users = [:]
        var requests = XFRMRequest.flush(sequence: nextSequence())
        for selector in Self.neighbourDiscovery {
            for direction in [XFRMRequest.PolicyDirection.outbound, .inbound] {
                requests.append(XFRMRequest.setBypassPolicy(selector, direction: direction, sequence: nextSequence()))
            }
        }
        return requests + traps.map { trap($0) }
    }

    /// ICMPv6 types 133 to 137 (router and neighbour solicitation and advertisement, redirect, RFC 4861) pass
    /// in the clear both ways: a policy covering the peer's address would otherwise hold back the very
    /// neighbour advertisement the peer needs before it can send IKE or ESP to the terminal.
    static let neighbourDiscovery: [KernelSelector] = KernelSelector.icmpBlocks(133 << 8, 137 << 8 | 0xff).map { type, mask, code, codeMask in
        KernelSelector(
            isIPv6: true, source: [UInt8](repeating: 0, count: 16), sourcePrefixLength: 0, destination: [UInt8](repeating: 0, count: 16),
            destinationPrefixLength: 0, ipProtocol: KernelSelector.icmpv6, sourcePort: type, sourcePortMask: mask, destinationPort: code,
            destinationPortMask: codeMask)
    }

    private mutating func trap(_ selector: KernelSelector) -> NetlinkMessage {
        XFRMRequest.setPolicy(selector, direction: .outbound, reqid: Self.trapReqid, tunnel: nil, sequence: nextSequence())
    }

    /// The SA, then its policies (an SA set again with the same SPI replaces the one held).
    public mutating func add(_ sa: SecurityAssociationParameters) throws(KernelSAError) -> [NetlinkMessage] {
        let key = SAKey(spi: sa.spi, direction: sa.direction)
        var requests: [NetlinkMessage] = []
        if installed[key] != nil { requests += remove(spi: sa.spi, direction: sa.direction, keepingPolicies: true) ?? [] }
        let reqid = Self.reqid(for: sa)
        let selectors = try KernelSelector.covering(source: sa.sourceSelectors, destination: sa.destinationSelectors)
        requests.append(try XFRMRequest.addSA(sa, reqid: reqid, sequence: nextSequence()))
        let direction: XFRMRequest.PolicyDirection = sa.direction == .inbound ? .inbound : .outbound
        let tunnel = sa.mode == .tunnel ? (source: sa.tunnelSource, destination: sa.tunnelDestination) : nil
        var policies: [PolicyKey] = []
        for selector in selectors {
            let policy = PolicyKey(selector: selector, direction: direction)
            policies.append(policy)
            users[policy, default: []].insert(key)
            requests.append(XFRMRequest.setPolicy(selector, direction: direction, reqid: reqid, tunnel: tunnel, sequence: nextSequence()))
        }
        installed[key] = Installed(destination: sa.tunnelDestination, policies: policies)
        return requests
    }

    /// The SA, then the policies no other SA uses (a trap's selector goes back to being a trap). Nil when
    /// the SA is not held.
    public mutating func remove(spi: ChildSPI, direction: ESPDirection) -> [NetlinkMessage]? {
        remove(spi: spi, direction: direction, keepingPolicies: false)
    }

    private mutating func remove(spi: ChildSPI, direction: ESPDirection, keepingPolicies: Bool) -> [NetlinkMessage]? {
        let key = SAKey(spi: spi, direction: direction)
        guard let held = installed.removeValue(forKey: key) else { return nil }
        var requests = [XFRMRequest.removeSA(spi: spi, destination: held.destination, sequence: nextSequence())]
        for policy in held.policies {
            users[policy]?.remove(key)
            guard users[policy]?.isEmpty ?? true, !keepingPolicies else { continue }
            users[policy] = nil
            if policy.direction == .outbound && traps.contains(policy.selector) {
                requests.append(trap(policy.selector))
            } else {
                requests.append(XFRMRequest.removePolicy(policy.selector, direction: policy.direction, sequence: nextSequence()))
            }
        }
        return requests
    }

    /// The kernel removed an SA itself (a hard lifetime): which one it was, and the requests for the
    /// policies no SA uses any more (the SA itself is gone already).
    public mutating func removedByKernel(spi: ChildSPI, destination: IPAddress) -> (direction: ESPDirection, requests: [NetlinkMessage])? {
        guard let key = installed.first(where: { $0.key.spi == spi && $0.value.destination == destination })?.key,
            let requests = remove(spi: key.spi, direction: key.direction)
        else { return nil }
        return (key.direction, Array(requests.dropFirst()))
    }

    /// The SA a kernel notification names, and which way it goes.
    public func direction(of spi: ChildSPI, destination: IPAddress) -> ESPDirection? {
        installed.first { $0.key.spi == spi && $0.value.destination == destination }?.key.direction
    }

    public var held: [(spi: ChildSPI, direction: ESPDirection, destination: IPAddress)] {
        installed.map { ($0.key.spi, $0.key.direction, $0.value.destination) }.sorted { $0.spi.rawValue < $1.spi.rawValue }
    }

    /// The request for one SA's counters.
    public mutating func readCounters(spi: ChildSPI, destination: IPAddress) -> NetlinkMessage {
        XFRMRequest.readSA(spi: spi, destination: destination, sequence: nextSequence())
    }
}
