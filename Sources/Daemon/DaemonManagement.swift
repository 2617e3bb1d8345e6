import ConfigurationFiles
import Foundation
import IKEServices
import IKEv2
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
    func applyPolicy(at time: ClockReading) {
        let actions = bridge.proxy.applyPolicy(at: time)
        guard !actions.isEmpty else { return }
        sendDecided(bridge.frames(for: actions), now: time.monotonic)
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
    func auditRows() -> Result<AuditRow, DaemonStartError> {
        var entries = recentAudit
        var total = auditTotal
        var stored = false
        if let state {
            do {
                (entries, total) = try state.database.recentAudit(limit: Self.auditShown)
                stored = true
            } catch {
                return .failure(DaemonStartError(description: "the audit log could not be read: \(error)"))
            }
        }
        let formatter = ISO8601DateFormatter()
        return .success(
            AuditRow(
                entries: entries.map {
                    .init(time: formatter.string(from: Date(timeIntervalSince1970: $0.time)), who: $0.who, action: $0.action, detail: $0.detail)
                }, total: total, stored: stored))
    }

    func handle(_ request: ManagementRequest) -> ManagementResponse {
        let now = monotonicSeconds()
        let wall = Date().timeIntervalSince1970
        if let leadership, !leadership.acts(now: now) {
            // The standby of a pair holds no state of its own until it takes over: it shows its role, changes nothing.
            switch request.route {
            case .status, .metrics, .listAudit: break
            default:
                return .error(
                    503,
                    "node \(leadership.node) is the standby of a pair; ask the active node (\(leadership.lastLease?.holder ?? "not known yet"))")
            }
        }
        switch request.route {
        case .status:
            return .json(jsonObject(status()))
        case .metrics:
            return ManagementResponse(status: 200, body: metrics(), contentType: "text/plain; version=0.0.4")
        case .listPolicies:
            return .json(
                jsonObject(
                    PolicyRow(
                        default: bridge.proxy.policy.defaultAction.description,
                        rules: bridge.proxy.policy.rules.enumerated().map { .init(rule: DaemonConfiguration.text(of: $1), position: $0) })))
        case .addPolicy:
            struct Body: Decodable {
                var rule: DaemonConfiguration.RuleText
                var position: Int?
            }
            let body: Body
            do { body = try JSONDecoder().decode(Body.self, from: request.body) } catch {
                return .error(
                    400,
                    "the body must be {\"rule\": {\"source\", \"destination\", \"protocol\", \"source_ports\", \"destination_ports\", \"action\", \"profile\"}, \"position\": n}: \((error as? DecodingError)?.readableDescription ?? "\(error)")"
                )
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
            applyPolicy(at: ClockReading(monotonic: now, wall: wall))
            audit(request, "policy.add", "position \(position): \(rule)")
            return .json(["position": position, "rule": rule.description], status: 201)
        case .deletePolicy:
            guard let text = request.parameter, let position = Int(text) else { return .error(400, "the rule position must be a number") }
            var rules = bridge.proxy.policy.rules
            guard rules.indices.contains(position) else { return .error(404, "no rule at position \(position) (there are \(rules.count))") }
            let removed = rules.remove(at: position)
            guard persistPolicy(rules, request) else { return .error(503, "the policy could not be saved; nothing changed") }
            bridge.proxy.policy = PolicyTable(rules: rules, defaultAction: bridge.proxy.policy.defaultAction)
            applyPolicy(at: ClockReading(monotonic: now, wall: wall))
            audit(request, "policy.delete", "position \(position): \(removed)")
            return .json(["deleted": removed.description])
        case .listProfiles:
            return .json(["profiles": jsonObject(profileRows())])
        case .replacePolicy:
            return replacePolicy(request, now: now, wall: wall)
        case .revertPolicy:
            return revertPolicy(request, now: now, wall: wall)
        case .listTerminals:
            return .json(["terminals": jsonObject(terminalRows())])
        case .approveTerminal:
            struct Body: Decodable {
                var terminal_id: UInt64
                var enrollment_key_hex: String
                var key_delivery_port: UInt16?
            }
            guard let text = request.parameter, let mac = MACAddress(text: text) else {
                return .error(400, "'\(request.parameter ?? "")' is not a MAC address")
            }
            let body: Body
            do { body = try JSONDecoder().decode(Body.self, from: request.body) } catch {
                return .error(400, "the body must be {\"terminal_id\": n, \"enrollment_key_hex\": \"...\"}")
            }
            guard let key = Self.enrollmentKey(hex: body.enrollment_key_hex) else { return .error(400, Self.enrollmentKeyRule) }
            guard bridge.discovery.hosts[mac] != nil else { return .error(404, "no host with MAC \(mac) has been discovered") }
            if let state {
                do {
                    let host = bridge.discovery.hosts[mac]!
                    let row = StateDatabase.TerminalRow(
                        terminalID: body.terminal_id, mac: mac.description,
                        addresses: host.ipv4.union(host.ipv6).map(\.description).sorted(),
                        sealedEnrollmentKey: try state.sealer.seal(key, context: .terminalEnrollmentKey(terminalID: body.terminal_id)),
                        keyDeliveryPort: body.key_delivery_port ?? WellKnownPort.keyDelivery)
                    try state.database.saveApprovedTerminal(row, now: wall)
                } catch {
                    return .error(503, "the approval could not be saved (\(error)); nothing changed")
                }
            }
            let addresses =
                bridge.approve(
                    mac: mac,
                    enrollment: MACEnrollment(
                        terminalID: body.terminal_id, enrollmentKey: KeyMaterial(key),
                        keyDeliveryPort: body.key_delivery_port ?? WellKnownPort.keyDelivery)) ?? []
            audit(request, "terminal.approve", "\(mac) as terminal \(body.terminal_id) at \(addresses.map(\.description).joined(separator: ", "))")
            return .json(["mac": mac.description, "terminal_id": NSNumber(value: body.terminal_id), "addresses": addresses.map(\.description)])
        case .addTerminal:
            return addTerminal(request, wall: wall)
        case .removeTerminal:
            guard let text = request.parameter, let id = UInt64(text) else { return .error(400, "the terminal ID must be a number") }
            let ikeSAs = bridge.proxy.engines.sessionSummaries.filter {
                $0.established && bridge.proxy.registry.terminal(at: $0.local.address)?.terminalID == id
            }.count
            guard bridge.proxy.registry.terminalIDs.contains(id) || bridge.enrollments.values.contains(where: { $0.terminalID == id }) else {
                return .error(404, "no terminal with ID \(id) is enrolled")
            }
            if let state {
                do { try state.database.saveRemovedTerminal(id, who: request.administrator.name, now: wall) } catch {
                    return .error(503, "the removal could not be saved (\(error)); nothing changed")
                }
            }
            let frames = bridge.remove(terminalID: id, at: ClockReading(monotonic: now, wall: wall)) ?? []
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
            guard let actions = bridge.proxy.deleteChild(spi: ChildSPI(bytes: bytes), at: ClockReading(monotonic: now, wall: wall)) else {
                return .error(404, "no CHILD SA with SPI \(text)")
            }
            sendDecided(bridge.frames(for: actions), now: now)
            audit(request, "sa.delete", "CHILD SA \(text)")
            return .json(["deleting": text], status: 202)
        case .authenticationLimited:
            audit(request, "auth.limited", request.parameter ?? "")
            return .json(["audited": true])
        case .listTraffic:
            // ?limit=N: the N busiest terminals (default 20); ?terminal=ADDRESS: that one.
            var limit = 20
            if let text = request.query["limit"] {
                guard let value = Int(text), (1...1_000).contains(value) else { return .error(400, "limit '\(text)' is not a number from 1 to 1000") }
                limit = value
            }
            var terminal: String?
            if let text = request.query["terminal"] {
                guard let address = IPAddress(text) else { return .error(400, "terminal '\(text)' is not an IP address") }
                terminal = address.description
            }
            return .json(["interval_seconds": traffic.interval, "terminals": jsonObject(trafficRows(limit: limit, terminal: terminal))])
        case .listAudit:
            switch auditRows() {
            case .success(let rows): return .json(jsonObject(rows))
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
            let count = bridge.proxy.engines.sessionSummaries.filter(\.established).count
            let actions = bridge.proxy.flush(at: ClockReading(monotonic: now, wall: wall))
            sendDecided(bridge.frames(for: actions), now: now)
            audit(request, "sa.flush", "\(count) IKE SA(s)")
            return .json(["deleting_ike_sas": count], status: 202)
        }
    }

    /// The protection profiles in use, with what a rule naming one gets (never a secret), and the rules that do.
    func profileRows() -> [ProfileRow] {
        let policy = bridge.proxy.policy
        return bridge.proxy.profiles.values.sorted { $0.name < $1.name }.map { profile in
            ProfileRow(
                name: profile.name, ikeProposals: profile.ikeProposals.map(\.text), espProposals: profile.espProposals.map(\.text),
                mode: profile.mode.rawValue, udpEncapsulation: profile.forceEncapsulation ? "forced" : "when NAT is detected",
                localAuthentication: profile.authenticatesWithTerminalCertificate
                    ? (profile.signsWithRSAPSS ? "terminal certificate (rsa/pss)" : "terminal certificate") : "pre-shared key",
                peerAuthentication: profile.peerTrustAnchors.map {
                    "certificate (\($0.count) CA(s), \(profile.peerRevocationLists.count) CRL(s), revocation \(profile.peerRevocationPolicy.rawValue))"
                } ?? "pre-shared key",
                peerIdentity: profile.peerIdentity?.description ?? "the peer's address", childless: profile.childless.rawValue,
                rules: policy.rules.indices.filter { if case .protect(profile.name) = policy.rules[$0].action { true } else { false } },
                rekeyTime: Nullable(profile.childRekeyTime), ikeRekeyTime: Nullable(profile.ikeRekeyTime), randTime: profile.childRekeyJitter,
                ikeRandTime: profile.ikeRekeyJitter, hardLifetime: Nullable(profile.hardLifetime),
                livenessInterval: Nullable(profile.livenessInterval))
        }
    }

    /// Prometheus text exposition (version 0.0.4) of what operators watch, rendered by swift-prometheus.
    func metrics() -> String {
        exposition.render(
            Self.metricFamilies(
                proxy: bridge.proxy.counters, engine: bridge.proxy.engines.counters, portCounters: portCounters,
                childSAs: bridge.proxy.store.children.count, ikeSAs: bridge.proxy.engines.sessionSummaries.filter(\.established).count,
                storeWrites: state != nil || pairStore != nil ? storeWrites : nil, highAvailability: highAvailabilityRow))
    }
}
