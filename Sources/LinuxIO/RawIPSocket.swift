#if canImport(Glibc)
    import Glibc
#endif

/// A raw socket that sends complete IP packets as they are (IPPROTO_RAW implies the header is included),
/// used to pass packets on unchanged. `mark` (SO_MARK) lets policy routing keep them out of a TUN device.
public final class RawIPSocket {
    public let descriptor: Int32
    public let isIPv6: Bool

    public init(ipv6: Bool, mark: UInt32?) throws {
        isIPv6 = ipv6
        descriptor = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_RAW))
        guard descriptor >= 0 else { throw SocketError(operation: "raw socket", code: errno) }
        if var mark {
            guard setsockopt(descriptor, SOL_SOCKET, LinuxSocketOption.mark, &mark, socklen_t(MemoryLayout<UInt32>.size)) == 0 else {
                let code = errno
                close(descriptor)
                throw SocketError(operation: "SO_MARK", code: code)
            }
        }
    }

    deinit { close(descriptor) }

    /// Sends `packet` (which starts with its IP header) towards `destination`.
    public func send(_ packet: [UInt8], destination: [UInt8]) throws {
        let sent = packet.withUnsafeBytes { buffer in
            UDPSocket.withSockaddr(address: destination, port: 0) { pointer, length in
                sendto(descriptor, buffer.baseAddress, buffer.count, 0, pointer, length)
            }
        }
        guard sent >= 0 else { throw SocketError(operation: "raw send", code: errno) }
    }
}
