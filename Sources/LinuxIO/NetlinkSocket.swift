import CLinuxIO

#if canImport(Glibc)
    import Glibc
#endif

/// A netlink socket (AF_NETLINK, raw) of one protocol, bound to the multicast groups given: the
/// kernel's XFRM interface for the terminal agent's kernel backend. Requests are answered on the same
/// socket; notifications of the groups arrive on it too.
public final class NetlinkSocket {
    public let descriptor: Int32
    public static let xfrmProtocol: Int32 = 6  // NETLINK_XFRM

    /// `groups` is the bind mask of multicast groups (bit n-1 for group n). `nonBlocking` for a socket
    /// read from an event loop.
    public init(protocol netlinkProtocol: Int32, groups: UInt32 = 0, nonBlocking: Bool = false) throws {
        let opened = ikp_netlink_open(netlinkProtocol, groups)
        guard opened >= 0 else { throw SocketError(operation: "netlink socket (protocol \(netlinkProtocol), groups \(groups))", code: -opened) }
        descriptor = opened
        if nonBlocking {
            let flags = fcntl(descriptor, F_GETFL)
            _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
        }
    }

    deinit { close(descriptor) }

    /// Sends one message to the kernel.
    public func send(_ bytes: [UInt8]) throws {
        let result = bytes.withUnsafeBufferPointer { ikp_netlink_send(descriptor, $0.baseAddress, Int32($0.count)) }
        guard result == 0 else { throw SocketError(operation: "netlink send", code: -result) }
    }

    /// One datagram (it may hold several messages); nil when a non-blocking socket has none waiting.
    public func receive() throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if count < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
            throw SocketError(operation: "netlink receive", code: errno)
        }
        return Array(buffer.prefix(count))
    }

    /// Waits up to `milliseconds` for a datagram; nil if none came.
    public func receive(waitingMilliseconds milliseconds: Int32) throws -> [UInt8]? {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, milliseconds) > 0 else { return nil }
        return try receive()
    }
}
