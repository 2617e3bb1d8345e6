import IKEv2

/// The negotiations the proxy runs in terminals' names, by terminal and peer, and the limits put on them:
/// one at a time per pair, a pause after a failure, at most so many per terminal and in all. Pure
/// bookkeeping: the coordinator asks before it starts one and reports how each ends.
struct NegotiationsInFlight {
    /// After a negotiation for a pair failed, start requests for it wait this long.
    var retryAfterFailure: Double
    var maxPerTerminal: Int
    var maxInAll: Int

    /// When each negotiation under way began.
    private(set) var started: [TerminalPeer: Double] = [:]
    /// The last failure per pair: when, and why.
    private var failures: [TerminalPeer: (at: Double, reason: String)] = [:]
    /// When a refusal over a limit was last logged, by terminal ID (at most one line in 10 s).
    private var limitLogged: [UInt64: Double] = [:]

    init(settings: ProxySettings) {
        retryAfterFailure = settings.retryAfterFailure
        maxPerTerminal = settings.maxNegotiationsPerTerminal
        maxInAll = settings.maxNegotiations
    }

    var isEmpty: Bool { started.isEmpty }

    func isUnderWay(_ pair: TerminalPeer) -> Bool { started[pair] != nil }

    /// Whether a failure for this pair is recent enough that start requests still wait.
    func isHeldAfterFailure(_ pair: TerminalPeer, now: Double) -> Bool {
        failures[pair].map { now - $0.at < retryAfterFailure } ?? false
    }

    mutating func begin(_ pair: TerminalPeer, now: Double) { started[pair] = now }

    /// A CHILD SA was made for the pair: its negotiation is over and any failure forgotten. How long it took, when
    /// the proxy started it.
    @discardableResult
    mutating func succeeded(_ pair: TerminalPeer, now: Double) -> Double? {
        failures[pair] = nil
        return started.removeValue(forKey: pair).map { now - $0 }
    }

    /// The pair's IKE SA went away: whatever ran on it is over.
    mutating func ended(_ pair: TerminalPeer) { started[pair] = nil }

    /// A negotiation for the pair failed; whether one was under way.
    mutating func failed(_ pair: TerminalPeer, reason: String, now: Double) -> Bool {
        failures[pair] = (now, reason)
        return started.removeValue(forKey: pair) != nil
    }

    /// Forgets the negotiations in these terminals' names (they are no longer acted for).
    mutating func cancel(terminals: Set<IPAddress>) {
        for pair in started.keys where terminals.contains(pair.terminal) { started[pair] = nil }
    }

    /// The limit a new negotiation in this terminal's name would pass, in words; nil when it may start.
    /// `owner` maps an address to the terminal ID it belongs to.
    func limitReached(terminalID: UInt64, of owner: (IPAddress) -> UInt64?) -> String? {
        let own = started.keys.filter { owner($0.terminal) == terminalID }.count
        if own >= maxPerTerminal {
            return "\(own) negotiations are under way in its name already (max_negotiations_per_terminal \(maxPerTerminal))"
        }
        if started.count >= maxInAll {
            return "\(started.count) negotiations are under way already (max_negotiations \(maxInAll))"
        }
        return nil
    }

    /// Whether a refusal for this terminal is to be logged now (else only counted).
    mutating func shouldLogLimit(terminalID: UInt64, now: Double) -> Bool {
        guard now - (limitLogged[terminalID] ?? -.infinity) >= 10 else { return false }
        limitLogged[terminalID] = now
        return true
    }

    /// The negotiations older than `age` seconds, forgotten; and the failures old enough no longer to hold
    /// start requests. The engine reports failures itself; this is the net under it.
    mutating func expire(now: Double, abandonAfter age: Double) -> [(pair: TerminalPeer, started: Double)] {
        let stale = started.filter { now - $0.value > age }.map { (pair: $0.key, started: $0.value) }
        for (pair, _) in stale { started[pair] = nil }
        for (pair, failure) in failures where now - failure.at >= retryAfterFailure { failures[pair] = nil }
        return stale.sorted { $0.started < $1.started }
    }
}
