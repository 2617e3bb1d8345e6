import IKEv2

/// The traffic selectors of the CHILD SA the proxy negotiates for a terminal and a peer: what the protect
/// rules naming the profile say about traffic between those two addresses (RFC 4301 section 4.4.1: the
/// SPD entry's selectors, taken "from the policy", not from the one packet). A rule for TCP port 443
/// gives an SA for TCP port 443 only, so that the terminal encrypts that flow and leaves the rest to the
/// policy; a rule for any protocol makes it host to host; an ICMP rule's types and codes are carried as
/// RFC 7296 section 3.13.1 puts them in the port fields.
///
/// Earlier rules that bypass, discard or protect otherwise part of that traffic are cut out (RFC 4301
/// section 4.4.1.2, decorrelation), as far as selector lists can say it: the SA covers every pair of a
/// local and a remote selector, and a selector names one protocol or all of them. What cannot be cut out
/// (a port pair cut from both sides at once, one protocol taken out of "every protocol") stays in the SA,
/// and the rule is named in `stillCovered`, so that the operator is told.
public struct ProtectedTrafficSelectors: Equatable, Sendable {
    public var local: [TrafficSelector]
    public var remote: [TrafficSelector]
    /// Indexes of earlier rules part of whose traffic between the two addresses these selectors cover all the
    /// same: the terminal encrypts that traffic, so those rules never see it.
    public var stillCovered: [Int] = []
    /// Earlier rules take all the traffic the profile's rules name between the two addresses: the profile
    /// protects nothing there (the selectors are then the rules' own, for the record).
    public var shadowed = false

    public init(local: [TrafficSelector], remote: [TrafficSelector], stillCovered: [Int] = []) {
        self.local = local
        self.remote = remote
        self.stillCovered = stillCovered
    }

    /// Host to host, every protocol.
    public static func hostToHost(terminal: IPAddress, peer: IPAddress) -> ProtectedTrafficSelectors {
        ProtectedTrafficSelectors(
            local: [TrafficSelector(startAddress: terminal, endAddress: terminal)],
            remote: [TrafficSelector(startAddress: peer, endAddress: peer)])
    }
}

/// A piece of the traffic between one terminal address and one peer address, in selector terms: a protocol
/// (nil for every one) and the ranges of the terminal's and the peer's port fields. For ICMP and ICMPv6
/// both ranges hold type and code as one value and a packet's value must fall in both, so a piece is
/// kept on the diagonal (both ranges equal).
struct SelectorBox: Equatable {
    var ipProtocol: UInt8?
    var local: ClosedRange<UInt16>
    var remote: ClosedRange<UInt16>

    static let anyPort: ClosedRange<UInt16> = 0...65535

    var carriesMessageType: Bool { ipProtocol.map { TrafficSelector.protocolsWithMessageTypes.contains($0) } ?? false }

    /// The same piece with an ICMP piece's ranges made equal; nil when no packet falls in it.
    var normalized: SelectorBox? {
        guard carriesMessageType else { return self }
        guard let both = local.intersection(remote) else { return nil }
        return SelectorBox(ipProtocol: ipProtocol, local: both, remote: both)
    }

    /// Whether every packet of `other` falls in this piece.
    func contains(_ other: SelectorBox) -> Bool {
        (ipProtocol == nil || ipProtocol == other.ipProtocol) && local.lowerBound <= other.local.lowerBound
            && other.local.upperBound <= local.upperBound && remote.lowerBound <= other.remote.lowerBound
            && other.remote.upperBound <= remote.upperBound
    }

    /// Whether some packet falls in both pieces.
    func overlaps(_ other: SelectorBox) -> Bool {
        if let a = ipProtocol, let b = other.ipProtocol, a != b { return false }
        guard let local = local.intersection(other.local), let remote = remote.intersection(other.remote) else { return false }
        let protocolNumber = ipProtocol ?? other.ipProtocol
        return SelectorBox(ipProtocol: protocolNumber, local: local, remote: remote).normalized != nil
    }

    /// This piece without `other`, as at most four pieces; nil when the difference has no selector form
    /// (every protocol less some of one). `other` is in this piece's protocol terms (see `PolicyRule.boxes`).
    func subtracting(_ other: SelectorBox) -> [SelectorBox]? {
        if let a = ipProtocol, let b = other.ipProtocol, a != b { return [self] }
        guard overlaps(other) else { return [self] }
        if ipProtocol == nil {
            // Only "every protocol, every port" takes all of an every-protocol piece.
            return other.ipProtocol == nil && other.local == Self.anyPort && other.remote == Self.anyPort ? [] : nil
        }
        let local = self.local.intersection(other.local)!
        let remote = self.remote.intersection(other.remote)!
        var pieces: [SelectorBox] = []
        if self.local.lowerBound < local.lowerBound {
            pieces.append(SelectorBox(ipProtocol: ipProtocol, local: self.local.lowerBound...(local.lowerBound - 1), remote: self.remote))
        }
        if local.upperBound < self.local.upperBound {
            pieces.append(SelectorBox(ipProtocol: ipProtocol, local: (local.upperBound + 1)...self.local.upperBound, remote: self.remote))
        }
        if self.remote.lowerBound < remote.lowerBound {
            pieces.append(SelectorBox(ipProtocol: ipProtocol, local: local, remote: self.remote.lowerBound...(remote.lowerBound - 1)))
        }
        if remote.upperBound < self.remote.upperBound {
            pieces.append(SelectorBox(ipProtocol: ipProtocol, local: local, remote: (remote.upperBound + 1)...self.remote.upperBound))
        }
        return pieces.compactMap(\.normalized)
    }
}

extension ClosedRange where Bound == UInt16 {
    func intersection(_ other: ClosedRange<UInt16>) -> ClosedRange<UInt16>? {
        let low = Swift.max(lowerBound, other.lowerBound)
        let high = Swift.min(upperBound, other.upperBound)
        return low <= high ? low...high : nil
    }
}

extension PolicyRule {
    /// The rule's traffic between one terminal and one peer address as selector pieces, read for packets of
    /// `ipProtocol` (the protocol of the piece it is cut from) when the rule itself names none.
    func boxes(as ipProtocol: UInt8? = nil) -> [SelectorBox] {
        let sourcePorts = self.sourcePorts.low...self.sourcePorts.high
        let destinationPorts = self.destinationPorts.low...self.destinationPorts.high
        guard let number = self.ipProtocol ?? ipProtocol else {
            return [SelectorBox(ipProtocol: nil, local: sourcePorts, remote: destinationPorts)]
        }
        if TrafficSelector.protocolsWithPorts.contains(number) {
            return [SelectorBox(ipProtocol: number, local: sourcePorts, remote: destinationPorts)]
        }
        if TrafficSelector.protocolsWithMessageTypes.contains(number) {
            // Source range: message types; destination range: codes (RFC 4301 section 4.4.1.1).
            guard let types = sourcePorts.intersection(0...255), let codes = destinationPorts.intersection(0...255) else { return [] }
            let everyCode = codes == 0...255
            let ranges: [ClosedRange<UInt16>] =
                everyCode || types.count == 1
                ? [(types.lowerBound << 8 | codes.lowerBound)...(types.upperBound << 8 | codes.upperBound)]
                : types.map { ($0 << 8 | codes.lowerBound)...($0 << 8 | codes.upperBound) }
            return ranges.map { SelectorBox(ipProtocol: number, local: $0, remote: $0) }
        }
        // Other protocols have no port fields: the rule takes all of that protocol's traffic.
        return [SelectorBox(ipProtocol: number, local: SelectorBox.anyPort, remote: SelectorBox.anyPort)]
    }

    /// The pieces a protect rule asks for: ports only where a selector can carry them.
    var protectedBoxes: [SelectorBox] {
        guard ipProtocol != nil else { return [SelectorBox(ipProtocol: nil, local: SelectorBox.anyPort, remote: SelectorBox.anyPort)] }
        return boxes()
    }
}

extension PolicyTable {
    /// The selectors for `terminal` and `peer`: the traffic of the protect rules naming `profile` that cover
    /// both addresses (and of the default action, when it protects with that profile), less what earlier
    /// rules of other actions take (see `ProtectedTrafficSelectors`).
    public func protectedSelectors(terminal: IPAddress, peer: IPAddress, profile: String) -> ProtectedTrafficSelectors {
        let t = AddressKey(terminal.bytes)
        let p = AddressKey(peer.bytes)
        let ours = PolicyAction.protect(profile: profile)
        var candidates: [(index: Int?, rule: PolicyRule)] = rules.enumerated().filter { _, rule in
            rule.source.isIPv6 == terminal.isIPv6 && rule.source.contains(t) && rule.destination.contains(p)
        }.map { ($0.offset, $0.element) }
        let family = AddressPrefix.any(ipv6: terminal.isIPv6)
        candidates.append((nil, PolicyRule(source: family, destination: family, action: defaultAction)))

        var wanted: [SelectorBox] = []
        var asked: [SelectorBox] = []
        var others: [(index: Int, rule: PolicyRule)] = []
        // Other rules before the last of ours: what they take is not the SA's to cover.
        var earlierCount = 0
        for (index, rule) in candidates {
            guard rule.action == ours else {
                if let index { others.append((index, rule)) }
                continue
            }
            earlierCount = others.count
            for box in rule.protectedBoxes {
                asked.append(box)
                var pieces = [box]
                for (_, earlier) in others {
                    pieces = pieces.flatMap { piece in
                        earlier.boxes(as: piece.ipProtocol).reduce([piece]) { kept, cut in
                            kept.flatMap { $0.subtracting(cut) ?? [$0] }
                        }
                    }
                }
                wanted += pieces
            }
            if rule.ipProtocol == nil && rule.sourcePorts.isAny && rule.destinationPorts.isAny { break }  // nothing after it counts
        }
        // Every piece cut away (a protect rule no packet reaches): ask for the rules' own traffic and say so.
        let shadowed = wanted.isEmpty && !asked.isEmpty
        if wanted.isEmpty { wanted = asked }
        guard !wanted.isEmpty else { return .hostToHost(terminal: terminal, peer: peer) }
        // A piece inside another says nothing more (TCP beside every protocol: host to host).
        wanted = wanted.enumerated().filter { index, box in
            !wanted.enumerated().contains { other, wider in
                other != index && wider.contains(box) && (!box.contains(wider) || other < index)
            }
        }.map(\.element)

        func selector(_ box: SelectorBox, _ range: ClosedRange<UInt16>, _ address: IPAddress) -> TrafficSelector {
            TrafficSelector(
                ipProtocol: box.ipProtocol ?? 0, startPort: range.lowerBound, endPort: range.upperBound,
                startAddress: address, endAddress: address)
        }
        var selectors = ProtectedTrafficSelectors(local: [], remote: [])
        for box in wanted {
            let local = selector(box, box.local, terminal)
            let remote = selector(box, box.remote, peer)
            if !selectors.local.contains(local) { selectors.local.append(local) }
            if !selectors.remote.contains(remote) { selectors.remote.append(remote) }
        }
        // The SA covers every local and remote pair: name the earlier rules some pair still reaches into.
        var covered: [SelectorBox] = []
        for local in selectors.local {
            for remote in selectors.remote where local.ipProtocol == remote.ipProtocol || local.ipProtocol == 0 || remote.ipProtocol == 0 {
                let number = Swift.max(local.ipProtocol, remote.ipProtocol)
                if let box = SelectorBox(
                    ipProtocol: number == 0 ? nil : number, local: local.startPort...local.endPort,
                    remote: remote.startPort...remote.endPort
                ).normalized {
                    covered.append(box)
                }
            }
        }
        selectors.shadowed = shadowed
        selectors.stillCovered = others.prefix(earlierCount).filter { _, earlier in
            covered.contains { box in earlier.boxes(as: box.ipProtocol).contains { box.overlaps($0) } }
        }.map(\.index)
        return selectors
    }
}
