import Store

/// Which daemon of a pair acts, decided from the answers to its lease claims and its own monotonic clock; pure, so
/// that every rule is tested without a database (docs/high-availability.md).
///
/// The rule that keeps two actives from overlapping: a claim answered for this node makes it act until the moment
/// the claim was *sent* plus the lease's duration less a margin. The server counts the lease from when it ran the
/// claim, which is later than the sending, so this node stops before the server can hand the lease to the other
/// one, whatever the network's delays; the margin covers the two clocks running at slightly different rates.
public struct Leadership: Sendable {
    public enum Role: String, Sendable { case standby, active }

    public struct Timing: Sendable, Equatable {
        /// Seconds a claim holds the lease on the server.
        public var leaseDuration: Double = 2
        /// Seconds between claims (renewals by the active, attempts by the standby).
        public var claimInterval: Double = 0.4
        /// Seconds the active stops before its lease could lapse on the server.
        public var margin: Double = 0.3
        public init() {}
    }

    /// What the daemon must do.
    public enum Change: Equatable, Sendable {
        /// Act from now on, writing under this fencing number: restore the state, announce the paths, forward.
        case becomeActive(fencing: Int64)
        /// Stop acting at once (silent ports, no IKE, no key delivery), for the reason given.
        case becomeStandby(reason: String)
    }

    public let node: String
    public let timing: Timing
    public private(set) var role: Role = .standby
    public private(set) var fencing: Int64?
    /// Until when (monotonic seconds) the active acts without a renewal.
    public private(set) var activeUntil = -Double.infinity
    /// The lease as last answered, and when.
    public private(set) var lastLease: LeaseRecord?
    public private(set) var lastAnswerAt: Double?
    /// No claims before this (after handing over in a switchover, so the other node takes the lease).
    public private(set) var holdOffUntil = -Double.infinity
    /// Times this node became active.
    public private(set) var takeovers = 0

    public init(node: String, timing: Timing = Timing()) {
        self.node = node
        self.timing = timing
    }

    /// Whether the daemon acts at this moment: checked for every batch of frames, so that an active whose renewal
    /// is late goes silent on time even between two ticks.
    public func acts(now: Double) -> Bool { role == .active && now < activeUntil }

    /// Whether to claim now, the last claim having been sent at `lastSent`.
    public func claimDue(now: Double, lastSent: Double?) -> Bool {
        guard now >= holdOffUntil else { return false }
        return lastSent.map { now - $0 >= timing.claimInterval } ?? true
    }

    /// A claim sent at `sentAt` was answered at `now` with the lease as it stands.
    public mutating func answered(_ lease: LeaseRecord, sentAt: Double, now: Double) -> [Change] {
        lastLease = lease
        lastAnswerAt = now
        guard lease.holder == node else {
            guard role == .active else { return [] }
            return stepDown("the lease is held by \(lease.holder) (fencing \(lease.fencing))")
        }
        let deadline = sentAt + timing.leaseDuration - timing.margin
        // Answered too late to act on: the lease may be about to lapse on the server already.
        guard now < deadline else { return tick(now: now) }
        var changes: [Change] = []
        if role == .active, fencing != lease.fencing {
            // A new term while active means the old one lapsed between two answers: what was in memory may be stale.
            changes += stepDown("the lease lapsed and was taken again (fencing \(fencing.map(String.init) ?? "none") to \(lease.fencing))")
        }
        activeUntil = deadline
        if role == .standby {
            role = .active
            fencing = lease.fencing
            takeovers += 1
            changes.append(.becomeActive(fencing: lease.fencing))
        }
        return changes
    }

    /// The active that could not renew in time stops by itself.
    public mutating func tick(now: Double) -> [Change] {
        guard role == .active, now >= activeUntil else { return [] }
        let since = lastAnswerAt.map { " (last renewal answered \(String(format: "%.1f", now - $0)) s ago)" } ?? ""
        return stepDown("the lease was not renewed in time\(since)")
    }

    /// A planned switchover: stop acting and make no claim for `holdOff` seconds, so that the other node takes the
    /// lease (the caller releases it in the database).
    public mutating func handOver(now: Double, holdOff: Double) -> [Change] {
        holdOffUntil = now + holdOff
        guard role == .active else { return [] }
        return stepDown("switchover: handing the lease to the other node")
    }

    private mutating func stepDown(_ reason: String) -> [Change] {
        role = .standby
        fencing = nil
        activeUntil = -.infinity
        return [.becomeStandby(reason: reason)]
    }
}
