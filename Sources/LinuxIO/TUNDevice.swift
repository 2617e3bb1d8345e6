import CLinuxIO

#if canImport(Glibc)
    import Glibc
#endif

/// A layer-3 TUN device (no packet-information header): each read is one IP packet the host routed into
/// it, each write one IP packet delivered to the host's stack.
public final class TUNDevice {
    public let descriptor: Int32
    public let name: String

    public init(name: String) throws {
        var actual = [CChar](repeating: 0, count: 16)
        let result = ikp_tun_open(name, &actual)
        guard result >= 0 else { throw SocketError(operation: "open TUN device \(name)", code: -result) }
        descriptor = result
        self.name = String(decoding: actual.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { close(descriptor) }

    /// The next packet if one is waiting.
    public func read() -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        buffer.removeLast(buffer.count - count)
        return buffer
    }

    public func write(_ packet: [UInt8]) throws {
        let written = packet.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        guard written == packet.count else { throw SocketError(operation: "write to \(name)", code: errno) }
    }
}
