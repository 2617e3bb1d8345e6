/// A token bucket for the error answers the engine gives to IKE_SA_INIT before anyone has proved an address
/// (NO_PROPOSAL_CHOSEN, INVALID_SYNTAX, INVALID_KE_PAYLOAD, and "no connection" for strangers): at most `rate`
/// per second, in bursts of as many, so that a flood of spoofed requests cannot make the engine reflect that
/// many datagrams at their forged sources. COOKIE answers are not limited: genuine peers need them to get in
/// under a flood, and each is smaller than the request it answers. Pure: time is given.
struct AnswerRateLimit {
    let rate: Double
    private var tokens: Double
    private var updatedAt: Double?

    init(rate: Double) {
        self.rate = rate
        self.tokens = rate
    }

    /// Takes one answer's token if there is one.
    mutating func allow(now: Double) -> Bool {
        if let updatedAt, now > updatedAt { tokens = min(rate, tokens + (now - updatedAt) * rate) }
        updatedAt = max(updatedAt ?? now, now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// Log lines that a flood would repeat for every datagram, said once per interval with how many were folded
/// in, so that logging costs a flood nothing and still tells the operator what happened.
struct LogSampler {
    let interval: Double
    private var lastAt = -Double.infinity
    private var folded = 0

    init(interval: Double = 1) { self.interval = interval }

    /// The line to log now (with the count of those folded since the last one), or nil to stay quiet.
    mutating func line(_ text: @autoclosure () -> String, now: Double) -> String? {
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
