import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Lines for a file descriptor (stdout, stderr), kept until `flush` writes them with one `write`: the
/// endpoint flushes every 20 ms at most (OutputPacing), so that a burst's log lines and events cost one
/// system call rather than one each (issue 21). Lines from several threads stay whole.
public final class LineWriter: Sendable {
    let descriptor: Int32
    private let pending = Mutex<[UInt8]>([])
    static let limit = 65_536

    public init(descriptor: Int32) { self.descriptor = descriptor }

    /// Keeps one line (a newline is added) until the next flush; writes at once beyond 64 KiB held.
    public func append(_ line: String) {
        let held = pending.withLock { bytes in
            bytes.append(contentsOf: line.utf8)
            bytes.append(0x0a)
            return bytes.count
        }
        if held >= Self.limit { flush() }
    }

    /// Writes what is held.
    public func flush() {
        // Taken out whole (no copy of the octets, none made when nothing is held): the daemon calls this every
        // turn of its loop, most of them with nothing to write.
        let bytes = pending.withLock { held -> [UInt8] in
            guard !held.isEmpty else { return [] }
            var taken: [UInt8] = []
            swap(&taken, &held)
            return taken
        }
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                offset += written
            }
        }
    }
}
