import ArgumentParser
import Foundation
import Management
import ManagementAPI

/// Where the management API is and who is asking; every API command takes these.
struct APIOptions: ParsableArguments {
    @Option(name: .long, help: "The management API, e.g. https://10.99.0.1:8443 (or IKEPROXY_API).")
    var api: String?

    @Option(name: .long, help: "File holding the administrator's bearer token (or IKEPROXY_TOKEN_FILE).")
    var tokenFile: String?

    @Option(name: .long, help: "PEM certificate to trust for the API (its own or its CA's; or IKEPROXY_CA_FILE).")
    var caFile: String?

    @Option(name: .long, help: "The administrator's client certificate, PEM (or IKEPROXY_CERT_FILE); with --key-file.")
    var certFile: String?

    @Option(name: .long, help: "The client certificate's private key, PEM (or IKEPROXY_KEY_FILE).")
    var keyFile: String?

    @Flag(name: .long, help: "Print the API's JSON answer instead of a table.")
    var json = false

    var isGiven: Bool { api != nil || ProcessInfo.processInfo.environment["IKEPROXY_API"] != nil }

    func client() throws -> ManagementClient {
        let environment = ProcessInfo.processInfo.environment
        guard let url = api ?? environment["IKEPROXY_API"] else { throw ValidationError("--api (or IKEPROXY_API) names the management API") }
        var clientCertificate: (String, String)?
        switch (certFile ?? environment["IKEPROXY_CERT_FILE"], keyFile ?? environment["IKEPROXY_KEY_FILE"]) {
        case (let certificate?, let key?): clientCertificate = (certificate, key)
        case (nil, nil): break
        default: throw ValidationError("--cert-file and --key-file go together (or IKEPROXY_CERT_FILE and IKEPROXY_KEY_FILE)")
        }
        var token: String?
        if let path = tokenFile ?? environment["IKEPROXY_TOKEN_FILE"] {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("--token-file \(path) is not a readable file")
            }
            token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard token != nil || clientCertificate != nil else {
            throw ValidationError(
                "give a client certificate (--cert-file and --key-file) or a bearer token (--token-file), "
                    + "or IKEPROXY_CERT_FILE/IKEPROXY_KEY_FILE or IKEPROXY_TOKEN_FILE")
        }
        return ManagementClient(baseURL: url, token: token, caFile: caFile ?? environment["IKEPROXY_CA_FILE"], clientCertificate: clientCertificate)
    }

    /// Runs one operation of the client generated from docs/openapi.yaml and returns its answer as JSON for the tables
    /// (printed as it is with --json). A refusal becomes its message and exit status 1; a daemon that cannot be reached,
    /// or that answers what the document does not describe, exit status 2.
    func call<Answer: Encodable & Sendable>(_ operation: @escaping @Sendable (Client) async throws -> Answer) throws -> Any {
        let client = try client()
        let semaphore = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<Answer, Error> = .failure(ValidationError("no answer"))
        Task {
            do { result = .success(try await client.call(operation)) } catch { result = .failure(error) }
            semaphore.signal()
        }
        semaphore.wait()
        let answer: Answer
        do { answer = try result.get() } catch let refusal as ManagementRefusal {
            log(refusal.description)
            throw ExitCode.failure
        } catch let error as DecodingError {
            log("the management API at \(client.baseURL) answered what docs/openapi.yaml does not describe: \(error)")
            throw ExitCode(2)
        } catch {
            log("cannot reach the management API at \(client.baseURL): \(error)")
            throw ExitCode(2)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(answer)
        if json { print(String(decoding: data, as: UTF8.self)) }
        return try JSONSerialization.jsonObject(with: data)
    }
}

/// A request body from JSON the administrator wrote, as the document's type (`AdministratorJSON`); its error as a usage error.
func documentBody<Body: Codable>(_ data: Data, _ what: String) throws -> Body {
    do { return try AdministratorJSON.decode(data, what) } catch let error as AdministratorJSON.Refusal { throw ValidationError(error.description) }
}

/// Prints rows as an aligned table.
func printTable(_ header: [String], _ rows: [[String]]) {
    let table = [header] + rows
    let widths = header.indices.map { column in table.map { $0[column].count }.max() ?? 0 }
    for line in table {
        print(
            line.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
    }
}

func text(_ value: Any?) -> String {
    switch value {
    case let list as [Any]: return list.isEmpty ? "-" : list.map { text($0) }.joined(separator: ",")
    case let number as NSNumber: return number.stringValue
    case let string as String: return string
    default: return "-"
    }
}

struct PoliciesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policies", abstract: "Show or change the policy over the management API.",
        subcommands: [List.self, Add.self, Delete.self, Replace.self, Revert.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the rules in order.")
        @OptionGroup var options: APIOptions
        func run() throws {
            let answer = try options.call { try await $0.listPolicies().ok.body.json }
            guard !options.json, let object = answer as? [String: Any], let rules = object["rules"] as? [[String: Any]] else { return }
            printTable(
                ["#", "SOURCE", "DESTINATION", "PROTOCOL", "SPORTS", "DPORTS", "ACTION"],
                rules.map { r in
                    [
                        text(r["position"]), text(r["source"]), text(r["destination"]), text(r["protocol"]), text(r["source_ports"]),
                        text(r["destination_ports"]), text(r["action"]) + (r["profile"].map { " (\(text($0)))" } ?? "")
                    ]
                })
            print("default: \(text(object["default"]))")
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Insert a rule, e.g. --rule '{\"source\":\"192.0.2.0/24\",\"destination\":\"198.51.100.7/32\",\"action\":\"discard\"}'.")
        @OptionGroup var options: APIOptions
        @Option(name: .long, help: "The rule as JSON, in the configuration file's form.") var rule: String
        @Option(name: .long, help: "Where to insert it (0 = first); default last.") var position: Int?
        func run() throws {
            let body = Operations.AddPolicy.Input.Body.JsonPayload(rule: try documentBody(Data(rule.utf8), "--rule"), position: position)
            let answer = try options.call { try await $0.addPolicy(body: .json(body)).created.body.json }
            if !options.json, let object = answer as? [String: Any] {
                print("added at position \(text(object["position"])): \(text(object["rule"]))")
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete the rule at a position.")
        @OptionGroup var options: APIOptions
        @Argument var position: Int
        func run() throws {
            let answer = try options.call { [position] in try await $0.deletePolicy(path: .init(position: position)).ok.body.json }
            if !options.json, let object = answer as? [String: Any] { print("deleted: \(text(object["deleted"]))") }
        }
    }

    struct Replace: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace the whole policy from a JSON file: {\"rules\": [...], \"default\": \"bypass\"} (the configuration file's policy form)."
        )
        @OptionGroup var options: APIOptions
        @Option(name: .long, help: "The policy as JSON.") var file: String
        func run() throws {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
            let body: Operations.ReplacePolicy.Input.Body.JsonPayload = try documentBody(data, file)
            let answer = try options.call { try await $0.replacePolicy(body: .json(body)).ok.body.json }
            if !options.json, let object = answer as? [String: Any] {
                print("policy replaced: \(text(object["rules"])) rule(s), default \(text(object["default"]))")
            }
        }
    }

    struct Revert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hand the policy back to the configuration file (its rules now, and at every start and reload).")
        @OptionGroup var options: APIOptions
        func run() throws {
            let answer = try options.call { try await $0.revertPolicy().ok.body.json }
            if !options.json, let object = answer as? [String: Any] {
                print("policy: the configuration file's \(text(object["rules"])) rule(s), default \(text(object["default"]))")
            }
        }
    }
}

struct SAsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sas", abstract: "Show or delete the SAs the proxy holds for terminals.",
        subcommands: [List.self, Show.self, Delete.self, Flush.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the CHILD SAs.")
        @OptionGroup var options: APIOptions
        @Option(help: "Only the SAs of this terminal address.") var terminal: String?
        @Option(help: "Only the SAs with this peer address.") var peer: String?
        func run() throws {
            let query = Operations.ListSAs.Input.Query(terminal: terminal, peer: peer)
            let answer = try options.call { try await $0.listSAs(query: query).ok.body.json }
            guard !options.json, let rows = (answer as? [String: Any])?["sas"] as? [[String: Any]] else { return }
            // Traffic as the terminal last reported it: octets (packets); "-" before its first report.
            func usage(_ r: [String: Any], _ direction: String) -> String {
                guard let octets = (r["octets_\(direction)"] as? NSNumber)?.doubleValue else { return "-" }
                let units = ["B", "KiB", "MiB", "GiB", "TiB"]
                var value = octets
                var unit = 0
                while value >= 1024 && unit < units.count - 1 {
                    value /= 1024
                    unit += 1
                }
                return (unit == 0 ? "\(Int(value)) B" : String(format: "%.1f %@", value, units[unit])) + " (\(text(r["packets_\(direction)"])))"
            }
            // The IKE SA's key exchanges joined with "+", and its post-quantum preshared key if any: "CURVE_25519+ML-KEM-768, PPK site".
            func keyExchanges(_ r: [String: Any]) -> String {
                let methods = (r["ike_key_exchanges"] as? [Any])?.map(text).joined(separator: "+") ?? ""
                let ppk = (r["ppk_id"] as? String).map { ", PPK \($0)" } ?? ""
                return methods.isEmpty ? "-" : methods + ppk
            }
            printTable(
                ["TERMINAL", "PEER", "SPI IN", "SPI OUT", "AGE", "REKEY IN", "CIPHER", "IKE KEY EXCHANGES", "IN", "OUT", "CHILD"],
                rows.map { r in
                    [
                        text(r["terminal"]), text(r["peer"]), text(r["spi_in"]), text(r["spi_out"]), text(r["age_seconds"]) + "s",
                        r["rekey_in_seconds"] is NSNull || r["rekey_in_seconds"] == nil ? "-" : text(r["rekey_in_seconds"]) + "s",
                        text(r["cipher_suite"]), keyExchanges(r),
                        usage(r, "in"), usage(r, "out"), text(r["child"])
                    ]
                })
            if rows.isEmpty { print("(no SA)") }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one CHILD SA by either SPI.")
        @OptionGroup var options: APIOptions
        @Argument var spi: String
        func run() throws {
            let answer = try options.call { [spi] in try await $0.showSA(path: .init(spi: spi)).ok.body.json }
            if !options.json, let object = answer as? [String: Any] {
                for key in object.keys.sorted() { print("\(key): \(text(object[key]))") }
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a CHILD SA with its peer (and in its terminal).")
        @OptionGroup var options: APIOptions
        @Argument var spi: String
        func run() throws {
            _ = try options.call { [spi] in try await $0.deleteSA(path: .init(spi: spi)).accepted.body.json }
            if !options.json { print("deleting CHILD SA \(spi)") }
        }
    }

    struct Flush: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete every IKE SA and its CHILD SAs.")
        @OptionGroup var options: APIOptions
        func run() throws {
            let answer = try options.call { try await $0.flushSAs().accepted.body.json }
            if !options.json, let object = answer as? [String: Any] { print("deleting \(text(object["deleting_ike_sas"])) IKE SA(s)") }
        }
    }
}

struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Have a running daemon read its configuration file again: profiles, terminals, their certificates and the policy (as SIGHUP does).")
    @OptionGroup var options: APIOptions
    func run() throws {
        let answer = try options.call { try await $0.reloadCredentials().ok.body.json }
        if !options.json, let object = answer as? [String: Any], let lines = object["reloaded"] as? [String] { lines.forEach { print($0) } }
    }
}

struct ProfilesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profiles",
        abstract: "The protection profiles a running daemon has, and the rules that name them.")
    @OptionGroup var options: APIOptions
    func run() throws {
        let answer = try options.call { try await $0.listProfiles().ok.body.json }
        guard !options.json, let object = answer as? [String: Any], let profiles = object["profiles"] as? [[String: Any]] else { return }
        printTable(
            ["NAME", "IKE", "ESP", "MODE", "PEER AUTHENTICATION", "REKEY", "RULES"],
            profiles.map { p in
                [
                    text(p["name"]), text(p["ike_proposals"]), text(p["esp_proposals"]), text(p["mode"]), text(p["peer_authentication"]),
                    p["rekey_time"] == nil || p["rekey_time"] is NSNull ? "-" : "\(text(p["rekey_time"]))s",
                    (p["rules"] as? [Any]).map { $0.isEmpty ? "none" : text($0) } ?? "-"
                ]
            })
    }
}

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "The newest entries of a running daemon's audit log: who changed what, and when.")
    @OptionGroup var options: APIOptions
    func run() throws {
        let answer = try options.call { try await $0.listAudit().ok.body.json }
        guard !options.json, let object = answer as? [String: Any], let entries = object["entries"] as? [[String: Any]] else { return }
        printTable(["TIME", "WHO", "ACTION", "DETAIL"], entries.map { [text($0["time"]), text($0["who"]), text($0["action"]), text($0["detail"])] })
        if entries.isEmpty { print("(no change made over the API yet)") }
        if let total = object["total"] as? Int, total > entries.count { print("(the newest \(entries.count) of \(total) entries)") }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Uptime, SAs and counters of a running daemon.")
    @OptionGroup var options: APIOptions
    func run() throws {
        let answer = try options.call { try await $0.status().ok.body.json }
        guard !options.json, let object = answer as? [String: Any] else { return }
        print(
            "uptime \(text(object["uptime_seconds"]))s, \(text(object["sas"])) CHILD SA(s), negotiating: \((object["negotiating"] as? Bool).map { $0 ? "yes" : "no" } ?? "-")"
        )
        if let ha = object["high_availability"] as? [String: Any] {
            print(
                "node \(text(ha["node"])) of a pair: \(text(ha["role"])); lease held by \(text(ha["lease_holder"])) "
                    + "for \((ha["lease_age_seconds"] as? Double).map { String(format: "%.1f", $0) } ?? "-") s, fencing \(text(ha["fencing"]))")
        }
        for group in ["data_path", "proxy", "bridge"] {
            guard let counters = object[group] as? [String: Any], !counters.isEmpty else { continue }
            printTable(
                [group.uppercased().replacingOccurrences(of: "_", with: " "), "COUNT"], counters.keys.sorted().map { [$0, text(counters[$0])] })
        }
    }
}

struct ApproveTerminalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "approve", abstract: "Approve a discovered (pending) host as a terminal.")
    @OptionGroup var options: APIOptions
    @Argument(help: "The host's MAC address, as `ikeproxy terminals` lists it.") var mac: String
    @Option(name: .long) var terminalId: UInt64
    @Option(name: .long, help: "File holding the terminal's enrollment key in hexadecimal.") var enrollmentKeyFile: String
    func run() throws {
        let body = Operations.ApproveTerminal.Input.Body.JsonPayload(
            terminalId: Int(terminalId), enrollmentKeyHex: try enrollmentKey(from: enrollmentKeyFile))
        let answer = try options.call { [mac] in try await $0.approveTerminal(path: .init(terminal: mac), body: .json(body)).ok.body.json }
        if !options.json, let object = answer as? [String: Any] {
            print("approved \(text(object["mac"])) as terminal \(text(object["terminal_id"])) at \(text(object["addresses"]))")
        }
    }
}

/// Reads an enrollment key file (hexadecimal, surrounding white space ignored).
func enrollmentKey(from path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

struct AddTerminalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Enrol a terminal by its addresses (no discovery needed).")
    @OptionGroup var options: APIOptions
    @Option(name: .long) var terminalId: UInt64
    @Option(name: .long, help: "The terminal's address (IPv4 or IPv6); repeat for a dual-stack terminal.") var address: [String]
    @Option(name: .long, help: "File holding the terminal's enrollment key in hexadecimal.") var enrollmentKeyFile: String
    @Option(name: .long, help: "UDP port of the terminal's key-delivery channel (default 9500).") var keyDeliveryPort: UInt16?
    func run() throws {
        let body = Operations.AddTerminal.Input.Body.JsonPayload(
            terminalId: Int(terminalId), addresses: address, enrollmentKeyHex: try enrollmentKey(from: enrollmentKeyFile),
            keyDeliveryPort: keyDeliveryPort.map(Int.init))
        let answer = try options.call { try await $0.addTerminal(body: .json(body)).created.body.json }
        if !options.json, let object = answer as? [String: Any] {
            print("terminal \(text(object["terminal_id"])) enrolled at \(text(object["addresses"]))")
        }
    }
}

struct RemoveTerminalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Stop acting for a terminal: delete its SAs with the peers and in the terminal.")
    @OptionGroup var options: APIOptions
    @Argument(help: "The terminal ID, as `ikeproxy terminals` lists it.") var terminalId: UInt64
    func run() throws {
        let answer = try options.call { [terminalId] in try await $0.removeTerminal(path: .init(terminal: Int(terminalId))).accepted.body.json }
        if !options.json, let object = answer as? [String: Any] {
            print("terminal \(text(object["removed"])) removed; deleting \(text(object["deleting_ike_sas"])) IKE SA(s) with their peers")
        }
    }
}
