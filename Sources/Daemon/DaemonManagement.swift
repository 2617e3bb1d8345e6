import ConfigurationFiles
import Foundation
import IKEv2
import IKEEndpoint
import LinuxIO
import Management
import Packets
import Proxy
import Store

/// The management API's calls, carried out on the daemon's loop (the only owner of proxy state): read
/// the tables, change the policy, approve terminals, delete SAs. Every change is written to the audit
/// log (database and stderr) with the administrator's name.
extension DaemonRunner {
    static func json(of rule: PolicyRule) -> String {
        String(decoding: (try? JSONEncoder().encode(DaemonConfiguration.text(of: rule))) ?? Data(), as: UTF8.self)
    }

    /// Runs an async start-up step from the synchronous initializer.
    static func wait(_ body: @escaping @Sendable () async throws -> Void) throws {
        let semaphore = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var failure: Error?
        Task {
            do { try await body() } catch { failure = error }
            semaphore.signal()
        }
        semaphore.wait()
        if let failure { throw DaemonStartError(description: "management API: \(failure)") }
    }

    /// A policy change reaches the SAs at once: those made for other selectors are renegotiated or deleted.
    func applyPolicy(now: Double, wallClock: Double) {
        let actions = bridge.proxy.applyPolicy(now: now, wallClock: wallClock)
        guard !actions.isEmpty else { return }
        sendDecided(bridge.frames(for: actions), now: now)
    }

    func audit(_ request: ManagementRequest, _ action: String, _ detail: String) {
        log("audit: \(request.administrator.name) \(action): \(detail)")
        let now = Date().timeIntervalSince1970
        guard let state else {
            // Without a store the entries are kept in memory since the start, the newest ones.
            recentAudit.append((now, request.administrator.name, action, detail))
            if recentAudit.count > Self.auditShown { recentAudit.removeFirst(recentAudit.count - Self.auditShown) }
            auditTotal += 1
            return
        }
        do { try state.database.audit(who: request.administrator.name, action: action, detail: detail, now: now) } catch {
            log("audit log write failed: \(error)")
        }
    }

    /// How many of the newest audit entries `GET /v1/audit` gives.
    static let auditShown = 500

    /// The newest audit entries, oldest first: from the store (all runs), or from memory (this run).
    func auditRows() -> Result<[String: Any], DaemonStartError> {
        var entries = recentAudit, total = auditTotal, stored = false
        if let state {
            do { (entries, total) = try state.database.recentAudit(limit: Self.auditShown); stored = true } catch {
                return .failure(DaemonStartError(description: "the audit log could not be read: \(error)"))
            }
        }
        let formatter = ISO8601DateFormatter()
        return .success(["entries": entries.map { ["time": formatter.string(from: Date(timeIntervalSince1970: $0.time)), "who": $0.who,
                                                   "action": $0.action, "detail": $0.detail] },
                         "total": total, "stored": stored])
    }

    func handle(_ request: ManagementRequest) -> ManagementResponse {
        let now = monotonicSeconds(), wall = Date().timeIntervalSince1970
        switch request.route {
        case .status:
            return .json(jsonObject(status()))
        case .metrics:
            return ManagementResponse(status: 200, body: metrics(), contentType: "text/plain; version=0.0.4")
        case .listPolicies:
            return .json(["default": bridge.proxy.policy.defaultAction.description,
                          "rules": bridge.proxy.policy.rules.enumerated().map { index, rule in
                              var object = (try? JSONSerialization.jsonObject(with: Data(Self.json(of: rule).utf8))) as? [String: Any] ?? [:]
                              object["position"] = index
                              return object
                          }])
        case .addPolicy:
            struct Body: Decodable { var rule: DaemonConfiguration.RuleText; var position: Int? }
            let body: Body
            do { body = try JSONDecoder().decode(Body.self, from: request.body) } catch {
                return .error(400, "the body must be {\"rule\": {\"source\", \"destination\", \"protocol\", \"source_ports\", \"destination_ports\", \"action\", \"profile\"}, \"position\": n}: \((error as? DecodingError)?.readableDescription ?? "\(error)")")
            }
            let rule: PolicyRule
            do { rule = try DaemonConfiguration.parseRule(body.rule, at: "rule", profiles: Set(bridge.proxy.profiles.keys)) } catch {
                return .error(400, "\(error)")
            }
            var rules = bridge.proxy.policy.rules
            let position = body.position ?? rules.count
            guard (0...rules.count).contains(position) else { return .error(400, "position must be between 0 and \(rules.count)") }
            rules.insert(rule, at: position)
            guard persistPolicy(rules, request) else { return .error(503, "the policy could not be saved; nothing changed") }
            bridge.proxy.policy = PolicyTable(rules: rules, defaultAction: bridge.proxy.policy.defaultAction)
            applyPolicy(now: now, wallClock: wall)
            audit(request, "policy.add", "position \(position): \(rule)")
            return .json(["position": position, "rule": rule.description], status: 201)
        case .deletePolicy:
            guard let text = request.parameter, let position = Int(text) else { return .error(400, "the rule position must be a number") }
            var rules = bridge.proxy.policy.rules
            guard rules.indices.contains(position) else { return .error(404, "no rule at position \(position) (there are \(rules.count))") }
            let removed = rules.remove(at: position)
            guard persistPolicy(rules, request) else { return .error(503, "the policy could not be saved; nothing changed") }
            bridge.proxy.policy = PolicyTable(rules: rules, defaultAction: bridge.proxy.policy.defaultAction)
            applyPolicy(now: now, wallClock: wall)
            audit(request, "policy.delete", "position \(position): \(removed)")
            return .json(["deleted": removed.description])
        case .listProfiles:
            return .json(["profiles": profileRows()])
        case .replacePolicy:
            return replacePolicy(request, now: now, wall: wall)
        case .revertPolicy:
            return revertPolicy(request, now: now, wall: wall)
        case .listTerminals:
            return .json(["terminals": jsonObject(terminalRows())])
        case .approveTerminal:
            struct Body: Decodable { var terminal_id: UInt64; var enrollment_key_hex: String; var key_delivery_port: UInt16? }
            guard let text = request.parameter, let mac = MACAddress(text: text) else { return .error(400, "'\(request.parameter ?? "")' is not a MAC address") }
            let body: Body
            do { body = try JSONDecoder().decode(Body.self, from: request.body) } catch {
                return .error(400, "the body must be {\"terminal_id\": n, \"enrollment_key_hex\": \"...\"}")
            }
            guard let key = Self.enrollmentKey(hex: body.enrollment_key_hex) else { return .error(400, Self.enrollmentKeyRule) }
            guard bridge.discovery.hosts[mac] != nil else { return .error(404, "no host with MAC \(mac) has been discovered") }
            if let state {
                do {
                    let host = bridge.discovery.hosts[mac]!
                    let row = StateDatabase.TerminalRow(terminalID: body.terminal_id, mac: mac.description,
                                                        addresses: host.ipv4.union(host.ipv6).map(\.description).sorted(),
                                                        sealedEnrollmentKey: try state.sealer.seal(key, context: .terminalEnrollmentKey(terminalID: body.terminal_id)),
                                                        keyDeliveryPort: body.key_delivery_port ?? WellKnownPort.keyDelivery)
                    try state.database.saveApprovedTerminal(row, now: wall)
                } catch {
                    return .error(503, "the approval could not be saved (\(error)); nothing changed")
                }
            }
            let addresses = bridge.approve(mac: mac, enrollment: MACEnrollment(terminalID: body.terminal_id, enrollmentKey: KeyMaterial(key),
                                                                             keyDeliveryPort: body.key_delivery_port ?? WellKnownPort.keyDelivery)) ?? []
            audit(request, "terminal.approve", "\(mac) as terminal \(body.terminal_id) at \(addresses.map(\.description).joined(separator: ", "))")
            return .json(["mac": mac.description, "terminal_id": NSNumber(value: body.terminal_id), "addresses": addresses.map(\.description)])
        case .addTerminal:
            return addTerminal(request, wall: wall)
        case .removeTerminal:
            guard let text = request.parameter, let id = UInt64(text) else { return .error(400, "the terminal ID must be a number") }
            let ikeSAs = bridge.proxy.engine.sessionSummaries.filter { $0.established && bridge.proxy.registry.terminal(at: $0.local.address)?.terminalID == id }.count
            guard bridge.proxy.registry.terminalIDs.contains(id) || bridge.enrollments.values.contains(where: { $0.terminalID == id }) else {
                return .error(404, "no terminal with ID \(id) is enrolled")
            }
            if let state {
                do { try state.database.saveRemovedTerminal(id, who: request.administrator.name, now: wall) } catch {
                    return .error(503, "the removal could not be saved (\(error)); nothing changed")
                }
            }
            let frames = bridge.remove(terminalID: id, now: now, wallClock: wall) ?? []
            sendDecided(frames, now: now)
            audit(request, "terminal.remove", "terminal \(id) (\(ikeSAs) IKE SA(s) deleted with their peers, its SAs flushed)")
            return .json(["removed": NSNumber(value: id), "deleting_ike_sas": ikeSAs], status: 202)
        case .listSAs:
            // ?terminal=ADDRESS and ?peer=ADDRESS narrow the list (a proxy may hold thousands).
            var rows = saRows()
            for key in ["terminal", "peer"] {
                guard let text = request.query[key] else { continue }
                guard let address = IPAddress(text) else { return .error(400, "\(key) '\(text)' is not an IP address") }
                rows = rows.filter { (key == "terminal" ? $0.terminal : $0.peer) == address.description }
            }
            return .json(["sas": jsonObject(rows)])
        case .showSA:
            guard let text = request.parameter, let row = saRows().first(where: { $0.spiIn == text || $0.spiOut == text }) else {
                return .error(404, "no CHILD SA with SPI \(request.parameter ?? "")")
            }
            return .json(jsonObject(row))
        case .deleteSA:
            guard let text = request.parameter, let bytes = [UInt8](hexString: text), bytes.count == 4 else {
                return .error(400, "an SPI is 8 hexadecimal digits")
            }
            guard let actions = bridge.proxy.deleteChild(spi: ChildSPI(bytes: bytes), now: now, wallClock: wall) else {
                return .error(404, "no CHILD SA with SPI \(text)")
            }
            sendDecided(bridge.frames(for: actions), now: now)
            audit(request, "sa.delete", "CHILD SA \(text)")
            return .json(["deleting": text], status: 202)
        case .listAudit:
            switch auditRows() {
            case .success(let object): return .json(object)
            case .failure(let error): return .error(503, error.description)
            }
        case .reloadCredentials:
            switch reloadCredentials() {
            case .success(let lines):
                audit(request, "credentials.reload", lines.joined(separator: " | "))
                return .json(["reloaded": lines])
            case .failure(let failure):
                audit(request, "credentials.reload", "refused: \(failure)")
                return .error(422, failure.description)
            }
        case .flushSAs:
            let count = bridge.proxy.engine.sessionSummaries.filter(\.established).count
            let actions = bridge.proxy.flush(now: now, wallClock: wall)
            sendDecided(bridge.frames(for: actions), now: now)
            audit(request, "sa.flush", "\(count) IKE SA(s)")
            return .json(["deleting_ike_sas": count], status: 202)
        }
    }

    /// The protection profiles in use, with what a rule naming one gets (never a secret), and the rules that do.
    func profileRows() -> [[String: Any]] {
        let policy = bridge.proxy.policy
        return bridge.proxy.profiles.values.sorted { $0.name < $1.name }.map { profile in
            var row: [String: Any] = [
                "name": profile.name, "ike_proposals": profile.ikeProposals.map(\.text), "esp_proposals": profile.espProposals.map(\.text),
                "mode": profile.mode.rawValue, "udp_encapsulation": profile.forceEncapsulation ? "forced" : "when NAT is detected",
                "local_authentication": profile.authenticatesWithTerminalCertificate ? (profile.signsWithRSAPSS ? "terminal certificate (rsa/pss)" : "terminal certificate")
                    : "pre-shared key",
                "peer_authentication": profile.peerTrustAnchors.map { "certificate (\($0.count) CA(s), \(profile.peerRevocationLists.count) CRL(s), revocation \(profile.peerRevocationPolicy.rawValue))" }
                    ?? "pre-shared key",
                "peer_identity": profile.peerIdentity?.description ?? "the peer's address",
                "childless": profile.childless.rawValue,
                "rules": policy.rules.indices.filter { if case .protect(profile.name) = policy.rules[$0].action { true } else { false } },
            ]
            row["rekey_time"] = profile.childRekeyTime ?? NSNull()
            row["ike_rekey_time"] = profile.ikeRekeyTime ?? NSNull()
            row["rand_time"] = profile.childRekeyJitter
            row["ike_rand_time"] = profile.ikeRekeyJitter
            row["hard_lifetime"] = profile.hardLifetime.map { NSNumber(value: $0) } ?? NSNull()
            row["liveness_interval"] = profile.livenessInterval ?? NSNull()
            return row
        }
    }

    /// The whole policy at once (what automation sends): every rule checked first; one bad rule changes nothing.
    func replacePolicy(_ request: ManagementRequest, now: Double, wall: Double) -> ManagementResponse {
        struct Body: Decodable { var rules: [DaemonConfiguration.RuleText]; var `default`: String? }
        let body: Body
        do { body = try JSONDecoder().decode(Body.self, from: request.body) } catch {
            return .error(400, "the body must be {\"rules\": [{\"source\", \"destination\", \"protocol\", \"source_ports\", \"destination_ports\", "
                          + "\"action\", \"profile\"}, ...], \"default\": \"bypass\" or \"discard\"}: \((error as? DecodingError)?.readableDescription ?? "\(error)")")
        }
        guard body.rules.count <= 100_000 else { return .error(400, "at most 100000 rules") }
        let rules: [PolicyRule]
        do {
            let profiles = Set(bridge.proxy.profiles.keys)
            rules = try body.rules.enumerated().map { try DaemonConfiguration.parseRule($0.element, at: "rules[\($0.offset)]", profiles: profiles) }
        } catch {
            return .error(400, "\(error); nothing changed")
        }
        let defaultAction: PolicyAction
        switch body.default {
        case nil: defaultAction = bridge.proxy.policy.defaultAction
        case "bypass"?: defaultAction = .bypass
        case "discard"?: defaultAction = .discard
        case let other?: return .error(400, "default: '\(other)' is not bypass or discard; nothing changed")
        }
        guard persistPolicy(rules, request, defaultAction: defaultAction) else { return .error(503, "the policy could not be saved; nothing changed") }
        bridge.proxy.policy = PolicyTable(rules: rules, defaultAction: defaultAction)
        applyPolicy(now: now, wallClock: wall)
        audit(request, "policy.replace", "\(rules.count) rule(s), default \(defaultAction)")
        return .json(["rules": rules.count, "default": defaultAction.description])
    }

    /// Hands the policy back to the configuration file: its rules as the file has them now, and from then on
    /// at every start and reload, as before any change over the API.
    func revertPolicy(_ request: ManagementRequest, now: Double, wall: Double) -> ManagementResponse {
        guard let path = configurationPath else { return .error(422, "the configuration file is not known; nothing changed") }
        let file: DaemonConfiguration
        do { file = try DaemonConfiguration.load(path: path) } catch {
            return .error(422, "\(path) does not load (\(error)); nothing changed")
        }
        if let unknown = file.policy.profileNames.sorted().first(where: { bridge.proxy.profiles[$0] == nil }) {
            return .error(422, "the file's policy names profile '\(unknown)', which the daemon does not have (reload first); nothing changed")
        }
        if let state {
            do { try state.database.revertPolicy(toFileRules: file.policy.rules.map(Self.json(of:))) } catch {
                return .error(503, "the policy could not be saved (\(error)); nothing changed")
            }
        }
        bridge.proxy.policy = file.policy
        applyPolicy(now: now, wallClock: wall)
        audit(request, "policy.revert", "the configuration file's \(file.policy.rules.count) rule(s), default \(file.policy.defaultAction)")
        return .json(["rules": file.policy.rules.count, "default": file.policy.defaultAction.description, "source": "configuration file"])
    }

    static let enrollmentKeyRule = "enrollment_key_hex must be at least 16 octets of hexadecimal"

    /// A terminal's enrollment key as an administrator sends it (approval or addition); nil when too short or not hexadecimal.
    static func enrollmentKey(hex: String) -> [UInt8]? {
        guard let key = [UInt8](hexString: hex), key.count >= 16 else { return nil }
        return key
    }

    /// An administrator enrols a terminal by its addresses (no discovery needed): saved first, then acted for.
    func addTerminal(_ request: ManagementRequest, wall: Double) -> ManagementResponse {
        struct Body: Decodable { var terminal_id: UInt64; var addresses: [String]; var enrollment_key_hex: String; var key_delivery_port: UInt16? }
        let body: Body
        do { body = try JSONDecoder().decode(Body.self, from: request.body) } catch {
            return .error(400, "the body must be {\"terminal_id\": n, \"addresses\": [\"...\"], \"enrollment_key_hex\": \"...\", \"key_delivery_port\": n}: "
                          + ((error as? DecodingError)?.readableDescription ?? "\(error)"))
        }
        guard !body.addresses.isEmpty, body.addresses.count <= 8 else { return .error(400, "addresses must list one to eight addresses") }
        var addresses: [IPAddress] = []
        for text in body.addresses {
            guard let address = IPAddress(text) else { return .error(400, "'\(text)' is not an IPv4 or IPv6 address") }
            guard !address.isLinkLocal, !address.isMulticast, !address.isUnspecified else {
                return .error(400, "\(text) cannot be a terminal's address (link-local, multicast or unspecified)")
            }
            guard !addresses.contains(address) else { return .error(400, "\(text) is listed twice") }
            addresses.append(address)
        }
        guard let key = Self.enrollmentKey(hex: body.enrollment_key_hex) else { return .error(400, Self.enrollmentKeyRule) }
        guard body.key_delivery_port != 0 else { return .error(400, "key_delivery_port must be 1 to 65535") }
        let registry = bridge.proxy.registry
        if registry.terminalIDs.contains(body.terminal_id) || bridge.enrollments.values.contains(where: { $0.terminalID == body.terminal_id }) {
            return .error(409, "terminal \(body.terminal_id) is enrolled already; remove it first (DELETE /v1/terminals/\(body.terminal_id))")
        }
        if let taken = addresses.first(where: { registry.entries[$0] != nil }) {
            return .error(409, "\(taken) is terminal \(registry.entries[taken]!.terminalID)'s address")
        }
        let port = body.key_delivery_port ?? WellKnownPort.keyDelivery
        if let state {
            do {
                let row = StateDatabase.TerminalRow(terminalID: body.terminal_id, mac: nil, addresses: addresses.map(\.description),
                                                    sealedEnrollmentKey: try state.sealer.seal(key, context: .terminalEnrollmentKey(terminalID: body.terminal_id)),
                                                    keyDeliveryPort: port)
                try state.database.saveApprovedTerminal(row, now: wall)
            } catch {
                return .error(503, "the terminal could not be saved (\(error)); nothing changed")
            }
        }
        bridge.add(terminalID: body.terminal_id, addresses: addresses, enrollmentKey: KeyMaterial(key), keyDeliveryPort: port)
        audit(request, "terminal.add", "terminal \(body.terminal_id) at \(addresses.map(\.description).joined(separator: ", "))")
        return .json(["terminal_id": NSNumber(value: body.terminal_id), "addresses": addresses.map(\.description)], status: 201)
    }

    /// Saves the policy first: a change that cannot be saved is not made.
    func persistPolicy(_ rules: [PolicyRule], _ request: ManagementRequest, defaultAction: PolicyAction? = nil) -> Bool {
        let defaultAction = defaultAction ?? bridge.proxy.policy.defaultAction
        guard let state else { return true }
        do {
            try state.database.replacePolicy(rules: rules.map(Self.json(of:)), defaultAction: defaultAction.description,
                                             who: request.administrator.name, now: Date().timeIntervalSince1970)
            return true
        } catch {
            log("saving the policy failed: \(error)")
            return false
        }
    }

    /// Terminals approved over the API before a restart, enrolled again.
    func restoreApprovedTerminals(_ state: ProxyStateStore) {
        do {
            for row in try state.database.approvedTerminals() {
                // The API's version of a terminal supersedes the configuration file's under the same ID.
                if bridge.forget(terminalID: row.terminalID) {
                    log("terminal \(row.terminalID): the configuration file's entry is superseded by the one an administrator made over the API")
                }
                guard let text = row.mac, let mac = MACAddress(text: text) else {
                    let addresses = row.addresses.compactMap(IPAddress.init)
                    guard !addresses.isEmpty else { log("terminal \(row.terminalID): its saved addresses do not parse; not enrolled"); continue }
                    do {
                        let key = try state.sealer.unseal(row.sealedEnrollmentKey, context: .terminalEnrollmentKey(terminalID: row.terminalID))
                        bridge.add(terminalID: row.terminalID, addresses: addresses, enrollmentKey: KeyMaterial(key), keyDeliveryPort: row.keyDeliveryPort)
                        log("terminal \(row.terminalID) at \(addresses.map(\.description).joined(separator: ", ")), added over the API, enrolled again")
                    } catch {
                        log("terminal \(row.terminalID): its key does not open (\(error)); not enrolled")
                    }
                    continue
                }
                do {
                    let key = try state.sealer.unseal(row.sealedEnrollmentKey, context: .terminalEnrollmentKey(terminalID: row.terminalID))
                    _ = bridge.approve(mac: mac, enrollment: MACEnrollment(terminalID: row.terminalID, enrollmentKey: KeyMaterial(key),
                                                                          keyDeliveryPort: row.keyDeliveryPort))
                    log("terminal \(row.terminalID) at \(mac), approved over the API, enrolled again")
                } catch {
                    log("terminal \(row.terminalID) at \(mac): its key does not open (\(error)); not enrolled")
                }
            }
        } catch {
            log("cannot read approved terminals: \(error)")
        }
        do {
            for removed in try state.database.removedTerminals() where bridge.forget(terminalID: removed.terminalID) {
                log("terminal \(removed.terminalID) of the configuration file was removed over the API by \(removed.who) at "
                    + "\(Date(timeIntervalSince1970: removed.at)); not enrolled (add or approve it over the API to enrol it again)")
            }
        } catch {
            log("cannot read removed terminals: \(error)")
        }
    }

    /// Prometheus text exposition (version 0.0.4) of what operators watch.
    func metrics() -> String {
        var lines: [String] = []
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, Int)]) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            for (labels, value) in samples { lines.append("\(name)\(labels) \(value)") }
        }
        let proxy = bridge.proxy.counters, engine = bridge.proxy.engine.counters
        family("ikeproxy_negotiations_started_total", "counter", "IKE negotiations the proxy started in a terminal's name.",
               [("", proxy["negotiations_started", default: 0])])
        family("ikeproxy_ike_answered_total", "counter", "IKE messages answered in a terminal's name.", [("", proxy["ike_answered_for_terminal", default: 0])])
        family("ikeproxy_negotiation_failures_total", "counter", "IKE messages dropped or negotiations failed, by reason.",
               (proxy.filter { $0.key.hasPrefix("ike_drop_") }.map { ("{reason=\"\($0.key.dropFirst(9))\"}", $0.value) }
                + engine.map { ("{reason=\"engine_\($0.key)\"}", $0.value) }).sorted { $0.0 < $1.0 })
        family("ikeproxy_drops_total", "counter", "Packets not passed on, by reason.",
               proxy.filter { $0.key.hasPrefix("drop_") }.map { ("{reason=\"\($0.key.dropFirst(5))\"}", $0.value) }.sorted { $0.0 < $1.0 })
        family("ikeproxy_revocation_checks_total", "counter", "Online revocation checks of peers' certificates (OCSP, fetched CRLs), by outcome.",
               ["good", "revoked", "unavailable"].map { ("{outcome=\"\($0)\"}", engine["revocation_\($0)", default: 0]) })
        family("ikeproxy_sa_events_total", "counter", "IKE and CHILD SAs made, rekeyed, deleted and failed in terminals' names, by event.",
               SAEvent.Kind.allCases.map { ("{event=\"\($0.rawValue)\"}", proxy[$0.rawValue, default: 0]) })
        family("ikeproxy_child_sas", "gauge", "CHILD SAs stored for terminals.", [("", bridge.proxy.store.children.count)])
        family("ikeproxy_ike_sas", "gauge", "Established IKE SAs held in terminals' names.",
               [("", bridge.proxy.engine.sessionSummaries.filter(\.established).count)])
        family("ikeproxy_frames_total", "counter", "Frames through the data path, by direction and fate.",
               portCounters.sorted { $0.key < $1.key }.map { ("{kind=\"\($0.key)\"}", $0.value) })
        family("ikeproxy_packets_total", "counter", "Packets the proxy judged, by outcome.",
               ["bypassed", "forwarded_to_terminal", "forwarded_esp", "forwarded_keepalive"].map { ("{outcome=\"\($0)\"}", proxy[$0, default: 0]) })
        return lines.joined(separator: "\n")
    }
}
