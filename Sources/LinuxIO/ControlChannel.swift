#if canImport(Glibc)
    import Glibc
#endif

/// A named pipe that operators and tests write one-line commands into.
public final class ControlChannel {
    public let descriptor: Int32
    public let path: String
    private var pending: [UInt8] = []

    public init(path: String) throws {
        self.path = path
        unlink(path)
        guard mkfifo(path, 0o600) == 0 else { throw SocketError(operation: "mkfifo \(path)", code: errno) }
        // Opened read-write so that writers closing it never produce end-of-file.
        descriptor = open(path, O_RDWR | O_NONBLOCK)
        guard descriptor >= 0 else { throw SocketError(operation: "open \(path)", code: errno) }
    }

    deinit {
        close(descriptor)
        unlink(path)
    }

    /// Complete lines read so far.
    public func readLines() -> [String] {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = read(descriptor, &buffer, buffer.count)
        if count > 0 { pending += buffer.prefix(count) }
        var lines: [String] = []
        while let newline = pending.firstIndex(of: 10) {
            lines.append(String(decoding: pending[..<newline], as: UTF8.self))
            pending.removeSubrange(...newline)
        }
        return lines
    }
}
