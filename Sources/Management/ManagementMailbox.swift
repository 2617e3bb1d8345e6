import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Hands API calls from the HTTP server's threads to the daemon's single-threaded loop and the answers
/// back: the loop owns all proxy state, so nothing else touches it. A pipe wakes the loop's poll.
public final class ManagementMailbox: @unchecked Sendable {
    private let lock = NSLock()
    private var pending: [(ManagementRequest, CheckedContinuation<ManagementResponse, Never>)] = []
    private let pipeDescriptors: [Int32]

    public init() {
        var fds: [Int32] = [0, 0]
        if pipe(&fds) == 0 {
            _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
            _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        }
        pipeDescriptors = fds
    }

    deinit { close(pipeDescriptors[0]); close(pipeDescriptors[1]) }

    /// Readable when requests wait: add it to the loop's poll.
    public var wakeDescriptor: Int32 { pipeDescriptors[0] }

    /// Called from the server: waits until the loop has answered.
    public func submit(_ request: ManagementRequest) async -> ManagementResponse {
        await withCheckedContinuation { continuation in
            lock.lock()
            pending.append((request, continuation))
            lock.unlock()
            var byte: UInt8 = 1
            _ = write(pipeDescriptors[1], &byte, 1)
        }
    }

    /// Called from the loop: answers every waiting request.
    public func drain(_ handle: (ManagementRequest) -> ManagementResponse) {
        var scratch = [UInt8](repeating: 0, count: 64)
        while read(pipeDescriptors[0], &scratch, scratch.count) > 0 {}
        lock.lock()
        let work = pending
        pending = []
        lock.unlock()
        for (request, continuation) in work { continuation.resume(returning: handle(request)) }
    }
}
