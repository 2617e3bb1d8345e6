import IKEv2

/// The last negotiations that failed (an IKE SA or a CHILD SA not made), with why: what an operator opening
/// the console wants first. Bounded; the counters keep the totals.
struct RecentFailures {
    struct Failure: Equatable {
        var at: Double
        var kind: String
        var connection: String
        var peer: String
        var reason: String
    }

    let limit: Int
    private(set) var failures: [Failure] = []

    init(limit: Int = 20) { self.limit = limit }

    mutating func note(_ event: SAEvent, at now: Double) {
        guard event.kind == .ikeFailed || event.kind == .childFailed else { return }
        failures.append(
            Failure(
                at: now, kind: event.kind.rawValue, connection: event.connection, peer: event.remote.address.description,
                reason: event.detail ?? "no reason given"))
        if failures.count > limit { failures.removeFirst(failures.count - limit) }
    }
}
