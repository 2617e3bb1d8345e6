import Foundation

/// Failed authentications per source address, so that nobody can try tokens at the API's speed: after
/// `limit` failures within `window` seconds a source is refused (429) for `block` seconds without its
/// credentials being looked at. At most `capacity` sources are remembered (the oldest go first), so a
/// flood from many addresses costs bounded memory. Thread-safe: the API's handlers run concurrently.
public final class AuthenticationThrottle: @unchecked Sendable {
    public let limit: Int
    public let window: Double
    public let block: Double
    public let capacity: Int
    private var failures: [String: [Double]] = [:]
    private var blockedUntil: [String: Double] = [:]
    private var order: [String] = []
    private let lock = NSLock()

    public init(limit: Int = 10, window: Double = 60, block: Double = 60, capacity: Int = 4096) {
        self.limit = limit
        self.window = window
        self.block = block
        self.capacity = capacity
    }

    /// Seconds the source must still wait, or nil when it may try.
    public func refusal(source: String, now: Double) -> Double? {
        lock.lock()
        defer { lock.unlock() }
        guard let until = blockedUntil[source] else { return nil }
        if now >= until {
            blockedUntil[source] = nil
            return nil
        }
        return until - now
    }

    /// Records a failed authentication; true when it is the one that blocks the source.
    public func recordFailure(source: String, now: Double) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if failures[source] == nil {
            order.append(source)
            if order.count > capacity {
                let oldest = order.removeFirst()
                failures[oldest] = nil
                blockedUntil[oldest] = nil
            }
        }
        var recent = (failures[source] ?? []).filter { now - $0 < window }
        recent.append(now)
        guard recent.count >= limit else {
            failures[source] = recent
            return false
        }
        failures[source] = []
        blockedUntil[source] = now + block
        return true
    }

    /// A success from the source forgets its failures.
    public func recordSuccess(source: String) {
        lock.lock()
        defer { lock.unlock() }
        failures[source] = nil
        order.removeAll { $0 == source }
    }

    /// How many sources are remembered (for tests of the bound).
    public var remembered: Int {
        lock.lock()
        defer { lock.unlock() }
        return failures.count
    }
}
