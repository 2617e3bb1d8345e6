/// One reading of the two clocks the pure cores need: monotonic seconds for timers, ages and lifetimes, and
/// wall-clock seconds since 1970 for what leaves the process stamped with the time (key-delivery messages).
/// The I/O layer reads both once per batch and hands the reading down; tests make their own.
public struct ClockReading: Sendable, Equatable {
    public var monotonic: Double
    public var wall: Double
    public init(monotonic: Double, wall: Double) {
        self.monotonic = monotonic
        self.wall = wall
    }
}
