import ArgumentParser
import Foundation
import LinuxIO

/// `ikeproxy ha`: a daemon of an active/standby pair, over its local control socket (docs/high-availability.md).
struct HighAvailabilityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ha", abstract: "The role of a daemon of an active/standby pair, and a planned switchover.",
        subcommands: [Status.self, Switchover.self], defaultSubcommand: Status.self)

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "This node's role, the lease's holder and age.")
        @Option(name: .long, help: "The daemon's control socket (control_socket in its configuration).") var control = "/run/ikeproxy.sock"
        @Flag(name: .long, help: "Print the daemon's JSON answer as it is.") var json = false
        func run() throws {
            let reply = try HighAvailabilityCommand.ask(control, "status")
            guard let object = try? JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any] else {
                log("the daemon answered something unexpected: \(reply.prefix(200))")
                throw ExitCode(2)
            }
            guard let ha = object["high_availability"] as? [String: Any] else {
                log("this daemon is not one of a pair (no high_availability in its configuration)")
                throw ExitCode(1)
            }
            if json {
                let data = try JSONSerialization.data(withJSONObject: ha, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            let age = (ha["lease_age_seconds"] as? Double).map { String(format: "%.1f s", $0) } ?? "-"
            print(
                "node \(ha["node"] as? String ?? "-"): \(ha["role"] as? String ?? "-"); lease held by \(ha["lease_holder"] as? String ?? "no one") "
                    + "for \(age) (fencing \((ha["fencing"] as? NSNumber)?.stringValue ?? "-")); \((ha["takeovers"] as? NSNumber)?.stringValue ?? "0") takeover(s) by this node"
            )
        }
    }

    struct Switchover: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "switchover", abstract: "Hand the active role to the other node: this one releases the lease and goes standby.")
        @Option(name: .long, help: "The active daemon's control socket.") var control = "/run/ikeproxy.sock"
        func run() throws {
            let reply = try HighAvailabilityCommand.ask(control, "switchover")
            let object = (try? JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any]) ?? [:]
            if let error = object["error"] as? String {
                log(error)
                throw ExitCode(1)
            }
            print(object["switchover"] as? String ?? reply)
        }
    }

    static func ask(_ control: String, _ request: String) throws -> String {
        do { return try ControlSocket.query(path: control, request: request) } catch {
            log("\(error)")
            throw ExitCode(2)
        }
    }
}
