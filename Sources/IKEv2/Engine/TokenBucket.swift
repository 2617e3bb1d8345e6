/// At most `rate` answers a second, in bursts of as many: what a flood of forged or replayed datagrams may
/// make us send. The engine limits its error answers to IKE_SA_INIT with it (NO_PROPOSAL_CHOSEN, INVALID_SYNTAX,
/// INVALID_KE_PAYLOAD, and "no connection" for strangers; COOKIEs are not limited: genuine peers need them to
/// get in under a flood, and each is smaller than the request it answers); a terminal agent its acknowledgements
/// of duplicated key-delivery messages. Pure: time is given.
public struct TokenBucket: Sendable {
    public let rate: Double
    private var tokens: Double
    private var updatedAt: Double?

    public init(rate: Double) {
        self.rate = rate
        self.tokens = rate
    }

    /// Takes one answer's token if there is one.
    public mutating func allow(now: Double) -> Bool {
        if let updatedAt, now > updatedAt { tokens = min(rate, tokens + (now - updatedAt) * rate) }
        updatedAt = max(updatedAt ?? now, now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// Log lines that a flood would repeat for every datagram, said once per interval with how many were folded
/// in, so that logging costs a flood nothing and still tells the operator what happened.
public struct LogSampler: Sendable {
    public let interval: Double
    private var lastAt = -Double.infinity
    private var folded = 0

    public init(interval: Double = 1) { self.interval = interval }

    /// The line to log now (with the count of those folded since the last one), or nil to stay quiet.
    public mutating func line(_ text: @autoclosure () -> String, now: Double) -> String? {
        guard now - lastAt >= interval else {
            folded += 1
            return nil
        }
        let suffix = folded > 0 ? " (and \(folded) more like it since the last such line)" : ""
        lastAt = now
        folded = 0
        return text() + suffix
    }
}
