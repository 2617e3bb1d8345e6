import Foundation
import IKEv2
import LinuxIO
import Management
import Packets
import Proxy
import Store

/// The control socket (`ikeproxy terminals`, `sas`, `status`) and the rows it shares with the management API.
extension DaemonRunner {

    /// Answers one control request with JSON.
    func answer(_ request: String) -> String {
        let object: Any
        switch request.trimmingCharacters(in: .whitespaces) {
        case "terminals": object = ["terminals": jsonObject(terminalRows())]
        case "status": object = jsonObject(status())
        case "sas": object = ["sas": jsonObject(saRows())]
        case "switchover":
            guard let leadership, let ha = configuration.highAvailability else {
                object = ["error": "not one of a pair (no high_availability in the configuration)"]
                break
            }
            guard leadership.acts(now: monotonicSeconds()) else {
                object = ["error": "node \(ha.node) is the standby; ask the active node (\(leadership.lastLease?.holder ?? "unknown"))"]
                break
            }
            handOver(holdOff: ha.timing.leaseDuration * 2)
            object = ["switchover": "node \(ha.node) released the lease and is standby; the other node takes over at its next claim"]
        default: object = ["error": "unknown request '\(request)'; known: terminals, status, sas, switchover"]
        }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// The terminal port a station was last seen on: the only one, or the one the switch learnt; nil when
    /// there are several and it has not been heard from recently.
    func portName(of mac: MACAddress, now: Double) -> String? {
        guard let portSwitch else { return terminal.name }
        guard case .terminal(let index)? = portSwitch.location(of: TerminalPortSwitch.key(mac.octets, at: 0), now: now) else { return nil }
        return terminals[index].name
    }

    /// Every host discovered on the terminal link, then the terminals enrolled by address not seen there yet and
    /// the file's terminals an administrator removed; each with its SAs and unacknowledged key delivery.
    func terminalRows() -> [TerminalRow] {
        let registry = bridge.proxy.registry
        let now = monotonicSeconds()
        var rows: [TerminalRow] = []
        var listed = Set<IPAddress>()
        for host in bridge.discovery.hosts.values.sorted(by: { $0.mac.description < $1.mac.description }) {
            let addresses = host.ipv4.union(host.ipv6)
            let entries = addresses.compactMap { registry.terminal(at: $0) }
            let inside = addresses.contains(where: bridge.discovery.isInsidePrefixes)
            listed.formUnion(addresses)
            rows.append(
                TerminalRow(
                    mac: Nullable(host.mac.description), ipv4: host.ipv4.map(\.description).sorted(),
                    ipv6: host.ipv6.map(\.description).sorted(),
                    status: !entries.isEmpty ? .registered : inside ? .unenrolled : .pending,
                    terminalID: Nullable(entries.first?.terminalID), learntFrom: host.learntFrom.sorted(),
                    lastSeenSecondsAgo: Nullable(Int(now - host.lastSeen)), port: Nullable(portName(of: host.mac, now: now))))
        }
        let fromFile = Set(configuration.terminals.map { "\($0.terminalID) \($0.address)" })
        var byID: [UInt64: [IPAddress]] = [:]
        for entry in registry.entries.values where !listed.contains(entry.address) { byID[entry.terminalID, default: []].append(entry.address) }
        var removed: [UInt64: [IPAddress]] = [:]
        for entry in configuration.terminals where !listed.contains(entry.address) && registry.entries[entry.address] == nil {
            removed[entry.terminalID, default: []].append(entry.address)
        }
        for (id, addresses) in byID.merging(removed, uniquingKeysWith: +).sorted(by: { $0.key < $1.key }) {
            let sorted = addresses.sorted { $0.description < $1.description }
            let status: TerminalRow.Status =
                sorted.contains { registry.terminal(at: $0) != nil }
                ? .registered
                : sorted.contains { registry.entries[$0] != nil } ? .outsidePrefixes : .removed
            rows.append(
                TerminalRow(
                    mac: Nullable(nil), ipv4: sorted.filter { !$0.isIPv6 }.map(\.description),
                    ipv6: sorted.filter(\.isIPv6).map(\.description), status: status, terminalID: Nullable(id),
                    learntFrom: [sorted.contains { fromFile.contains("\(id) \($0)") } ? "configuration" : "api"],
                    lastSeenSecondsAgo: Nullable(nil), port: Nullable(nil)))
        }
        // A terminal that stays silent shows its unacknowledged key delivery growing.
        let sasByAddress = Dictionary(grouping: bridge.proxy.store.children.values, by: \.terminal.description).mapValues(\.count)
        return rows.map { row in
            var row = row
            row.sas = row.addresses.reduce(0) { $0 + (sasByAddress[$1] ?? 0) }
            row.keyDeliveryUnacknowledged = Nullable(row.terminalID.value.map { bridge.proxy.unacknowledgedKeyDeliveries(terminalID: $0) })
            return row
        }
    }

    /// Every CHILD SA held, oldest first, with its traffic as the terminal last reported it (STATUS): the
    /// terminal alone sees both directions.
    func saRows() -> [SARow] {
        let store = bridge.proxy.store
        let now = monotonicSeconds()
        var ikeSAs: [IKESPI: IKEEngine.SessionSummary] = [:]
        for summary in bridge.proxy.engines.sessionSummaries { ikeSAs[summary.spiInitiator] = summary }
        return store.children.values.sorted { $0.createdAt < $1.createdAt }.map { sa in
            let ike = ikeSAs[sa.ikeSPIs.initiator]
            let usageIn = store.usage[sa.inbound.spi]
            let usageOut = store.usage[sa.outbound.spi]
            let reported = [usageIn?.reportedAt, usageOut?.reportedAt].compactMap { $0 }.max()
            return SARow(
                terminal: sa.terminal.description, peer: sa.peer.description, connection: sa.connection, child: sa.childName,
                spiIn: sa.inbound.spi.description, spiOut: sa.outbound.spi.description, ageSeconds: Int(now - sa.createdAt),
                cipherSuite: sa.outbound.suite.name,
                ikeKeyExchanges: ike?.suite.map { [$0.group.name] + $0.keyExchangesToRun.map(\.name) } ?? [],
                ppkID: Nullable(ike?.ppkIdentity), mode: sa.outbound.mode.rawValue, udpEncapsulation: sa.outbound.encapsulation != nil,
                localSelectors: sa.outbound.sourceSelectors.map(\.description),
                remoteSelectors: sa.outbound.destinationSelectors.map(\.description),
                expiresInSeconds: Nullable(sa.hardLifetime.map { max(0, Int($0 - (now - sa.createdAt))) }),
                rekeyInSeconds: Nullable(bridge.proxy.engines.secondsUntilRekey(childInbound: sa.inbound.spi, now: now).map { Int($0.rounded(.up)) }),
                packetsIn: Nullable(usageIn?.packets), octetsIn: Nullable(usageIn?.octets),
                packetsOut: Nullable(usageOut?.packets), octetsOut: Nullable(usageOut?.octets),
                usageReportedSecondsAgo: Nullable(reported.map { Int(now - $0) }))
        }
    }

    /// The data-path counters, with the terminal-port switch's table when there is one.
    var dataPathCounters: [String: Int] {
        var counters = portCounters
        if let portSwitch {
            counters["switch_stations"] = portSwitch.stationCount
            counters["switch_stations_refused_table_full"] = portSwitch.refusedStations
        }
        return counters
    }

    func status() -> StatusRow {
        let now = monotonicSeconds()
        // One pass over the IKE SAs for both counts.
        let ikeSAs = bridge.proxy.engines.sessionSummaries
        return StatusRow(
            uptimeSeconds: Int(now - startedAt),
            interfaces: .init(internet: internet.name, terminal: terminal.name, terminalPorts: terminals.map(\.name)),
            dataPath: dataPathCounters, proxy: bridge.proxy.counters, bridge: bridge.counters, engine: bridge.proxy.engines.counters,
            sas: bridge.proxy.store.children.count, negotiating: bridge.proxy.hasNegotiationsInFlight,
            ikeSAs: ikeSAs.count, negotiationsInFlight: ikeSAs.filter { !$0.established }.count,
            secretsAvailable: Nullable(state == nil ? nil : sealerPresent),
            recentFailures: recentFailures.failures.reversed().map {
                FailureRow(secondsAgo: Int(now - $0.at), kind: $0.kind, connection: $0.connection, peer: $0.peer, reason: $0.reason)
            },
            highAvailability: highAvailabilityRow)
    }

    /// The busiest terminals' traffic samples (`limit` of them), or one terminal's.
    func trafficRows(limit: Int, terminal only: String?) -> [TrafficRow] {
        let now = monotonicSeconds()
        let terminals = only.map { traffic.samples[$0] == nil ? [] : [$0] } ?? traffic.busiest(limit)
        return terminals.map { terminal in
            TrafficRow(
                terminal: terminal,
                samples: (traffic.samples[terminal] ?? []).map {
                    TrafficRow.Sample(secondsAgo: Int(now - $0.at), octetsIn: $0.octetsIn, octetsOut: $0.octetsOut)
                })
        }
    }
}
