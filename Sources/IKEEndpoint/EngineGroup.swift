import Foundation
import IKEv2
import LinuxIO

/// The endpoint's IKE engines: one, run inline on the loop's thread, or `count`, each on a thread of its own
/// holding the IKE SAs whose SPIs are its own (IKEShard), so that both cores negotiate (issue 21).
///
/// The loop hands work to an engine (`submit`) and performs what comes back (`completed`) on its own thread:
/// sockets, output and key delivery stay with the loop; only the engines' own work (decoding, crypto, state)
/// moves to the workers. Each worker takes its work in the order it was handed over. With one engine the
/// work runs at once, and `completed` returns it at the next call: the same loop serves both.
final class EngineGroup: @unchecked Sendable {
    typealias Work = (IKEEngine, Double) -> [EngineAction]

    private let engines: [IKEEngine]
    private let workers: [EngineWorker]
    private let lock = NSLock()
    private var results: [(engine: Int, actions: [EngineAction])] = []
    private let wake = WakePipe()

    var count: Int { engines.count }
    /// Datagrams and other work an engine may have waiting before the loop stops reading its sockets: what
    /// the engines cannot take stays in the sockets' buffers, and the kernel drops and counts the rest, as it
    /// does for a single engine, instead of queues growing without bound in memory.
    static let backlogLimit = 256
    /// Whether some engine has `backlogLimit` pieces of work waiting: the loop reads no datagrams meanwhile.
    var saturated: Bool { workers.contains { $0.pending >= Self.backlogLimit } }
    /// Readable when workers have finished something: the loop polls it.
    var wakeDescriptor: Int32 { wake.readDescriptor }

    /// `count` engines with the same connections; each takes `settings` with its shard, and its part of the
    /// COOKIE threshold and of the reassembly memory (the IKE SAs spread over the engines as their SPIs do).
    init(connections: [ConnectionConfiguration], settings: EngineSettings, count: Int) {
        precondition(count >= 1)
        engines = (0..<count).map { index in
            IKEEngine(connections: connections, settings: IKEShard.settings(settings, index: index, of: count))
        }
        workers = count == 1 ? [] : engines.enumerated().map { EngineWorker(index: $0.offset, engine: $0.element) }
        for worker in workers {
            worker.start { [weak self] index, actions in self?.finished(index, actions) }
        }
    }

    deinit { stop() }

    func stop() { workers.forEach { $0.stop() } }

    private func finished(_ index: Int, _ actions: [EngineAction]) {
        guard !actions.isEmpty else { return }
        lock.withLock { results.append((index, actions)) }
        if !workers.isEmpty { wake.wake() }
    }

    /// Hands `work` to engine `index`.
    func submit(to index: Int, _ work: @escaping Work) {
        if workers.isEmpty {
            finished(index, work(engines[index], monotonicSeconds()))
        } else {
            workers[index].post(work)
        }
    }

    /// Hands `work` to every engine.
    func broadcast(_ work: @escaping Work) {
        for index in 0..<count { submit(to: index, work) }
    }

    /// What the engines answered since the last call, in the order each engine answered.
    func completed() -> [(engine: Int, actions: [EngineAction])] {
        // Only workers write the wake pipe: one engine on the loop's thread costs no read per turn.
        if !workers.isEmpty { wake.drain() }
        return lock.withLock {
            defer { results.removeAll(keepingCapacity: true) }
            return results
        }
    }

    /// Reads every engine, each on its own thread after the work handed to it before, and waits for the
    /// answers: for the control pipe, key delivery and the end of the run, never per datagram.
    func query<T>(_ read: @escaping (IKEEngine) -> T) -> [T] {
        if workers.isEmpty { return engines.map(read) }
        let answers = QueryAnswers<T>(count: count)
        for worker in workers {
            worker.post { engine, _ in
                answers.set(worker.index, read(engine))
                return []
            }
        }
        return answers.wait()
    }

    /// The engine a datagram's IKE SA belongs to (IKEShard.owner); `encapsulated` on the NAT traversal port.
    func engine(for datagram: [UInt8], encapsulated: Bool) -> Int {
        IKEShard.owner(of: datagram[...], encapsulated: encapsulated, count: count)
    }

    /// The engine a connection's own initiations start on: the same one each time (FNV-1a of its name).
    func engine(forConnection name: String) -> Int { EngineShards.owner(ofConnection: name, count: count) }
}

/// Answers of one `query`, one per engine, and the wait for all of them.
final class QueryAnswers<T>: @unchecked Sendable {
    private let condition = NSCondition()
    private var answers: [T?]
    private var missing: Int

    init(count: Int) {
        answers = Array(repeating: nil, count: count)
        missing = count
    }

    func set(_ index: Int, _ value: T) {
        condition.withLock {
            answers[index] = value
            missing -= 1
            condition.signal()
        }
    }

    func wait() -> [T] {
        condition.withLock {
            while missing > 0 { condition.wait() }
            return answers.map { $0! }
        }
    }
}

/// One engine on a thread of its own: it takes the work posted to it in order, and hands each piece's
/// actions to `done` (from its own thread).
final class EngineWorker: @unchecked Sendable {
    let index: Int
    private let engine: IKEEngine
    private let condition = NSCondition()
    private var inbox: [EngineGroup.Work] = []
    /// Work posted and not begun yet.
    private var waiting = 0
    private var stopping = false
    private var thread: Thread?
    private let finishedRunning = NSCondition()
    private var running = false

    init(index: Int, engine: IKEEngine) {
        self.index = index
        self.engine = engine
    }

    func start(done: @escaping @Sendable (Int, [EngineAction]) -> Void) {
        running = true
        let thread = Thread { [self] in
            while true {
                let work: [EngineGroup.Work] = condition.withLock {
                    while inbox.isEmpty && !stopping { condition.wait() }
                    defer { inbox.removeAll(keepingCapacity: true) }
                    return inbox
                }
                if work.isEmpty { break }
                var actions: [EngineAction] = []
                for piece in work {
                    // Counted off before it runs, so that whoever a piece answers (a query) sees it gone.
                    condition.withLock { waiting -= 1 }
                    actions += piece(engine, monotonicSeconds())
                }
                done(index, actions)
            }
            finishedRunning.withLock {
                running = false
                finishedRunning.signal()
            }
        }
        thread.name = "ike-engine-\(index)"
        self.thread = thread
        thread.start()
    }

    func post(_ work: @escaping EngineGroup.Work) {
        condition.withLock {
            inbox.append(work)
            waiting += 1
            condition.signal()
        }
    }

    var pending: Int { condition.withLock { waiting } }

    /// Lets the thread finish what was posted, then end; waits for it.
    func stop() {
        condition.withLock {
            stopping = true
            condition.signal()
        }
        finishedRunning.withLock {
            while running { finishedRunning.wait() }
        }
    }
}
