import CLinuxIO

#if canImport(Glibc)
    import Glibc
#endif

/// Why a socket operation failed, with the errno text.
public struct SocketError: Error, CustomStringConvertible {
    public var operation: String
    public var code: Int32
    public var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// A non-blocking UDP socket bound to one address and port (IPv4 or IPv6, addresses as raw octets).
public final class UDPSocket {
    public let descriptor: Int32
    public let isIPv6: Bool
    public let localAddress: [UInt8]
    public let localPort: UInt16
    /// recvmmsg's buffers, made at the first batched read.
    var slots: ReceiveSlots?

    func receiveSlots(_ wanted: Int) -> ReceiveSlots {
        if let slots, slots.count >= wanted { return slots }
        let made = ReceiveSlots(count: wanted)
        slots = made
        return made
    }

    /// `transparent` lets the socket use an address this host does not own (IP_TRANSPARENT: acting in a
    /// terminal's name); `mark` sets SO_MARK so policy routing can keep its packets out of a TUN device.
    public init(address: [UInt8], port: UInt16, transparent: Bool = false, mark: UInt32? = nil, broadcast: Bool = false) throws {
        isIPv6 = address.count == 16
        localAddress = address
        localPort = port
        descriptor = socket(isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw SocketError(operation: "socket", code: errno) }
        var one: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if isIPv6 { setsockopt(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) }
        // Bind even if the address is not configured yet (e.g. IPv6 DAD still running).
        setsockopt(descriptor, Int32(IPPROTO_IP), IP_FREEBIND, &one, socklen_t(MemoryLayout<Int32>.size))
        if broadcast { setsockopt(descriptor, SOL_SOCKET, SO_BROADCAST, &one, socklen_t(MemoryLayout<Int32>.size)) }
        if transparent {
            let ok =
                isIPv6
                ? setsockopt(descriptor, Int32(IPPROTO_IPV6), LinuxSocketOption.ipv6Transparent, &one, socklen_t(MemoryLayout<Int32>.size))
                : setsockopt(descriptor, Int32(IPPROTO_IP), LinuxSocketOption.ipTransparent, &one, socklen_t(MemoryLayout<Int32>.size))
            guard ok == 0 else {
                let code = errno
                close(descriptor)
                throw SocketError(operation: "IP_TRANSPARENT", code: code)
            }
        }
        if var mark {
            guard setsockopt(descriptor, SOL_SOCKET, LinuxSocketOption.mark, &mark, socklen_t(MemoryLayout<UInt32>.size)) == 0 else {
                let code = errno
                close(descriptor)
                throw SocketError(operation: "SO_MARK", code: code)
            }
        }
        let flags = fcntl(descriptor, F_GETFL)
        _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
        let result = UDPSocket.withSockaddr(address: address, port: port) { pointer, length in bind(descriptor, pointer, length) }
        guard result == 0 else {
            let code = errno
            close(descriptor)
            throw SocketError(operation: "bind \(UDPSocket.format(address)) port \(port)", code: code)
        }
    }

    deinit { close(descriptor) }

    /// Exempts the socket's own datagrams from the kernel's IPsec policies, as IKE daemons do for theirs.
    public func bypassKernelIPsec() throws {
        let result = ikp_socket_bypass_ipsec(descriptor, isIPv6 ? 1 : 0)
        guard result == 0 else { throw SocketError(operation: "IPsec policy bypass on port \(localPort)", code: -result) }
    }

    /// Marks the socket for the kernel's ESP-in-UDP (RFC 3948, UDP_ENCAP_ESPINUDP): datagrams that carry
    /// ESP are taken off and decrypted by the kernel's SAs; the rest (keepalives, IKE) still arrive here.
    public func takeESPIntoKernel() throws {
        var type: Int32 = 2
        guard setsockopt(descriptor, Int32(IPPROTO_UDP), LinuxSocketOption.udpEncapsulation, &type, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw SocketError(operation: "UDP_ENCAP on port \(localPort)", code: errno)
        }
    }

    /// Interface index the last datagram received came in on, for IPv6 link-local and multicast senders:
    /// an answer to such an address must name the interface (sin6_scope_id).
    public private(set) var lastScopeID: UInt32 = 0

    /// Sends one datagram; `scopeID` names the interface for an IPv6 link-local or multicast destination.
    public func send(_ bytes: [UInt8], to address: [UInt8], port: UInt16, scopeID: UInt32 = 0) throws {
        let sent = bytes.withUnsafeBytes { buffer in
            UDPSocket.withSockaddr(address: address, port: port, scopeID: scopeID) { pointer, length in
                sendto(descriptor, buffer.baseAddress, buffer.count, 0, pointer, length)
            }
        }
        guard sent >= 0 else { throw SocketError(operation: "sendto \(UDPSocket.format(address)):\(port)", code: errno) }
    }

    /// Reads one datagram if one is waiting.
    public func receive() -> (bytes: [UInt8], address: [UInt8], port: UInt16)? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let count = buffer.withUnsafeMutableBytes { raw in
            withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(descriptor, raw.baseAddress, raw.count, 0, $0, &length) }
            }
        }
        guard count >= 0 else { return nil }
        let family = storage.ss_family
        lastScopeID = 0
        let (address, port) = withUnsafePointer(to: &storage) { pointer -> ([UInt8], UInt16) in
            if family == sa_family_t(AF_INET6) {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                    lastScopeID = p.pointee.sin6_scope_id
                    return (withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) }, UInt16(bigEndian: p.pointee.sin6_port))
                }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                (withUnsafeBytes(of: p.pointee.sin_addr) { Array($0) }, UInt16(bigEndian: p.pointee.sin_port))
            }
        }
        return (Array(buffer.prefix(count)), address, port)
    }

    static func withSockaddr<R>(address: [UInt8], port: UInt16, scopeID: UInt32 = 0, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        if address.count == 16 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            sa.sin6_scope_id = scopeID
            withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: address) }
            return withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: address) }
        return withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    static func format(_ address: [UInt8]) -> String {
        address.count == 4 ? address.map(String.init).joined(separator: ".") : address.map { String($0, radix: 16) }.joined(separator: ":")
    }
}

/// Waits until one of the descriptors is readable or the timeout passes; returns the readable ones.
public func waitReadable(_ descriptors: [Int32], timeoutMilliseconds: Int32) -> [Int32] {
    var fds = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    let result = poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
    guard result > 0 else { return [] }
    return fds.filter { $0.revents & Int16(POLLIN) != 0 }.map(\.fd)
}

/// Seconds on the monotonic clock.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
