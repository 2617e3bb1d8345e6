import Foundation
import LinuxIO
import Store

/// Claims the pair's lease on a thread of its own, on a connection of its own, every `claimInterval`: the daemon's
/// loop never waits on the database for its leadership (a database cut off would otherwise freeze the loop just when
/// it must go silent). The loop drains the answers and gives them to `Leadership`, which judges them by when each
/// claim was sent.
final class LeaseKeeper: @unchecked Sendable {
    struct Answer {
        var lease: LeaseRecord?
        var error: String?
        var sentAt: Double
        var answeredAt: Double
    }

    let node: String
    let timing: Leadership.Timing
    private let store: any LeaseStore
    private let lock = NSLock()
    private var answers: [Answer] = []
    private var holdOffUntil = -Double.infinity
    private var releaseWanted = false
    private var stopped = false
    private let wakePipe = WakePipe()
    private var thread: Thread?
    /// Signalled to claim (or release) at once rather than at the next interval.
    private let nudge = DispatchSemaphore(value: 0)
    /// Whether the last answer named this node: a standby claims more often, so that it takes a released lease
    /// (a switchover) or a lapsed one at once.
    private var holding = false
    /// Run on this thread after each claim that this node holds the lease (the relayed requests served).
    var whileHolding: (() -> Void)?

    /// Readable when answers wait: the loop polls it.
    var wakeDescriptor: Int32 { wakePipe.readDescriptor }

    init(node: String, timing: Leadership.Timing, store: any LeaseStore) {
        self.node = node
        self.timing = timing
        self.store = store
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "ikeproxy-lease"
        self.thread = thread
        thread.start()
    }

    func stop() { lock.withLock { stopped = true } }

    /// A switchover: release the lease now and claim nothing until `until` (monotonic seconds).
    func handOver(until: Double) {
        lock.withLock {
            holdOffUntil = until
            releaseWanted = true
        }
        nudge.signal()
    }

    func drain() -> [Answer] {
        wakePipe.drain()
        return lock.withLock {
            defer { answers.removeAll() }
            return answers
        }
    }

    private func run() {
        while true {
            let (stop, holdOff, release) = lock.withLock { () -> (Bool, Double, Bool) in
                defer { releaseWanted = false }
                return (stopped, holdOffUntil, releaseWanted)
            }
            if stop { return }
            let sentAt = monotonicSeconds()
            if release {
                try? store.releaseLease(holder: node)
            }
            if sentAt >= holdOff {
                var answer = Answer(lease: nil, error: nil, sentAt: sentAt, answeredAt: 0)
                do { answer.lease = try store.claimLease(holder: node, duration: timing.leaseDuration) } catch { answer.error = "\(error)" }
                answer.answeredAt = monotonicSeconds()
                holding = answer.lease?.holder == node
                lock.withLock { answers.append(answer) }
                wakePipe.wake()
                if holding { whileHolding?() }
            }
            let interval = holding ? timing.claimInterval : min(timing.claimInterval, 0.1)
            let next = sentAt + interval - monotonicSeconds()
            if next > 0 { _ = nudge.wait(timeout: .now() + next) }
        }
    }
}
