#if canImport(Glibc)
    import Glibc
#endif

/// Receives ESP sent without UDP encapsulation (IP protocol 50, RFC 4303): a raw socket bound to the
/// protocol gets a copy of every ESP packet addressed to this host. Non-blocking; the kernel here has no
/// ESP transform of its own, so nothing else consumes them.
public final class RawESPSocket {
    public let descriptor: Int32
    public let isIPv6: Bool
    private var buffer = [UInt8](repeating: 0, count: 65536)

    public init(ipv6: Bool) throws {
        isIPv6 = ipv6
        let ipprotoESP: Int32 = 50
        descriptor = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_RAW.rawValue), ipprotoESP)
        guard descriptor >= 0 else { throw SocketError(operation: "raw ESP socket", code: errno) }
        let flags = fcntl(descriptor, F_GETFL)
        _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
    }

    deinit { close(descriptor) }

    /// The next ESP packet, from its SPI on, or nil when none is waiting. IPv4 raw sockets hand over the IP
    /// header too (skipped here, options included); IPv6 ones start after the extension headers.
    public func receive() -> [UInt8]? {
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 { return nil }
            guard !isIPv6 else { return Array(buffer[0..<count]) }
            guard count >= 20 else { continue }
            let headerLength = Int(buffer[0] & 0x0f) * 4
            guard headerLength >= 20, headerLength <= count else { continue }
            return Array(buffer[headerLength..<count])
        }
    }
}
