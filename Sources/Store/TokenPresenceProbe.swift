import Foundation

/// Asks a child process whether the PKCS#11 token is there, so that a slow token never stalls the
/// daemon's loop. Only opening the token afresh (C_Initialize scans the slots) sees a token that was
/// taken out and put back, and this process cannot do that without tearing down the session its
/// sealer works through: the child (`ikeproxy token-probe`) has a PKCS#11 library state of its own.
/// The PIN reaches it through a pipe, never its command line.
public final class TokenPresenceProbe {
    public enum Outcome: Equatable, Sendable {
        case present
        case absent(String)
    }

    public let executable: String
    public let modulePath: String
    public let tokenLabel: String
    public let keyLabel: String
    private let pin: String
    /// Seconds after which a probe that has not answered is killed and the token counted absent.
    public let timeout: Double
    private var child: pid_t = 0
    private var output: Int32 = -1
    private var startedAt = 0.0
    private var collected: [UInt8] = []

    public init(executable: String, modulePath: String, tokenLabel: String, keyLabel: String, pin: String, timeout: Double = 30) {
        self.executable = executable
        self.modulePath = modulePath
        self.tokenLabel = tokenLabel
        self.keyLabel = keyLabel
        self.pin = pin
        self.timeout = timeout
    }

    /// This program's own executable, to run as the probe.
    public static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    public var isRunning: Bool { child != 0 }

    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts a probe unless one is still running. The child gets a process group of its own, so that a
    /// hung probe is killed with whatever it started.
    public func start(now: Double) throws(StartError) {
        guard child == 0 else { return }
        var input: [Int32] = [-1, -1]
        var out: [Int32] = [-1, -1]
        guard pipe(&input) == 0 else { throw StartError(description: "pipe: \(String(cString: strerror(errno)))") }
        guard pipe(&out) == 0 else {
            close(input[0])
            close(input[1])
            throw StartError(description: "pipe: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        for descriptor in input + out { posix_spawn_file_actions_addclose(&actions, descriptor) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        let arguments = [executable, "token-probe", "--module", modulePath, "--token", tokenLabel, "--key-label", keyLabel]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, &argv, environ)
        close(input[0])
        close(out[1])
        guard result == 0 else {
            close(input[1])
            close(out[0])
            throw StartError(description: "cannot run \(executable): \(String(cString: strerror(result)))")
        }
        // The PIN through the pipe, then end of input; the pipe holds far more than a PIN. A child that is
        // already gone must give EPIPE here, not end this process: SIGPIPE is ignored (as daemons do).
        signal(SIGPIPE, SIG_IGN)
        let line = Array((pin + "\n").utf8)
        _ = line.withUnsafeBytes { write(input[1], $0.baseAddress, $0.count) }
        close(input[1])
        _ = fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK)
        child = pid
        output = out[0]
        startedAt = now
        collected = []
    }

    /// The answer of the probe that finished since the last call; nil while it runs (or none was started).
    /// Never waits: a probe that outlives `timeout` is killed, and the token counts as absent.
    public func poll(now: Double) -> Outcome? {
        guard child != 0 else { return nil }
        drain()
        var status: Int32 = 0
        let done = waitpid(child, &status, WNOHANG)
        if done == 0 {
            guard now - startedAt >= timeout else { return nil }
            kill(-child, SIGKILL)
            _ = waitpid(child, &status, 0)
            finish()
            return .absent("the token did not answer within \(Int(timeout)) s")
        }
        drain()
        let text = String(decoding: collected, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        finish()
        // Exited normally (low seven bits zero) with status 0: present.
        let exitedCleanly = done == -1 ? false : (status & 0x7f) == 0 && (status >> 8) & 0xff == 0
        return exitedCleanly ? .present : .absent(text.isEmpty ? "the probe failed (wait status \(status))" : text)
    }

    /// Reads what the child wrote so far, without waiting.
    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 512)
        while collected.count < 4096 {
            let count = buffer.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            guard count > 0 else { return }
            collected += buffer.prefix(count)
        }
    }

    private func finish() {
        if output >= 0 { close(output) }
        child = 0
        output = -1
    }

    /// Stops a running probe (the daemon is stopping).
    public func cancel() {
        guard child != 0 else { return }
        kill(-child, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(child, &status, 0)
        finish()
    }
}
