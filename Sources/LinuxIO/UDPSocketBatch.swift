import CLinuxIO

#if canImport(Glibc)
    import Glibc
#endif

/// One datagram read from a UDP socket: its octets, the sender, and for an IPv6 link-local or multicast
/// sender the interface it came in on (an answer must name it).
public struct ReceivedDatagram: Sendable {
    public var bytes: [UInt8]
    public var address: [UInt8]
    public var port: UInt16
    public var scopeID: UInt32
}

/// One datagram to send from a UDP socket.
public struct OutgoingDatagram: Sendable {
    public var bytes: [UInt8]
    public var address: [UInt8]
    public var port: UInt16
    public var scopeID: UInt32
    public init(bytes: [UInt8], address: [UInt8], port: UInt16, scopeID: UInt32 = 0) {
        self.bytes = bytes
        self.address = address
        self.port = port
        self.scopeID = scopeID
    }
}

/// Buffers for `recvmmsg`, made once per socket: slots of the largest UDP payload and the senders.
final class ReceiveSlots {
    static let slotSize = 65_536
    let count: Int
    let buffer: UnsafeMutablePointer<UInt8>
    let names: UnsafeMutablePointer<sockaddr_storage>
    let lengths: UnsafeMutablePointer<Int32>

    init(count: Int) {
        self.count = count
        buffer = .allocate(capacity: count * Self.slotSize)
        names = .allocate(capacity: count)
        lengths = .allocate(capacity: count)
    }

    deinit {
        buffer.deallocate()
        names.deallocate()
        lengths.deallocate()
    }
}

extension UDPSocket {
    /// Asks the kernel for a receive buffer of `bytes`, so that a burst waits in the socket instead of being
    /// dropped: SO_RCVBUFFORCE (allowed to root, beyond net.core.rmem_max), else SO_RCVBUF (capped at
    /// rmem_max). Returns what the kernel granted, as it reports it (twice the request: it counts its own
    /// bookkeeping).
    @discardableResult
    public func setReceiveBuffer(_ bytes: Int) -> Int {
        var size = Int32(clamping: bytes)
        if setsockopt(descriptor, SOL_SOCKET, LinuxSocketOption.receiveBufferForce, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        return receiveBufferSize
    }

    /// The receive buffer the kernel gives the socket now (SO_RCVBUF).
    public var receiveBufferSize: Int {
        var size: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, &length)
        return Int(size)
    }

    /// Reads up to `limit` (at most 64) waiting datagrams with one `recvmmsg` call; empty when none waits.
    public func receiveBatch(limit: Int = 32) -> [ReceivedDatagram] {
        let slots = receiveSlots(min(limit, 64))
        let received = ikp_udp_receive_batch(descriptor, slots.buffer, Int32(ReceiveSlots.slotSize), Int32(slots.count), slots.names, slots.lengths)
        guard received > 0 else { return [] }
        var datagrams: [ReceivedDatagram] = []
        datagrams.reserveCapacity(Int(received))
        for index in 0..<Int(received) {
            let bytes = Array(UnsafeBufferPointer(start: slots.buffer + index * ReceiveSlots.slotSize, count: Int(slots.lengths[index])))
            let (address, port, scopeID) = Self.sender(slots.names + index)
            datagrams.append(ReceivedDatagram(bytes: bytes, address: address, port: port, scopeID: scopeID))
        }
        return datagrams
    }

    /// Sends the datagrams with as few `sendmmsg` calls as the kernel takes; returns each one it refused with
    /// the error (the others still go).
    public func sendBatch(_ datagrams: [OutgoingDatagram]) -> [(OutgoingDatagram, SocketError)] {
        guard !datagrams.isEmpty else { return [] }
        let count = datagrams.count
        let payloads = UnsafeMutablePointer<UnsafePointer<UInt8>?>.allocate(capacity: count)
        let lengths = UnsafeMutablePointer<Int32>.allocate(capacity: count)
        let names = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: count)
        let nameLengths = UnsafeMutablePointer<Int32>.allocate(capacity: count)
        let refusedIndices = UnsafeMutablePointer<Int32>.allocate(capacity: count)
        let refusedErrors = UnsafeMutablePointer<Int32>.allocate(capacity: count)
        // The payloads are copied into one block so that their addresses stay valid through the call.
        let total = datagrams.reduce(0) { $0 + $1.bytes.count }
        let block = UnsafeMutablePointer<UInt8>.allocate(capacity: max(total, 1))
        defer {
            payloads.deallocate()
            lengths.deallocate()
            names.deallocate()
            nameLengths.deallocate()
            refusedIndices.deallocate()
            refusedErrors.deallocate()
            block.deallocate()
        }
        var offset = 0
        for (index, datagram) in datagrams.enumerated() {
            datagram.bytes.withUnsafeBufferPointer { source in
                if let base = source.baseAddress { (block + offset).update(from: base, count: source.count) }
            }
            payloads[index] = UnsafePointer(block + offset)
            lengths[index] = Int32(datagram.bytes.count)
            offset += datagram.bytes.count
            names[index] = sockaddr_storage()
            nameLengths[index] = Int32(
                UDPSocket.withSockaddr(address: datagram.address, port: datagram.port, scopeID: datagram.scopeID) { pointer, length in
                    UnsafeMutableRawPointer(names + index).copyMemory(from: pointer, byteCount: Int(length))
                    return length
                })
        }
        var refused: Int32 = 0
        _ = ikp_udp_send_batch(descriptor, payloads, lengths, names, nameLengths, Int32(count), &refused, refusedIndices, refusedErrors)
        return (0..<Int(refused)).map { k in
            let datagram = datagrams[Int(refusedIndices[k])]
            return (datagram, SocketError(operation: "sendmmsg \(UDPSocket.format(datagram.address)):\(datagram.port)", code: refusedErrors[k]))
        }
    }

    /// The sender of a received datagram, from its sockaddr.
    static func sender(_ storage: UnsafeMutablePointer<sockaddr_storage>) -> (address: [UInt8], port: UInt16, scopeID: UInt32) {
        if storage.pointee.ss_family == sa_family_t(AF_INET6) {
            return storage.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                (withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) }, UInt16(bigEndian: p.pointee.sin6_port), p.pointee.sin6_scope_id)
            }
        }
        return storage.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
            (withUnsafeBytes(of: p.pointee.sin_addr) { Array($0) }, UInt16(bigEndian: p.pointee.sin_port), 0)
        }
    }
}
