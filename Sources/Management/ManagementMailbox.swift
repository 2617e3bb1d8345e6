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

    /// Called from the server: waits until the loop has answered.
    public func submit(_ request: ManagementRequest) async -> ManagementResponse {
        await withCheckedContinuation { continuation in
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
