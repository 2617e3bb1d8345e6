/// Who holds the lease that makes one daemon of a pair the active one, as the database saw it at a claim: the
/// times are the server's, so that the two daemons' clocks never have to agree.
public struct LeaseRecord: Equatable, Sendable {
    public var holder: String
    /// Grows by one each time the lease passes to a holder (or comes back to one after it lapsed): every write of
    /// the active carries it, and a write under an older number changes nothing.
    public var fencing: Int64
    /// Seconds until the lease lapses unless renewed (negative: already lapsed).
    public var remaining: Double
    /// Seconds since the holder took it.
    public var age: Double

    public init(holder: String, fencing: Int64, remaining: Double, age: Double) {
        self.holder = holder
        self.fencing = fencing
        self.remaining = remaining
        self.age = age
    }
}

/// The term under which an active daemon writes: its name and the fencing number it got.
public struct LeaseFence: Equatable, Sendable {
    public var holder: String
    public var fencing: Int64
    public init(holder: String, fencing: Int64) {
        self.holder = holder
        self.fencing = fencing
    }
}

/// A write refused because the lease is no longer the writer's (it lapsed, or passed to the other daemon).
public struct LeaseLost: Error, CustomStringConvertible {
    public var fence: LeaseFence
    public var description: String { "the lease (holder \(fence.holder), fencing \(fence.fencing)) is no longer held: nothing written" }
}

/// Leadership of a pair of daemons as a lease in the shared store.
public protocol LeaseStore: AnyObject {
    /// Takes the lease if no one holds it or it lapsed, renews it if `holder` holds it, for `duration` seconds from
    /// the server's now; answers the lease as it stands after (the other daemon's, when it holds it).
    func claimLease(holder: String, duration: Double) throws -> LeaseRecord
    /// Lets the lease lapse at once if `holder` holds it (a planned switchover): the other daemon may take it.
    func releaseLease(holder: String) throws
    /// The lease as it stands, nil if no one ever held it.
    func currentLease() throws -> LeaseRecord?
    /// Writes from now on only under this term (nil: unchecked, a single daemon).
    func fenceWrites(_ fence: LeaseFence?)
}
