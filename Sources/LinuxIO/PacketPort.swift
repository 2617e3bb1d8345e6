import CLinuxIO

#if canImport(Glibc)
    import Glibc
#endif

/// Why a bridge port could not be opened, in words an operator can act on.
public enum PacketPortError: Error, CustomStringConvertible {
    case noSuchInterface(String)
    case notPermitted(String)
    case failed(String, SocketError)

    public var description: String {
        switch self {
        case .noSuchInterface(let name): return "interface '\(name)' does not exist (check `ip link`)"
        case .notPermitted(let name):
            return "not permitted to open a raw socket on '\(name)': the daemon needs root or CAP_NET_RAW and CAP_NET_ADMIN"
        case .failed(let name, let error): return "interface '\(name)': \(error)"
        }
    }
}

/// One port of the bump in the wire: an AF_PACKET socket on an interface that holds no IP address,
/// seeing every frame (promiscuous) and sending frames as they are. Frames move in batches
/// (recvmmsg/sendmmsg); VLAN tags the kernel stripped on receive are put back.
public final class PacketPort {
    public let name: String
    public let descriptor: Int32
    public let index: Int32
    public let mtu: Int
    public let mac: [UInt8]
    private let batch: OpaquePointer

    /// Opens the port and brings the interface up. `batchSize` frames are read per call.
    public init(interface name: String, batchSize: Int = 64, receiveBuffer: Int32 = 8 << 20) throws(PacketPortError) {
        self.name = name
        var info = ikp_interface_info()
        let found = ikp_interface_info_get(name, &info)
        guard found == 0 else {
            if -found == ENODEV { throw .noSuchInterface(name) }
            throw .failed(name, SocketError(operation: "interface lookup", code: -found))
        }
        index = info.index
        mtu = Int(info.mtu)
        mac = withUnsafeBytes(of: info.mac) { Array($0) }
        let up = ikp_interface_set_up(name)
        guard up == 0 else {
            if -up == EPERM || -up == EACCES { throw .notPermitted(name) }
            throw .failed(name, SocketError(operation: "set link up", code: -up))
        }
        let fd = ikp_packet_open(info.index, receiveBuffer)
        guard fd >= 0 else {
            if -fd == EPERM || -fd == EACCES { throw .notPermitted(name) }
            throw .failed(name, SocketError(operation: "AF_PACKET socket", code: -fd))
        }
        descriptor = fd
        // Room for a GSO super-frame (up to 64 KiB of IP) with an Ethernet header and two VLAN tags.
        guard let created = ikp_frame_batch_create(Int32(batchSize), Int32(max(mtu, 65535) + 22)) else {
            close(fd)
            throw .failed(name, SocketError(operation: "allocating receive buffers", code: ENOMEM))
        }
        batch = created
    }

    deinit {
        ikp_frame_batch_destroy(batch)
        close(descriptor)
    }

    /// Reads what is waiting (at most one batch) and hands each frame to `body` with its offload header
    /// (pass it back when forwarding the frame), both valid only until the next receive. Returns the
    /// number of frames, or throws on a socket error.
    @discardableResult
    public func receiveBatch(_ body: (_ frame: UnsafeBufferPointer<UInt8>, _ offload: UnsafePointer<UInt8>?, _ truncated: Bool) -> Void) throws -> Int
    {
        let count = ikp_frame_batch_receive(descriptor, batch)
        guard count >= 0 else { throw SocketError(operation: "recvmmsg on \(name)", code: -count) }
        for i in 0..<count {
            var length: Int32 = 0
            var truncated: Int32 = 0
            var offload: UnsafePointer<UInt8>?
            guard let start = ikp_frame_batch_frame(batch, i, &length, &truncated, &offload) else { continue }
            body(UnsafeBufferPointer(start: start, count: Int(length)), offload, truncated != 0)
        }
        return Int(count)
    }

    /// Sends frames given as pointers (e.g. into a receive batch of another port), each with its offload
    /// header or nil. Returns how many the kernel took and how many it refused.
    public func send(frames: [UnsafePointer<UInt8>?], lengths: [Int32], offloads: [UnsafePointer<UInt8>?]? = nil) -> (sent: Int, refused: Int) {
        guard !frames.isEmpty else { return (0, 0) }
        var refused: Int32 = 0
        let sent = frames.withUnsafeBufferPointer { f in
            lengths.withUnsafeBufferPointer { l in
                if let offloads {
                    return offloads.withUnsafeBufferPointer { o in
                        ikp_packet_send_batch(descriptor, f.baseAddress, l.baseAddress, o.baseAddress, Int32(f.count), &refused)
                    }
                }
                return ikp_packet_send_batch(descriptor, f.baseAddress, l.baseAddress, nil, Int32(f.count), &refused)
            }
        }
        return sent < 0 ? (0, frames.count) : (Int(sent), Int(refused))
    }

    /// Sends one frame the daemon built (complete, no offload).
    public func send(_ frame: [UInt8]) -> Bool {
        frame.withUnsafeBufferPointer { buffer in
            var pointer: UnsafePointer<UInt8>? = buffer.baseAddress
            var length = Int32(buffer.count)
            var refused: Int32 = 0
            return ikp_packet_send_batch(descriptor, &pointer, &length, nil, 1, &refused) == 1
        }
    }
}
