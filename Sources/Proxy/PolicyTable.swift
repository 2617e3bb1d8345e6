/// The ordered policy table with an index that keeps lookups fast at 10,000 rules: first match wins,
/// as in an SPD (RFC 4301 section 4.4.1), but a lookup only examines the rules whose destination (or,
/// for rules more specific by source, source) range contains the packet's address.
///
/// The index cuts each family's address space into elementary intervals at every rule boundary; each
/// interval lists, in table order, the rules covering it. A lookup is two binary searches and a merge
/// of two short ordered lists.
public struct PolicyTable: Sendable {
    public let rules: [PolicyRule]
    /// What applies when no rule matches.
    public let defaultAction: PolicyAction

    /// The protection profiles the rules and the default action name.
    public var profileNames: Set<String> {
        Set(
            (rules.map(\.action) + [defaultAction]).compactMap { action -> String? in
                if case .protect(let name) = action { return name }
                return nil
            })
    }

    struct Index: Sendable {
        var boundaries: [AddressKey] = []
        /// Candidates of interval i are flat[start[i] ..< start[i + 1]]: one array, no per-interval storage.
        var start: [Int32] = []
        var flat: [Int32] = []

        init(ranges: [(rule: Int, low: AddressKey, high: AddressKey)]) {
            var points = Set<AddressKey>()
            for range in ranges {
                points.insert(range.low)
                if range.high != AddressKey(high: .max, low: .max) { points.insert(range.high.successor) }
            }
            points.insert(AddressKey(high: 0, low: 0))
            boundaries = points.sorted()
            var candidates: [[Int32]] = Array(repeating: [], count: boundaries.count)
            for range in ranges {
                let first = Self.interval(of: range.low, in: boundaries)
                let last = Self.interval(of: range.high, in: boundaries)
                for interval in first...last { candidates[interval].append(Int32(range.rule)) }
            }
            start = [0]
            for list in candidates {
                flat += list
                start.append(Int32(flat.count))
            }
        }

        /// The interval holding `key`: the last boundary not above it.
        @inlinable
        static func interval(of key: AddressKey, in boundaries: [AddressKey]) -> Int {
            var low = 0
            var high = boundaries.count - 1
            while low < high {
                let middle = (low + high + 1) / 2
                if key < boundaries[middle] { high = middle - 1 } else { low = middle }
            }
            return low
        }

        /// The range of `flat` holding the candidates for `key`.
        @inline(__always)
        func candidates(_ key: AddressKey) -> Range<Int> {
            guard !boundaries.isEmpty else { return 0..<0 }
            let interval = Self.interval(of: key, in: boundaries)
            return Int(start[interval])..<Int(start[interval + 1])
        }
    }

    /// The selectors of each rule as plain values (no strings, no reference counting) for the hot loop.
    struct CompactRule: Sendable {
        var isIPv6: Bool
        var sourceLow, sourceHigh, destinationLow, destinationHigh: AddressKey
        var ipProtocol: Int16
        var sourcePortLow, sourcePortHigh, destinationPortLow, destinationPortHigh: UInt16

        init(_ rule: PolicyRule) {
            isIPv6 = rule.source.isIPv6
            sourceLow = rule.source.low
            sourceHigh = rule.source.high
            destinationLow = rule.destination.low
            destinationHigh = rule.destination.high
            ipProtocol = rule.ipProtocol.map { Int16($0) } ?? -1
            sourcePortLow = rule.sourcePorts.low
            sourcePortHigh = rule.sourcePorts.high
            destinationPortLow = rule.destinationPorts.low
            destinationPortHigh = rule.destinationPorts.high
        }

        @inline(__always)
        func matches(_ key: FlowKey) -> Bool {
            isIPv6 == key.isIPv6
                && !(key.source < sourceLow) && !(sourceHigh < key.source)
                && !(key.destination < destinationLow) && !(destinationHigh < key.destination)
                && (ipProtocol < 0 || ipProtocol == Int16(key.ipProtocol))
                && sourcePortLow <= key.sourcePort && key.sourcePort <= sourcePortHigh
                && destinationPortLow <= key.destinationPort && key.destinationPort <= destinationPortHigh
        }
    }
    let compact: [CompactRule]

    /// Per family: rules indexed by destination and rules indexed by source.
    let byDestination: [Index]
    let bySource: [Index]

    public init(rules: [PolicyRule], defaultAction: PolicyAction = .bypass) {
        self.rules = rules
        self.defaultAction = defaultAction
        compact = rules.map(CompactRule.init)
        var destinationRanges: [[(rule: Int, low: AddressKey, high: AddressKey)]] = [[], []]
        var sourceRanges: [[(rule: Int, low: AddressKey, high: AddressKey)]] = [[], []]
        for (index, rule) in rules.enumerated() {
            let family = rule.source.isIPv6 ? 1 : 0
            // Index by the narrower of the two prefixes so that wildcard sides do not fill every interval.
            let destinationWidth = Self.width(rule.destination)
            let sourceWidth = Self.width(rule.source)
            if destinationWidth <= sourceWidth {
                destinationRanges[family].append((index, rule.destination.low, rule.destination.high))
            } else {
                sourceRanges[family].append((index, rule.source.low, rule.source.high))
            }
        }
        byDestination = destinationRanges.map(Index.init)
        bySource = sourceRanges.map(Index.init)
    }

    /// log2 of the number of addresses a prefix covers, roughly: only the order matters.
    static func width(_ prefix: AddressPrefix) -> Int {
        let highBits = (prefix.high.high ^ prefix.low.high)
        let lowBits = (prefix.high.low ^ prefix.low.low)
        return highBits != 0 ? 128 - highBits.leadingZeroBitCount : 64 - lowBits.leadingZeroBitCount
    }

    /// The index of the first rule matching the packet, or nil (then `defaultAction` applies).
    public func firstMatch(_ key: FlowKey) -> Int? {
        // Small tables: a straight scan is faster than any index.
        if compact.count <= Self.linearThreshold { return linearLookup(key) }
        let family = key.isIPv6 ? 1 : 0
        let destinationIndex = byDestination[family]
        let sourceIndex = bySource[family]
        let destinationRange = destinationIndex.candidates(key.destination)
        let sourceRange = sourceIndex.candidates(key.source)
        var d = destinationRange.lowerBound
        var s = sourceRange.lowerBound
        // Merge the two ordered candidate lists, checking the lower rule index first.
        while d < destinationRange.upperBound || s < sourceRange.upperBound {
            let takeDestination =
                s >= sourceRange.upperBound
                || (d < destinationRange.upperBound && destinationIndex.flat[d] < sourceIndex.flat[s])
            let index = Int(takeDestination ? destinationIndex.flat[d] : sourceIndex.flat[s])
            if takeDestination { d += 1 } else { s += 1 }
            if compact[index].matches(key) { return index }
        }
        return nil
    }

    public func lookup(_ key: FlowKey) -> (index: Int, rule: PolicyRule)? {
        firstMatch(key).map { ($0, rules[$0]) }
    }

    static let linearThreshold = 32

    public func action(for key: FlowKey) -> PolicyAction { lookup(key)?.rule.action ?? defaultAction }

    /// The plain linear first-match scan, the definition the index must agree with (used by tests).
    public func linearLookup(_ key: FlowKey) -> Int? { compact.firstIndex { $0.matches(key) } }
}
