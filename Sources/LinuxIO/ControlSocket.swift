#if canImport(Glibc)
    import Glibc
#endif

/// A Unix stream socket on which a running daemon answers one-line queries (`ikeproxy terminals` asks
/// through it): one request line in, one reply out, then the connection closes.
public final class ControlSocket {
    public let descriptor: Int32
    public let path: String

    public init(path: String) throws {
        self.path = path
        unlink(path)
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SocketError(operation: "socket(AF_UNIX)", code: errno) }
        let bound = Self.withAddress(path) { bind(descriptor, $0, $1) }
        guard bound == 0, listen(descriptor, 16) == 0 else {
            let code = errno
            close(descriptor)
            throw SocketError(operation: "bind \(path)", code: code)
        }
        chmod(path, 0o600)
    }

    deinit {
        close(descriptor)
        unlink(path)
    }

    static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8.prefix(107))
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// Answers every waiting client: reads its request line (briefly blocking) and writes `answer(request)`.
    public func serve(_ answer: (String) -> String) {
        while true {
            let client = accept(descriptor, nil, nil)
            guard client >= 0 else { return }
            defer { close(client) }
            var timeout = timeval(tv_sec: 1, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let flags = fcntl(client, F_GETFL)
            _ = fcntl(client, F_SETFL, flags & ~O_NONBLOCK)
            var request: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 1024)
            while request.count < 4096, !request.contains(10) {
                let count = read(client, &buffer, buffer.count)
                if count <= 0 { break }
                request += buffer.prefix(count)
            }
            let line = String(decoding: request.prefix { $0 != 10 }, as: UTF8.self)
            let reply = Array((answer(line) + "\n").utf8)
            var written = 0
            while written < reply.count {
                let n = reply[written...].withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                written += n
            }
        }
    }

    /// Client side: sends `request` to the daemon at `path` and returns its whole reply.
    public static func query(path: String, request: String) throws -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError(operation: "socket(AF_UNIX)", code: errno) }
        defer { close(fd) }
        guard withAddress(path, { connect(fd, $0, $1) }) == 0 else {
            throw SocketError(operation: "connect to the daemon's control socket \(path) (is `ikeproxy daemon` running?)", code: errno)
        }
        let bytes = Array((request + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count <= 0 { break }
            reply += buffer.prefix(count)
        }
        return String(decoding: reply, as: UTF8.self)
    }
}
