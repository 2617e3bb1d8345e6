import ArgumentParser
import Foundation
import IKEEndpoint
import TerminalAgent
import ProxyDemo

#if canImport(Glibc)
import Glibc
#endif

/// Set by SIGINT/SIGTERM; the run loop checks it between polls.
nonisolated(unsafe) var stopRequested: sig_atomic_t = 0

@main
struct IKEProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ikeproxy",
        abstract: "A transparent IKEv2 key-exchange proxy.",
        subcommands: [DemoCommand.self, EndpointCommand.self, TerminalCommand.self]
    )
}

struct EndpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "endpoint",
        abstract: "Run the IKEv2 engine as an ordinary endpoint on UDP 500/4500 and print SA events as JSON lines."
    )

    @Option(name: .long, help: "Path of the JSON configuration file (see docs/endpoint-configuration.md).")
    var config: String

    @Option(name: .long, help: "Connection to initiate at start (repeatable).")
    var initiate: [String] = []

    @Flag(name: .long, help: "Include CHILD SA keys in the JSON events.")
    var showKeys = false

    @Option(name: .long, help: "Create a named pipe here that accepts commands: initiate, rekey-child, rekey-ike, delete-child, delete-ike, liveness, list.")
    var control: String?

    func run() throws {
        let runner: EndpointRunner
        do {
            runner = try EndpointRunner(configurationPath: config, showKeys: showKeys, controlPath: control, log: log,
                                        emit: { line in FileHandle.standardOutput.write(Data((line + "\n").utf8)) })
        } catch {
            throw ValidationError("\(error)")
        }
        signal(SIGINT) { _ in stopRequested = 1 }
        signal(SIGTERM) { _ in stopRequested = 1 }
        runner.run(initiate: initiate, shouldStop: { stopRequested != 0 })
    }
}

/// Log lines on stderr with a timestamp.
@Sendable func log(_ line: String) {
    let stamp = ISO8601DateFormatter().string(from: Date())
    FileHandle.standardError.write(Data("\(stamp) \(line)\n".utf8))
}

struct TerminalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "terminal",
        abstract: "Run the terminal agent: receive SAs from the proxy over the key-delivery channel and run ESP on a TUN device."
    )

    @Option(name: .long, help: "Path of the JSON configuration file (see docs/terminal.md).")
    var config: String

    func run() throws {
        let runner: TerminalAgentRunner
        do {
            runner = try TerminalAgentRunner(configuration: try TerminalConfiguration.load(path: config), log: log)
        } catch {
            throw ValidationError("\(error)")
        }
        signal(SIGINT) { _ in stopRequested = 1 }
        signal(SIGTERM) { _ in stopRequested = 1 }
        runner.run(shouldStop: { stopRequested != 0 })
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
