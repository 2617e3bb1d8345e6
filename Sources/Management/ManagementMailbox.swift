import Foundation
import LinuxIO

/// Hands API calls from the HTTP server's threads to the daemon's single-threaded loop and the answers
/// back: the loop owns all proxy state, so nothing else touches it. A pipe wakes the loop's poll.
public final class ManagementMailbox: @unchecked Sendable {
    private let lock = NSLock()
    private var pending: [(ManagementRequest, CheckedContinuation<ManagementResponse, Never>)] = []
    private let wakePipe = WakePipe()

    public init() {}

    /// Readable when requests wait: add it to the loop's poll.
    public var wakeDescriptor: Int32 { wakePipe.readDescriptor }

    /// Set by a daemon that may hand requests elsewhere (the standby of a pair, to the active): asked first, on the
    /// server's side, so the loop never waits for it; nil from it means the loop answers.
    public var relay: (@Sendable (ManagementRequest) async -> ManagementResponse?)? {
        get { lock.withLock { relayHandler } }
        set { lock.withLock { relayHandler = newValue } }
    }
    private var relayHandler: (@Sendable (ManagementRequest) async -> ManagementResponse?)?

    /// Called from the server: waits until the loop (or the relay) has answered. `relaying` false: the loop answers
    /// (a request relayed from the other node is never relayed again).
    public func submit(_ request: ManagementRequest, relaying: Bool = true) async -> ManagementResponse {
        if relaying, let relay, let answer = await relay(request) { return answer }
        return await withCheckedContinuation { continuation in
            lock.lock()
            pending.append((request, continuation))
            lock.unlock()
            wakePipe.wake()
        }
    }

    /// Called from the loop: answers every waiting request.
    public func drain(_ handle: (ManagementRequest) -> ManagementResponse) {
        wakePipe.drain()
        lock.lock()
        let work = pending
        pending = []
        lock.unlock()
        for (request, continuation) in work { continuation.resume(returning: handle(request)) }
    }
}
