import ArgumentParser
import ConfigurationFiles
import Daemon
import Foundation
import IKEEndpoint
import IKEServices
import IKEv2
import LinuxIO
import Logging
import ProxyDemo
import Store
import TerminalAgent

#if canImport(Glibc)
    import Glibc
#endif

/// Set by SIGINT/SIGTERM; the run loop checks it between polls.
nonisolated(unsafe) var stopRequested: sig_atomic_t = 0
/// Set by SIGHUP: read the credentials of the configuration file again.
nonisolated(unsafe) var reloadRequested: sig_atomic_t = 0

@main
struct IKEProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ikeproxy",
        abstract: "A transparent IKEv2 key-exchange proxy.",
        subcommands: [
            DemoCommand.self, DaemonCommand.self, TerminalsCommand.self, PoliciesCommand.self, ProfilesCommand.self, SAsCommand.self,
            StatusCommand.self, AuditCommand.self, ReloadCommand.self, SealCommand.self, EndpointCommand.self, TerminalCommand.self,
            CertificateCheckCommand.self, TokenProbeCommand.self, HighAvailabilityCommand.self
        ]
    )
}

struct EndpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "endpoint",
        abstract: "Run the IKEv2 engine as an ordinary endpoint on UDP 500/4500 and print SA events as JSON lines."
    )

    @Option(name: .long, help: "Path of the JSON configuration file (see docs/endpoint.md).")
    var config: String

    @Option(name: .long, help: "Connection to initiate at start (repeatable).")
    var initiate: [String] = []

    @Flag(name: .long, help: "Include CHILD SA keys in the JSON events.")
    var showKeys = false

    @Option(
        name: .long,
        help: "Create a named pipe here that accepts commands: initiate, rekey-child, rekey-ike, delete-child, delete-ike, liveness, list.")
    var control: String?

    @OptionGroup var logging: LogFormatOption

    func run() throws {
        let runner: EndpointRunner
        // Lines are held and written every 20 ms at most (OutputPacing: a burst's lines in one write each).
        let standardError = LineWriter(descriptor: 2)
        let standardOutput = LineWriter(descriptor: 1)
        let logger = try logging.logger(component: "endpoint", sink: standardError.append)
        do {
            runner = try EndpointRunner(
                configurationPath: config, showKeys: showKeys, controlPath: control,
                log: { logger.line($0) }, emit: standardOutput.append,
                flushOutput: { writeOut(log: standardError, events: standardOutput) })
        } catch {
            standardError.flush()
            throw ValidationError("\(error)")
        }
        runner.run(initiate: initiate, shouldStop: stopOnSignal(), shouldReload: reloadOnSignal())
    }
}

/// `--log-format`: the processes' log lines as text (as always) or JSON lines for log collectors.
struct LogFormatOption: ParsableArguments {
    @Option(name: .long, help: "How log lines are written on stderr: text (a time stamp and the line) or json (one object per line).")
    var logFormat: String = "text"

    func format() throws -> LogFormat {
        guard let format = LogFormat(rawValue: logFormat) else {
            throw ValidationError("--log-format: '\(logFormat)' is not text or json")
        }
        return format
    }

    /// A swift-log logger whose lines go to `sink`, with this process's name as metadata.
    func logger(component: String, sink: @escaping @Sendable (String) -> Void) throws -> Logger {
        let format = try format()
        return Logger(label: "ikeproxy.\(component)") { _ in LineLogHandler(format: format, metadata: ["component": "\(component)"], sink: sink) }
    }
}

/// Writes out held log lines, then held events: whoever reads an event may look in the log for the lines that
/// led to it.
func writeOut(log: LineWriter, events: LineWriter) {
    log.flush()
    events.flush()
}

/// Arms SIGINT and SIGTERM and returns the check a run loop makes between polls.
func stopOnSignal() -> () -> Bool {
    signal(SIGINT) { _ in stopRequested = 1 }
    signal(SIGTERM) { _ in stopRequested = 1 }
    return { stopRequested != 0 }
}

/// Arms SIGHUP and returns the check a run loop makes between polls (true once per signal).
func reloadOnSignal() -> () -> Bool {
    signal(SIGHUP) { _ in reloadRequested = 1 }
    return {
        guard reloadRequested != 0 else { return false }
        reloadRequested = 0
        return true
    }
}

/// Log lines on stderr with a timestamp (made once a second: LogTimestamp).
@Sendable func log(_ line: String) { writeLine(LogTimestamp.shared.string() + " " + line) }

/// One line on stderr in one write, as FileHandle did, so that lines from several threads never interleave.
@Sendable func writeLine(_ line: String) {
    let text = line + "\n"
    var bytes = Array(text.utf8)
    // One write per line, as FileHandle did, so that lines from several threads never interleave.
    bytes.withUnsafeMutableBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(2, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { break }
            offset += written
        }
    }
}

struct TerminalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "terminal",
        abstract: "Run the terminal agent: receive SAs from the proxy over the key-delivery channel and run ESP on a TUN device."
    )

    @Option(name: .long, help: "Path of the JSON configuration file (see docs/terminal.md).")
    var config: String

    @Flag(name: .long, help: "Check the configuration file and say what the agent would run with; start nothing.")
    var check = false

    @OptionGroup var logging: LogFormatOption

    func run() throws {
        if check { return try checkConfiguration(config) { try TerminalConfiguration.load(path: $0).summary } }
        let runner: TerminalAgentRunner
        // Each line written at once, whole, as the agent always did.
        let logger = try logging.logger(component: "terminal", sink: writeLine)
        do {
            runner = try TerminalAgentRunner(configuration: try TerminalConfiguration.load(path: config), log: { logger.line($0) })
        } catch {
            throw ValidationError("\(error)")
        }
        runner.run(shouldStop: stopOnSignal())
    }
}

/// `--check`: the file loads (its summary printed, exit 0) or not (the reason, exit 2); nothing starts.
func checkConfiguration(_ path: String, summary: (String) throws -> [String]) throws {
    do {
        let lines = try summary(path)
        print("\(path): valid")
        lines.forEach { print("  " + $0) }
    } catch {
        log("\(path): not valid: \(error)")
        throw ExitCode(2)
    }
}

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the whole design in one process on virtual links (no root, no configuration), narrated step by step."
    )

    @Flag(name: .long, help: "Also print what the proxy and the terminals log.")
    var verbose = false

    func run() throws {
        let ok = DemoRun.run(verbose: verbose) { print($0) }
        if !ok { throw ExitCode.failure }
    }
}

struct DaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Run the proxy in the wire: bridge two interfaces that hold no IP address, do IKE for the terminals behind it."
    )

    @Option(name: .long, help: "Path of the JSON configuration file (see docs/daemon.md).")
    var config: String

    @Flag(name: .long, help: "Include CHILD SA keys in the JSON events on stdout.")
    var showKeys = false

    @Flag(name: .long, help: "Check the configuration file and say what the daemon would run with; start nothing.")
    var check = false

    @OptionGroup var logging: LogFormatOption

    func run() throws {
        if check { return try checkConfiguration(config) { try DaemonConfiguration.load(path: $0).summary } }
        let runner: DaemonRunner
        // The loop's lines (it runs on the main thread) are held and written at the end of each of its turns,
        // and on the way out whatever happens: a burst's lines in one write each. Other threads' lines (the
        // management API, the audit) are written at once, as before.
        let standardError = LineWriter(descriptor: 2)
        let standardOutput = LineWriter(descriptor: 1)
        defer { writeOut(log: standardError, events: standardOutput) }
        // The loop's thread, known without a system call (Foundation's isMainThread makes two per line here).
        let loopThread = pthread_self()
        @Sendable func hold(_ line: String, in writer: LineWriter) {
            writer.append(line)
            if pthread_equal(pthread_self(), loopThread) == 0 { writer.flush() }
        }
        let logger = try logging.logger(component: "daemon") { hold($0, in: standardError) }
        do {
            runner = try DaemonRunner(
                configuration: try DaemonConfiguration.load(path: config), showKeys: showKeys,
                log: { logger.line($0) }, emit: { hold($0, in: standardOutput) },
                flushOutput: { writeOut(log: standardError, events: standardOutput) })
        } catch {
            logger.error("cannot start: \(error)")
            throw ExitCode(2)
        }
        runner.configurationPath = config
        runner.run(shouldStop: stopOnSignal(), shouldReload: reloadOnSignal())
    }
}

struct TerminalsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "terminals",
        abstract: "List the terminals a running daemon has discovered or been given: registered, unenrolled or pending approval.",
        subcommands: [TerminalsListCommand.self, ApproveTerminalCommand.self, AddTerminalCommand.self, RemoveTerminalCommand.self],
        defaultSubcommand: TerminalsListCommand.self
    )
}

struct TerminalsListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the terminals (over the API with --api, else the local control socket).")

    @Option(name: .long, help: "The daemon's control socket (control_socket in its configuration), used without --api.")
    var control = "/run/ikeproxy.sock"

    @OptionGroup var options: APIOptions

    var json: Bool { options.json }

    func run() throws {
        var reply: String
        if options.isGiven {
            let answer = try options.call { try await $0.listTerminals().ok.body.json }
            if json { return }
            reply = String(decoding: (try? JSONSerialization.data(withJSONObject: answer)) ?? Data(), as: UTF8.self)
        } else {
            do { reply = try ControlSocket.query(path: control, request: "terminals") } catch {
                log("\(error)")
                throw ExitCode(2)
            }
        }
        if json {
            print(reply.trimmingCharacters(in: .whitespacesAndNewlines))
            return
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any],
            let rows = object["terminals"] as? [[String: Any]]
        else {
            log("the daemon answered something unexpected: \(reply.prefix(200))")
            throw ExitCode(2)
        }
        func text(_ value: Any?) -> String {
            switch value {
            case let list as [String]: return list.isEmpty ? "-" : list.joined(separator: ",")
            case let number as NSNumber: return number.stringValue
            case let string as String: return string
            default: return "-"
            }
        }
        let header = ["MAC", "IPV4", "IPV6", "STATUS", "TERMINAL", "SAS", "PORT", "LEARNT FROM", "SEEN"]
        let table =
            [header]
            + rows.map { row in
                [
                    text(row["mac"]), text(row["ipv4"]), text(row["ipv6"]), text(row["status"]), text(row["terminal_id"]),
                    text(row["sas"]) + ((row["key_delivery_unacknowledged"] as? NSNumber).map { $0.intValue > 0 ? " (\($0) unacked)" : "" } ?? ""),
                    text(row["port"]),
                    text(row["learnt_from"]), (row["last_seen_seconds_ago"] as? NSNumber).map { $0.stringValue + "s ago" } ?? "-"
                ]
            }
        printTable(table[0], Array(table.dropFirst()))
        if rows.isEmpty { print("(no terminal seen yet)") }
    }
}

/// The daemon runs this in a child process to see whether its token is present without waiting on it.
struct TokenProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token-probe",
        abstract: "Open a PKCS#11 token afresh and find the sealing key (the daemon's presence check); the PIN is read on stdin. Exit 0: present.",
        shouldDisplay: false
    )

    @Option(name: .long, help: "The PKCS#11 module (shared library).")
    var module: String
    @Option(name: .long, help: "The token's label.")
    var token: String
    @Option(name: .long, help: "The sealing key's label.")
    var keyLabel: String = "ikeproxy-sealing-key"

    func run() throws {
        let pin = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .newlines)
        let sealer = TokenSealer(modulePath: module, tokenLabel: token, pin: pin, keyLabel: keyLabel)
        guard sealer.isOpen else {
            print(sealer.lastError ?? "the token is not present")
            throw ExitCode(3)
        }
        print("present")
    }
}

struct SealCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seal",
        abstract: "Seal a secret with the daemon's token (or key file) for its configuration: reads it on stdin, prints the box in base64."
    )

    @Option(name: .long, help: "The daemon's configuration file (its store names the token or key file).")
    var config: String

    @Option(
        name: .long,
        help:
            "What the secret is for: profile:NAME (a PSK, as text), profile-ppk:NAME (a post-quantum preshared key, as text), terminal:ID (an enrollment key, in hexadecimal), terminal-key:ID (a terminal's PEM private key) or management:tls-key (the API's PEM private key)."
    )
    var context: String

    func run() throws {
        let configuration: DaemonConfiguration
        let sealer: Sealer
        do {
            configuration = try DaemonConfiguration.load(path: config)
            guard let made = try DaemonRunner.makeSealer(configuration) else {
                throw ValidationError("the configuration has no store, so nothing to seal with")
            }
            sealer = made
        } catch let error as ValidationError { throw error } catch { throw ValidationError("\(error)") }
        let input = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .newlines)
        guard let sealingContext = SealingContext(operatorText: context) else {
            throw ValidationError("--context is profile:NAME, profile-ppk:NAME, terminal:ID, terminal-key:ID or management:tls-key")
        }
        let secret: [UInt8]
        switch sealingContext {
        case .terminalPrivateKey:
            guard input.contains("PRIVATE KEY-----") else { throw ValidationError("a terminal's certificate key is a PEM private key") }
            secret = Array((input + "\n").utf8)
        case .terminalEnrollmentKey:
            guard let bytes = [UInt8](hexString: input.trimmingCharacters(in: .whitespaces)), bytes.count >= 16 else {
                throw ValidationError("an enrollment key is at least 16 octets of hexadecimal")
            }
            secret = bytes
        case .profilePreSharedKey:
            guard input.utf8.count >= SharedConnectionText.minimumPreSharedKeyOctets else {
                throw ValidationError("the pre-shared key is shorter than \(SharedConnectionText.minimumPreSharedKeyOctets) octets")
            }
            secret = Array(input.utf8)
        case .profilePostQuantumPresharedKey:
            guard input.utf8.count >= SharedConnectionText.minimumPostQuantumPresharedKeyOctets else {
                throw ValidationError(
                    "the post-quantum preshared key is shorter than \(SharedConnectionText.minimumPostQuantumPresharedKeyOctets) octets (RFC 8784 asks for 256 bits)"
                )
            }
            secret = Array(input.utf8)
        case .managementTLSKey:
            guard input.contains("PRIVATE KEY-----") else { throw ValidationError("the management API's TLS key is a PEM private key") }
            secret = Array((input + "\n").utf8)
        case .savedIKESA, .dataKey:
            throw ValidationError("--context is profile:NAME, profile-ppk:NAME, terminal:ID, terminal-key:ID or management:tls-key")
        }
        _ = configuration
        print(Data(try sealer.seal(secret, context: sealingContext)).base64EncodedString())
    }
}
