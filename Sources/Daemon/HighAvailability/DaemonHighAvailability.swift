import Foundation
import IKEv2
import LinuxIO
import Packets
import Proxy
import Store

/// One daemon of an active/standby pair (docs/high-availability.md): the standby keeps its ports silent and its
/// state in the database; it becomes active when it holds the lease, restores every SA from the store as a restart
/// would, and announces the new path; the active goes silent by itself when its lease is not renewed in time.
extension DaemonRunner {
    /// Starts the thread that claims the lease (a daemon of a pair only).
    func startLeaseKeeper() {
        guard let ha = configuration.highAvailability, case .postgresql(var settings)? = configuration.store?.backend else { return }
        // A connection of its own, whose answers come in time or not at all.
        settings.timeout = max(0.2, ha.timing.leaseDuration / 2)
        do {
            let store = try PostgreSQLStateStore(settings: settings)
            let keeper = LeaseKeeper(node: ha.node, timing: ha.timing, store: store)
            // Requests the standby passes on are carried out here; the standby's own are passed on by the server.
            let relay = RequestRelay(node: ha.node, store: try PostgreSQLStateStore(settings: settings))
            let mailbox = self.mailbox
            let served = RequestRelay(node: ha.node, store: store)
            served.isStandby = false
            keeper.whileHolding = { served.serveRelayed(through: mailbox) }
            mailbox.relay = { request in await relay.relayIfStandby(request) }
            requestRelay = relay
            keeper.start()
            leaseKeeper = keeper
        } catch {
            log("high availability: the lease connection cannot be opened (\(error)); claims are tried again every second")
            retryLeaseKeeperAt = monotonicSeconds() + 1
        }
    }

    /// Whether this daemon acts now: the lease's answers applied, a takeover or a step down carried out. A daemon
    /// alone always acts.
    func applyLeadership(now: Double) -> Bool {
        guard var leadership else { return true }
        if leaseKeeper == nil, let at = retryLeaseKeeperAt, now >= at {
            retryLeaseKeeperAt = nil
            startLeaseKeeper()
        }
        var changes: [Leadership.Change] = []
        for answer in leaseKeeper?.drain() ?? [] {
            if let lease = answer.lease {
                changes += leadership.answered(lease, sentAt: answer.sentAt, now: now)
            } else if let error = answer.error, leadership.role == .active || now - lastLeaseErrorLogged >= 10 {
                lastLeaseErrorLogged = now
                log("high availability: lease claim failed: \(error)")
            }
        }
        changes += leadership.tick(now: now)
        self.leadership = leadership
        for change in changes {
            switch change {
            case .becomeActive(let fencing): takeOver(fencing: fencing)
            case .becomeStandby(let reason): standDown(reason)
            }
        }
        let acting = self.leadership?.acts(now: monotonicSeconds()) ?? true
        requestRelay?.isStandby = !acting
        return acting
    }

    /// The lease is ours: the state as the store has it (the other node's last committed writes) becomes this
    /// node's, writes carry the new fencing number, and the switches learn the path through this node.
    func takeOver(fencing: Int64) {
        guard let ha = configuration.highAvailability, let (database, sealer) = pairStore else { return }
        let started = monotonicSeconds()
        (database as? LeaseStore)?.fenceWrites(LeaseFence(holder: ha.node, fencing: fencing))
        bridge = Self.makeBridge(configuration, terminalPortMAC: MACAddress(terminals[0].mac))
        savedStations = [:]
        do {
            let prepared = try Self.prepareState(configuration, database: database, sealer: sealer, proxy: bridge.proxy, log: log)
            state = prepared
            Self.restoreHosts(database, into: bridge, log: log)
            savedStations = Self.restoreStations(database, into: bridge, log: log)
            restoreApprovedTerminals(prepared)
            let now = monotonicSeconds()
            let clock = ClockReading(monotonic: now, wall: Date().timeIntervalSince1970)
            sendDecided(bridge.frames(for: bridge.proxy.deleteSAsOfUnenrolledTerminals(at: clock)), now: now)
        } catch {
            log("high availability: taking over failed: \(error); handing the lease back")
            handOver(holdOff: ha.timing.leaseDuration)
            return
        }
        var stations = bridge.stations.inferred
        stations.merge(bridge.stations.seen) { _, seen in seen }
        // The key-delivery address moves to this node's terminal port: terminals must send their acknowledgements
        // there, not to the MAC their neighbour cache still holds (announced toward the terminals).
        let port = Station(mac: MACAddress(terminals[0].mac), vlanIDs: [], side: .internet)
        stations[configuration.proxySettings.keyDeliverySourceIPv4] = port
        stations[configuration.proxySettings.keyDeliverySourceIPv6] = port
        let announcements = PathAnnouncement.frames(for: stations)
        for (side, frame) in announcements { sendBuilt(frame, on: side) }
        count(.takeovers)
        log(
            "high availability: active (node \(ha.node), fencing \(fencing)): \(bridge.proxy.engines.establishedAddresses.count) IKE SA end(s) "
                + "and \(bridge.proxy.store.children.count) CHILD SA(s) restored in \(Int((monotonicSeconds() - started) * 1000)) ms; "
                + "\(announcements.count) path(s) announced (gratuitous ARP, unsolicited NA)")
    }

    /// Stop acting at once: the ports fall silent (frames read and dropped), nothing is written any more.
    func standDown(_ reason: String) {
        if let ha = configuration.highAvailability, let (database, _) = pairStore {
            (database as? LeaseStore)?.fenceWrites(LeaseFence(holder: ha.node, fencing: -1))
        }
        log("high availability: standby: \(reason); ports silent")
    }

    /// A planned switchover (`ikeproxy ha switchover`) or a failed takeover: stop acting, release the lease and claim
    /// none for `holdOff` seconds so that the other node takes it.
    func handOver(holdOff: Double) {
        guard var leadership, let leaseKeeper else { return }
        let now = monotonicSeconds()
        let changes = leadership.handOver(now: now, holdOff: holdOff)
        self.leadership = leadership
        leaseKeeper.handOver(until: now + holdOff)
        for case .becomeStandby(let reason) in changes { standDown(reason) }
    }

    /// A standby's frames: read and dropped, so that the kernel's buffers do not fill and nothing is forwarded.
    func discardFrames() {
        for (side, port) in [(LinkSide.internet, internet)] + terminals.map({ (LinkSide.terminal, $0) }) {
            var rounds = 0
            while rounds < 64, let received = try? port.receiveBatch({ _, _, _ in }), received > 0 {
                count(.framesIgnoredAsStandby(side), received)
                rounds += 1
            }
        }
    }

    /// For `ikeproxy status`: this node's role and the lease as last answered.
    var highAvailabilityRow: HighAvailabilityRow? {
        guard let leadership else { return nil }
        let now = monotonicSeconds()
        let lease = leadership.lastLease
        let since = leadership.lastAnswerAt.map { now - $0 } ?? 0
        return HighAvailabilityRow(
            node: leadership.node, role: leadership.acts(now: now) ? "active" : "standby", leaseHolder: lease?.holder,
            leaseAgeSeconds: lease.map { $0.age + since }, fencing: lease?.fencing, takeovers: leadership.takeovers)
    }
}
