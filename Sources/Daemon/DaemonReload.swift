import Foundation
import IKEServices
import IKEv2
import LinuxIO
import Management
import Packets
import Proxy
import Store

/// The reloads (SIGHUP, the API's reload): credentials and profiles, terminal prefixes, the terminal list, the policy.
extension DaemonRunner {
    /// Reads the configuration file again for the profiles, the terminals' certificates and keys, the policy
    /// and the list of terminals (SIGHUP); on any error those in use stay and the log says why.
    /// Returns what it did, line by line, or why it did nothing.
    @discardableResult
    public func reloadCredentials() -> Result<[String], DaemonStartError> {
        guard let path = configurationPath else {
            log("reload: the configuration file is not known; nothing read")
            return .failure(DaemonStartError(description: "the configuration file is not known; nothing read"))
        }
        do {
            var fresh = try DaemonConfiguration.load(path: path)
            if let sealer = configurationSealer {
                try fresh.unsealSecrets { box, context in try sealer.unseal(box, context: context) }
            }
            let (updated, lines) = ProfileReload.apply(fresh: fresh.profiles, to: bridge.proxy.profiles)
            let (credentials, terminalLines) = TerminalCredentialReload.apply(fresh: fresh.terminalCredentials, to: bridge.proxy.terminalCredentials)
            bridge.proxy.profiles = updated
            bridge.proxy.terminalCredentials = credentials
            var policyLines = reloadPolicy(fresh.policy)
            // Profiles gone from the file go once the policy in force (the file's, or the API's) names them no more.
            let (kept, goneLines) = ProfileReload.removeUnused(
                updated, inFile: Set(fresh.profiles.map(\.name)),
                namedByPolicy: bridge.proxy.policy.profileNames)
            bridge.proxy.profiles = kept
            policyLines += goneLines
            let listLines = reloadTerminalPrefixes(fresh.terminalPrefixes) + reloadTerminalList(fresh)
            (lines + terminalLines + policyLines + listLines).forEach(log)
            applyPolicy(at: .system())
            return .success(lines + terminalLines + policyLines + listLines)
        } catch {
            log("reload: \(path) not taken, the profiles, certificates, policy and terminals in use stay: \(error)")
            return .failure(
                DaemonStartError(description: "\(path) not taken, the profiles, certificates, policy and terminals in use stay: \(error)"))
        }
    }

    /// The file's terminal prefixes, taken on a reload: enrolled addresses they no longer cover lose their SAs
    /// and are not acted for; newly covered ones are; addresses administrators approved or added stay allowed.
    func reloadTerminalPrefixes(_ fresh: [AddressPrefix]) -> [String] {
        let old = configuration.terminalPrefixes
        guard fresh.map(\.text) != old.map(\.text) else { return [] }
        let (withdrawn, admitted, frames) = bridge.replaceTerminalPrefixes(
            fresh, at: .system())
        configuration.terminalPrefixes = fresh
        func byTerminal(_ addresses: [IPAddress]) -> String {
            let groups = Dictionary(grouping: addresses) { bridge.proxy.registry.entries[$0]?.terminalID ?? 0 }
            return groups.keys.sorted().map { id in "terminal \(id) (\(groups[id]!.map(\.description).joined(separator: ", ")))" }
                .joined(separator: ", ")
        }
        var lines = [
            "reload: terminal_prefixes \(fresh.map(\.text).joined(separator: ", ")) (were \(old.map(\.text).joined(separator: ", ")))"
                + "; addresses approved or added over the API stay allowed"
        ]
        if !withdrawn.isEmpty {
            lines.append("reload: no longer inside terminal_prefixes, not acted for, their SAs deleted: \(byTerminal(withdrawn))")
        }
        if !admitted.isEmpty { lines.append("reload: now inside terminal_prefixes, acted for: \(byTerminal(admitted))") }
        if !frames.isEmpty { sendDecided(frames, now: monotonicSeconds()) }
        return lines
    }

    /// The file's terminals, taken on a reload (TerminalListReload): new ones enrolled, gone ones removed with
    /// their SAs, changed ones removed and enrolled anew; those the management API decided stay as it said.
    func reloadTerminalList(_ fresh: DaemonConfiguration) -> [String] {
        var managed: Set<UInt64> = []
        if let state {
            managed.formUnion(((try? state.database.approvedTerminals()) ?? []).map(\.terminalID))
            managed.formUnion(((try? state.database.removedTerminals()) ?? []).map(\.terminalID))
        }
        let plan = TerminalListReload.plan(
            old: TerminalListReload.definitions(terminals: configuration.terminals, enrollments: configuration.enrollments),
            new: TerminalListReload.definitions(terminals: fresh.terminals, enrollments: fresh.enrollments),
            managedOverAPI: managed)
        var lines = plan.lines
        let now = monotonicSeconds()
        let wall = Date().timeIntervalSince1970
        var frames: [FrameAction] = []
        for id in plan.remove { frames += bridge.remove(terminalID: id, at: ClockReading(monotonic: now, wall: wall)) ?? [] }
        for id in plan.enroll {
            for entry in fresh.terminals where entry.terminalID == id {
                bridge.proxy.registry.enroll(entry)
                if bridge.proxy.registry.terminal(at: entry.address) == nil {
                    lines.append("reload: terminal \(id): \(entry.address) is outside terminal_prefixes; not acted for there until they cover it")
                }
            }
            for (mac, enrollment) in fresh.enrollments where enrollment.terminalID == id { bridge.enroll(mac: mac, enrollment: enrollment) }
        }
        configuration.terminals = fresh.terminals
        configuration.enrollments = fresh.enrollments
        if let state, !plan.remove.isEmpty || !plan.enroll.isEmpty {
            do { try state.database.replaceConfigurationTerminals(try Self.terminalRows(of: configuration, sealer: state.sealer)) } catch {
                lines.append(
                    "reload: the terminals could not be saved in the store (\(error)); they are in use, and read from the file at the next start")
            }
        }
        if !frames.isEmpty { sendDecided(frames, now: now) }
        return lines
    }

    /// The configuration file's terminals as rows of the store, their keys sealed.
    static func terminalRows(of configuration: DaemonConfiguration, sealer: Sealer) throws -> [StateDatabase.TerminalRow] {
        var terminalRows: [StateDatabase.TerminalRow] = []
        var byID: [UInt64: [TerminalEntry]] = [:]
        for entry in configuration.terminals { byID[entry.terminalID, default: []].append(entry) }
        for (id, entries) in byID {
            terminalRows.append(
                StateDatabase.TerminalRow(
                    terminalID: id, mac: nil, addresses: entries.map(\.address.description),
                    sealedEnrollmentKey: try sealer.seal(entries[0].enrollmentKey.bytes, context: .terminalEnrollmentKey(terminalID: id)),
                    keyDeliveryPort: entries[0].keyDeliveryPort))
        }
        for (mac, enrollment) in configuration.enrollments {
            terminalRows.append(
                StateDatabase.TerminalRow(
                    terminalID: enrollment.terminalID, mac: mac.description, addresses: [],
                    sealedEnrollmentKey: try sealer.seal(
                        enrollment.enrollmentKey.bytes, context: .terminalEnrollmentKey(terminalID: enrollment.terminalID)),
                    keyDeliveryPort: enrollment.keyDeliveryPort))
        }
        return terminalRows
    }

    /// The file's policy, taken on a reload unless the policy was changed over the management API (that one
    /// stays, as at a start) or it names a profile the daemon does not run.
    func reloadPolicy(_ fresh: PolicyTable) -> [String] {
        let current = bridge.proxy.policy
        if let state, (try? state.database.meta("policy_source")) ?? nil != nil {
            return ["reload: policy: changed over the management API, which stays; the file's rules are not used"]
        }
        guard fresh.rules != current.rules || fresh.defaultAction != current.defaultAction else { return ["reload: policy: unchanged"] }
        if let unknown = fresh.profileNames.sorted().first(where: { bridge.proxy.profiles[$0] == nil }) {
            return ["reload: policy not taken: it names profile '\(unknown)', which the daemon does not have"]
        }
        bridge.proxy.policy = fresh
        return ["reload: policy: \(fresh.rules.count) rule(s) from the file, default \(fresh.defaultAction); the SAs follow"]
    }
}
