import CLinuxIO

#if canImport(Glibc)
    import Glibc
#endif

/// Waits for descriptors to become readable with an epoll set kept between calls, so that a loop woken
/// for every datagram does not register and unregister each descriptor at every turn as `poll` does
/// (issue 21: a turn per message when a peer sends one at a time). The set follows the descriptors asked
/// for at each call: added and removed only when they change. Level-triggered, as `poll` is. A descriptor
/// must stay open while it is asked for: the kernel drops a closed one from the set, and a new descriptor
/// given the same number before the next call would not be added.
public final class ReadinessWaiter {
    private let epoll: Int32
    private var registered: Set<Int32> = []
    /// The list asked for last: the same list again (nearly every turn) costs no set.
    private var lastAsked: [Int32] = []
    private var ready = [Int32](repeating: -1, count: 64)

    public init() { epoll = ikp_epoll_open() }

    deinit { if epoll >= 0 { close(epoll) } }

    /// Waits until one of `descriptors` is readable or the timeout passes; returns the readable ones.
    /// Without an epoll set (the kernel refused one), it waits with `poll` as before.
    public func wait(_ descriptors: [Int32], timeoutMilliseconds: Int32) -> [Int32] {
        guard epoll >= 0 else { return waitReadable(descriptors, timeoutMilliseconds: timeoutMilliseconds) }
        if descriptors != lastAsked {
            let wanted = Set(descriptors)
            for descriptor in registered.subtracting(wanted) { _ = ikp_epoll_watch(epoll, descriptor, 0) }
            for descriptor in wanted.subtracting(registered) { _ = ikp_epoll_watch(epoll, descriptor, 1) }
            registered = wanted
            lastAsked = descriptors
        }
        let count = ready.withUnsafeMutableBufferPointer { ikp_epoll_wait_readable(epoll, $0.baseAddress, Int32($0.count), timeoutMilliseconds) }
        return count > 0 ? Array(ready[0..<Int(count)]) : []
    }
}
