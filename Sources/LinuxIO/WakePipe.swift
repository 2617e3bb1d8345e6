#if canImport(Glibc)
    import Glibc
#endif

/// Wakes a poll loop from other threads: a non-blocking pipe whose read end sits in the loop's poll set.
/// A sender puts what it hands over in its own locked queue, then calls `wake()`; the loop, seeing the
/// descriptor readable, calls `drain()` and takes the queue.
public final class WakePipe: @unchecked Sendable {
    private let descriptors: [Int32]

    public init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
            _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        }
        descriptors = fds
    }

    deinit {
        close(descriptors[0])
        close(descriptors[1])
    }

    /// Readable while a wake-up waits: add it to the loop's poll.
    public var readDescriptor: Int32 { descriptors[0] }

    /// From any thread (a full pipe already means "wake up", so a failed write loses nothing).
    public func wake() {
        var byte: UInt8 = 1
        _ = write(descriptors[1], &byte, 1)
    }

    /// From the loop: empties the pipe so that poll blocks again until the next wake-up.
    public func drain() {
        var scratch = [UInt8](repeating: 0, count: 64)
        while read(descriptors[0], &scratch, scratch.count) > 0 {}
    }
}
