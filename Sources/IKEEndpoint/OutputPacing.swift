/// When the loop writes out the log lines and events it holds: at most every `interval` seconds, and not at
/// all while nothing is held. A peer that sends one message at a time (strongSwan) wakes the loop for each;
/// writing stdout and stderr on every such turn cost two system calls per message (issue 21). Lines wait
/// `interval` at most, in their order, and the loop's sleep is cut short so that they do not wait longer.
final class OutputPacing {
    let interval: Double
    private(set) var held = false
    private var lastWritten: Double

    init(interval: Double = 0.02, now: Double) {
        self.interval = interval
        lastWritten = now
    }

    /// A line was handed to the writers.
    func noteHeld() { held = true }

    /// How long the loop may sleep, in milliseconds, given what it would sleep otherwise.
    func sleep(now: Double, otherwise: Int32) -> Int32 {
        guard held else { return otherwise }
        let due = max(0, (lastWritten + interval - now) * 1000)
        return min(otherwise, Int32(due.rounded(.up)))
    }

    /// Whether to write out now; if so the lines count as written.
    func shouldWrite(now: Double) -> Bool {
        guard held, now - lastWritten >= interval else { return false }
        held = false
        lastWritten = now
        return true
    }
}
