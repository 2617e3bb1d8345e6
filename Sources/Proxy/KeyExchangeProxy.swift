import ESP
import IKEv2
import KeyDelivery
import Packets

/// The two sides of the wire the proxy sits in.
public enum LinkSide: String, Sendable { case internet, terminal }

/// What the proxy asks its data path to do with packets.
public enum ProxyAction: Equatable, Sendable {
    /// Send an IP packet out of one side (forwarded, or built by the proxy: IKE in a terminal's name,
    /// key delivery to a terminal).
    case send(LinkSide, [UInt8])
    /// Pass the packet just received on, unchanged, out of this side (the data path keeps its own copy,
    /// with whatever link-layer framing it arrived in).
    case forward(LinkSide)
    /// A packet not passed on, with the counted reason.
    case drop(String)
    case log(String)
    /// An SA event, for the operator's event stream.
    case event(SAEvent)
    /// Ask the OCSP responders (or fetch the CRLs) a peer's certificate chain names; answer with `revocationChecked`.
    case checkRevocation(RevocationCheckRequest)
}

/// Why a saved SA was not brought back after a restart.
public struct RestoreRefusal: Error, CustomStringConvertible {
    public var description: String
}

/// Tunables of the proxy core.
public struct ProxySettings: Sendable {
    /// Source of key-delivery datagrams: the proxy owns no address, these are only labels on the link.
    public var keyDeliverySourceIPv4 = IPAddress("169.254.0.1")!
    public var keyDeliverySourceIPv6 = IPAddress("fe80::1")!
    public var keyDeliveryPort: UInt16 = 9500
    /// A stored SA is handed again to a terminal that asks for it at most this often, per terminal and peer.
    public var reuseInterval: Double = 1
    /// After a negotiation for a terminal and a peer failed, start requests for them wait this long, so that
    /// a terminal that keeps sending does not make an IKE exchange of every packet.
    public var retryAfterFailure: Double = 10
    /// At most this many negotiations run at once in one terminal's name; start requests beyond it are dropped
    /// and counted, so that a terminal (or a host on its link posing as one) cannot make the proxy start IKE
    /// with every address a broad protect rule covers.
    public var maxNegotiationsPerTerminal = 16
    /// And at most this many at once in all, whichever terminals they are for.
    public var maxNegotiations = 256
    public init() {}
}

/// The key-exchange proxy, pure: packets from either side and clock ticks in, packets to send out.
/// It judges each packet against the policy (the two flows of the design, see docs/proxy.md), runs IKE
/// in terminals' names through one IKEv2 engine, keeps the SA store, and sets keys into terminals over
/// key delivery. No sockets: the data path (AF_PACKET, or virtual links in `ikeproxy demo`) is outside.
public final class KeyExchangeProxy {
    public var policy: PolicyTable { didSet { pairPolicies = [:] } }
    public var registry: TerminalRegistry
    /// By name; a profile changed here (a reload of its CAs and CRLs) applies from the next negotiation.
    public var profiles: [String: ProtectionProfile] { didSet { pairPolicies = [:] } }
    /// What the policy says about each terminal and peer (the profiles protecting their traffic and each one's
    /// selectors), derived once per policy: every IKE message, start request and SA event asks.
    private var pairPolicies: [TerminalPeer: PairPolicy] = [:]
    struct PairPolicy {
        var profiles: [ProtectionProfile]
        var selectors: [String: ProtectedTrafficSelectors]
    }
    public let settings: ProxySettings
    public let engine: IKEEngine
    public let store = SAStore()
    /// One key-delivery channel per terminal (by terminal ID), whichever of its addresses an SA is for.
    private var setters: [UInt64: (setter: TerminalKeySetter, entry: TerminalEntry)] = [:]
    /// Channels made anew for terminals enrolled again under another key: each takes a later epoch.
    private var channelsReplaced: UInt64 = 0
    /// Removed terminals, by address, whose last key-delivery messages (the FLUSH) are not yet acknowledged:
    /// their acknowledgements are still taken, nothing else from them.
    private var departed: [IPAddress: TerminalEntry] = [:]
    private var negotiating: [TerminalPeer: Double] = [:]
    private var lastReuse: [TerminalPeer: Double] = [:]
    /// The last failed negotiation per terminal and peer: when, and why.
    private var failures: [TerminalPeer: (at: Double, reason: String)] = [:]
    /// When a start request over a negotiation limit was last logged, by terminal (at most one line in 10 s).
    private var limitLogged: [UInt64: Double] = [:]
    /// When a terminal was last told to delete an SA the proxy does not hold, by terminal ID and SPI.
    private var staleDeleteSent: [String: Double] = [:]
    public private(set) var counters: [String: Int] = [:]
    /// CHILD SAs (by outbound SPI) whose deletion a policy change asked for: asked once, until the SA is gone.
    private var deletingForPolicy: Set<ChildSPI> = []

    /// Log lines said once (by key), for conditions that repeat with every packet of a flow.
    private var saidOnce: Set<String> = []

    func noteOnce(_ key: String, _ line: String) -> [ProxyAction] {
        guard saidOnce.count < 4096, saidOnce.insert(key).inserted else { return [] }
        return [.log(line)]
    }

    /// The earlier rules each connection's selectors could not cut out, as last counted: counted again only when it changes.
    private var reportedStillCovered: [String: [Int]] = [:]
    /// What was logged about them, by profile and rules: said once, however many terminals and peers it concerns.
    private var loggedStillCovered: Set<String> = []
    private let epoch: UInt64

    public init(policy: PolicyTable, registry: TerminalRegistry, profiles: [ProtectionProfile], settings: ProxySettings = ProxySettings(),
                engineSettings: EngineSettings = EngineSettings(), random: RandomSource = SystemRandom(), epoch: UInt64 = 1) {
        self.policy = policy
        self.registry = registry
        self.profiles = Dictionary(profiles.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.settings = settings
        self.epoch = epoch
        engine = IKEEngine(connections: [], settings: engineSettings, random: random)
    }

    private func count(_ name: String) { counters[name, default: 0] += 1 }
    private func drop(_ reason: String) -> [ProxyAction] { count("drop_" + reason); return [.drop(reason)] }
    private func pairKey(_ terminal: IPAddress, _ peer: IPAddress) -> TerminalPeer { TerminalPeer(terminal: terminal, peer: peer) }

    public var hasNegotiationsInFlight: Bool { !negotiating.isEmpty }

    /// Whether a negotiation for this terminal and peer is under way.
    public func isNegotiating(terminal: IPAddress, peer: IPAddress) -> Bool { negotiating[pairKey(terminal, peer)] != nil }

    func setter(for terminal: TerminalEntry) -> TerminalKeySetter {
        if let existing = setters[terminal.terminalID], existing.entry.enrollmentKey == terminal.enrollmentKey {
            // Enrolled again at other addresses: retransmissions go where the terminal is now.
            if existing.entry.keyDeliveryAddress != terminal.keyDeliveryAddress || existing.entry.keyDeliveryPort != terminal.keyDeliveryPort {
                setters[terminal.terminalID] = (existing.setter, terminal)
            }
            return existing.setter
        }
        // A terminal enrolled again under a new key gets a new channel, in a later epoch than the old one's so
        // the terminal takes its sequence numbers afresh.
        if setters[terminal.terminalID] != nil { channelsReplaced += 1 }
        let setter = TerminalKeySetter(channel: KeyDeliveryChannel(role: .proxy, terminalID: terminal.terminalID,
                                                                   enrollmentKey: terminal.enrollmentKey, epoch: epoch + channelsReplaced))
        setters[terminal.terminalID] = (setter, terminal)
        return setter
    }

    /// IKE SAs held in the name of addresses that are no longer enrolled terminals (restored after a restart
    /// that followed a removal whose Delete exchanges had not finished): deleted with their peers.
    public func deleteSAsOfUnenrolledTerminals(now: Double, wallClock: Double) -> [ProxyAction] {
        deleteIKESAs(where: { self.registry.terminal(at: $0.local.address) == nil }, now: now, wallClock: wallClock) { session in
            self.count("ike_sa_of_unenrolled_terminal_deleted")
            return [.log("IKE SA \(session.spiInitiator)/\(session.spiResponder) with \(session.remote.address) is held for "
                         + "\(session.local.address), which is no longer an enrolled terminal: deleting it")]
        }
    }

    /// Deletes with their peers the established IKE SAs that `chosen` picks, each after what `note` says about it.
    private func deleteIKESAs(where chosen: (IKEEngine.SessionSummary) -> Bool, now: Double, wallClock: Double,
                              note: (IKEEngine.SessionSummary) -> [ProxyAction] = { _ in [] }) -> [ProxyAction] {
        engine.sessionSummaries.filter { $0.established && chosen($0) }.flatMap { session in
            note(session) + perform(engine.deleteIKE(connection: session.connection, spiInitiator: session.spiInitiator, now: now),
                                    now: now, wallClock: wallClock)
        }
    }

    /// An administrator removes a terminal: from now on the proxy does not act for it (no new SA, no start
    /// request, no IKE answered but the Delete exchanges below), deletes the IKE SAs held in its name with
    /// their peers, and flushes every SA out of the terminal. Nil when no terminal has that ID.
    public func removeTerminal(id: UInt64, now: Double, wallClock: Double) -> [ProxyAction]? {
        let removed = registry.remove(terminalID: id)
        guard let first = removed.first else { return nil }
        let addresses = Set(removed.map(\.address))
        let delivery = removed.first { $0.address == $0.keyDeliveryAddress } ?? first
        for entry in removed { departed[entry.address] = delivery }
        count("terminals_removed")
        var actions: [ProxyAction] = [.log("terminal \(id) (\(removed.map(\.address.description).joined(separator: ", "))) removed: its SAs are "
                                           + "deleted with the peers and in the terminal; no SA is made for it any more")]
        actions += keyDelivery(setter(for: delivery).flush(now: now, wallClock: wallClock), to: delivery)
        actions += deleteIKESAs(where: { addresses.contains($0.local.address) }, now: now, wallClock: wallClock)
        for pair in negotiating.keys where addresses.contains(pair.terminal) { negotiating[pair] = nil }
        return actions
    }

    /// Key-delivery messages sent to this terminal and not acknowledged yet.
    public func unacknowledgedKeyDeliveries(terminalID: UInt64) -> Int { setters[terminalID]?.setter.channel.unacknowledgedCount ?? 0 }

    /// These enrolled addresses are no longer ones to act for (the terminal prefixes changed, or a terminal's DHCP
    /// lease moved): the proxy stops acting for them (no new SA, no start request) and deletes their SAs, in the
    /// terminal and with the peers. The entries stay unless the caller forgets them.
    public func withdraw(addresses: Set<IPAddress>, reason: String = "is no longer inside the terminal prefixes",
                         now: Double, wallClock: Double) -> [ProxyAction] {
        var actions: [ProxyAction] = []
        for address in addresses.sorted(by: { $0.description < $1.description }) {
            guard let entry = registry.entries[address] else { continue }
            // Acknowledgements come from the key-delivery address; it may be one of those withdrawn.
            departed[address] = registry.entries[entry.keyDeliveryAddress] ?? entry
            count("terminal_addresses_withdrawn")
            let children = store.children.values.filter { $0.terminal == address }.sorted { $0.createdAt < $1.createdAt }
            actions.append(.log("terminal \(entry.terminalID): \(address) \(reason): not acted for; "
                                + "\(children.count) CHILD SA(s) deleted in the terminal and with the peers"))
            for sa in children {
                actions += keyDelivery(setter(for: entry).delete(inbound: sa.inbound.spi, outbound: sa.outbound.spi, now: now, wallClock: wallClock),
                                       to: entry)
            }
        }
        actions += deleteIKESAs(where: { addresses.contains($0.local.address) }, now: now, wallClock: wallClock)
        for pair in negotiating.keys where addresses.contains(pair.terminal) { negotiating[pair] = nil }
        return actions
    }

    /// The profile of the first protect rule covering traffic between a terminal and a peer: it sets up their
    /// IKE SA (proposals, identities, credentials) and its CHILD SA comes first.
    func profile(terminal: IPAddress, peer: IPAddress) -> ProtectionProfile? { profilesProtecting(terminal: terminal, peer: peer).first }

    /// Every profile that protects some traffic between a terminal and a peer, in the order of their first
    /// rules (the default action last): each has its CHILD SA on the pair's one IKE SA.
    func profilesProtecting(terminal: IPAddress, peer: IPAddress) -> [ProtectionProfile] { pairPolicy(terminal: terminal, peer: peer).profiles }

    /// The CHILD SA selectors the policy gives a profile for a terminal and a peer.
    func selectors(terminal: IPAddress, peer: IPAddress, profile: String) -> ProtectedTrafficSelectors {
        pairPolicy(terminal: terminal, peer: peer).selectors[profile] ?? policy.protectedSelectors(terminal: terminal, peer: peer, profile: profile)
    }

    private func pairPolicy(terminal: IPAddress, peer: IPAddress) -> PairPolicy {
        let pair = pairKey(terminal, peer)
        if let known = pairPolicies[pair] { return known }
        let t = AddressKey(terminal.bytes), p = AddressKey(peer.bytes)
        var names: [String] = []
        for rule in policy.rules where rule.source.isIPv6 == terminal.isIPv6 && rule.source.contains(t) && rule.destination.contains(p) {
            if case .protect(let name) = rule.action, !names.contains(name) { names.append(name) }
        }
        if case .protect(let name) = policy.defaultAction, !names.contains(name) { names.append(name) }
        var selectors: [String: ProtectedTrafficSelectors] = [:]
        for name in names { selectors[name] = policy.protectedSelectors(terminal: terminal, peer: peer, profile: name) }
        // A profile whose rules earlier rules shadow entirely protects nothing here.
        let found = PairPolicy(profiles: names.filter { selectors[$0]?.shadowed == false }.compactMap { profiles[$0] }, selectors: selectors)
        if pairPolicies.count >= 65536 { pairPolicies = [:] }
        pairPolicies[pair] = found
        return found
    }

    /// The profile whose CHILD SA configuration has this name.
    func profile(forChild name: String) -> ProtectionProfile? { profiles.values.first { $0.childName == name } }

    /// The engine's connection for a terminal and a peer, set from the current policy, and a log line when its
    /// selectors newly reach into earlier rules' traffic (see `ProtectedTrafficSelectors.stillCovered`).
    func connection(for terminal: IPAddress, peer: IPAddress, profile: ProtectionProfile) -> (name: String, notes: [ProxyAction]) {
        let credential = registry.terminal(at: terminal).flatMap { terminalCredentials[$0.terminalID] }
        let others = profilesProtecting(terminal: terminal, peer: peer).filter { $0.name != profile.name }
        let selectors = self.selectors(terminal: terminal, peer: peer, profile: profile.name)
        var bySelectors = [(profile, selectors)]
        for other in others { bySelectors.append((other, self.selectors(terminal: terminal, peer: peer, profile: other.name))) }
        let connection = profile.connection(terminal: terminal, peer: peer, credential: credential, selectors: selectors,
                                            otherChildren: bySelectors.dropFirst().map { $0.0.childConfiguration(selectors: $0.1) })
        // Set every time: a policy changed over the management API reaches the next negotiation.
        engine.setConnection(connection)
        var notes: [ProxyAction] = []
        for (profile, selectors) in bySelectors {
            notes += noteStillCovered(selectors, profile: profile, terminal: terminal, peer: peer, key: "\(connection.name) \(profile.name)")
        }
        return (connection.name, notes)
    }

    /// Counts (once per terminal, peer and profile) and logs (once per profile and rules) the earlier rules a
    /// profile's selectors could not cut out.
    private func noteStillCovered(_ selectors: ProtectedTrafficSelectors, profile: ProtectionProfile, terminal: IPAddress, peer: IPAddress,
                                  key: String) -> [ProxyAction] {
        var notes: [ProxyAction] = []
        if reportedStillCovered[key, default: []] != selectors.stillCovered {
            reportedStillCovered[key] = selectors.stillCovered
            let rules = selectors.stillCovered.map { "the rule at position \($0) (\(policy.rules[$0]))" }.joined(separator: ", ")
            if !selectors.stillCovered.isEmpty {
                count("selectors_covering_earlier_rules")
                if loggedStillCovered.count < 1024, loggedStillCovered.insert("\(profile.name) \(rules)").inserted {
                    notes.append(.log("CHILD SA selectors of profile '\(profile.name)' still cover traffic of \(rules) (first for \(terminal) <-> \(peer); "
                                      + "said once for every terminal and peer): IKEv2 selectors cannot cut it out (a selector names one protocol "
                                      + "or all, and the SA takes every local and remote pair), so the terminal encrypts it and that rule never "
                                      + "sees it; narrow the protect rule to keep it outside"))
                }
            }
        }
        return notes
    }

    // MARK: restart

    /// Brings back an IKE SA (and its CHILD SAs) saved before a restart: the engine resumes it and the
    /// SA store knows its CHILD SAs again, so the terminal's ESP is forwarded at once and rekeys and
    /// expiries keep their original schedule. Nothing is sent: the terminal still holds its keys.
    public func restore(_ snapshot: IKESASnapshot, highestOutboundSequences: [ChildSPI: UInt64] = [:], now: Double) throws -> Int {
        guard let terminal = IPAddress(snapshot.localAddress), let peer = IPAddress(snapshot.remoteAddress) else {
            throw SnapshotRestoreError.malformed("addresses")
        }
        guard let profile = profile(terminal: terminal, peer: peer) else {
            throw RestoreRefusal(description: "no protect rule covers \(terminal) -> \(peer) any more")
        }
        guard connection(for: terminal, peer: peer, profile: profile).name == snapshot.connection else {
            throw RestoreRefusal(description: "connection '\(snapshot.connection)' no longer matches profile \(profile.name)")
        }
        let events = try engine.restore(snapshot, now: now)
        for event in events {
            guard let child = event.child else { continue }
            let lifetime = (self.profile(forChild: child.name) ?? profile).espLifetime
            let age = snapshot.children.first { $0.spiInbound == child.spiInbound.rawValue }?.ageSeconds ?? 0
            store.record(event, lifetime: lifetime, asked: asked(event), now: now - age)
            if let sequence = highestOutboundSequences[child.spiOutbound] { store.restoreSequence(spi: child.spiOutbound, highest: sequence) }
        }
        return events.count
    }

    /// Refuses new negotiations (the sealing token is absent): established SAs keep working.
    public var refusesNewNegotiations: String?
    /// Terminals' certificates and keys, by terminal ID, for profiles that authenticate with them.
    public var terminalCredentials: [UInt64: CertificateCredential] = [:]

    /// Why the proxy cannot negotiate for this terminal under this profile, if it cannot.
    func missingCredential(_ terminal: TerminalEntry, profile: ProtectionProfile) -> String? {
        guard profile.authenticatesWithTerminalCertificate, terminalCredentials[terminal.terminalID] == nil else { return nil }
        return "profile '\(profile.name)' authenticates with the terminal's certificate, but terminal \(terminal.terminalID) has none configured"
    }

    // MARK: administration

    /// Deletes a CHILD SA (by either SPI) with its peer, as an administrator asked; the terminal is told
    /// when the engine reports the deletion.
    public func deleteChild(spi: ChildSPI, now: Double, wallClock: Double) -> [ProxyAction]? {
        guard let stored = store.children.values.first(where: { $0.inbound.spi == spi || $0.outbound.spi == spi }) else { return nil }
        return perform(engine.deleteChild(connection: stored.connection, spi: stored.inbound.spi, now: now), now: now, wallClock: wallClock)
    }

    /// Brings the SAs in line with a changed policy at once (RFC 4301 leaves an SA's selectors to the SPD entry
    /// it came from): an SA whose profile now asks for other selectors is replaced by a CHILD SA with the
    /// current ones (CREATE_CHILD_SA on its IKE SA, the old one deleted once the new is made), and one whose
    /// profile no longer protects anything between its terminal and peer is deleted. A pair being negotiated
    /// is left to that negotiation.
    public func applyPolicy(now: Double, wallClock: Double) -> [ProxyAction] {
        var actions: [ProxyAction] = []
        policyRetryAt = nil
        deletingForPolicy.formIntersection(Set(store.children.keys))
        let valid = store.children.values.filter { $0.isValid(now: now) }.sorted { $0.createdAt > $1.createdAt }
        var protecting: [TerminalPeer: [ProtectionProfile]] = [:]
        func profiles(_ stored: StoredChildSA) -> [ProtectionProfile] {
            let pair = pairKey(stored.terminal, stored.peer)
            if let known = protecting[pair] { return known }
            let found = profilesProtecting(terminal: stored.terminal, peer: stored.peer)
            protecting[pair] = found
            return found
        }
        // Every SA of a profile that protects nothing between its terminal and peer any more goes.
        for stored in valid where !profiles(stored).contains(where: { $0.childName == stored.childName }) {
            guard deletingForPolicy.insert(stored.outbound.spi).inserted else { continue }
            count("child_sa_deleted_after_policy_change")
            actions.append(.log("policy: \(stored.childName) no longer protects anything between \(stored.terminal) and \(stored.peer); "
                                + "deleting CHILD SA \(stored.inbound.spi)/\(stored.outbound.spi)"))
            actions += perform(engine.deleteChild(connection: stored.connection, spi: stored.inbound.spi, now: now), now: now, wallClock: wallClock)
        }
        // The newest SA of each profile made for other selectors than the policy now gives is replaced.
        var seen: Set<String> = []
        for stored in valid {
            guard seen.insert("\(stored.terminal) \(stored.peer) \(stored.childName)").inserted, let asked = stored.asked,
                  let profile = profiles(stored).first, let childProfile = profiles(stored).first(where: { $0.childName == stored.childName }) else { continue }
            let current = selectors(terminal: stored.terminal, peer: stored.peer, profile: childProfile.name)
            guard ProtectedTrafficSelectors(local: current.local, remote: current.remote) != asked else { continue }
            let pair = pairKey(stored.terminal, stored.peer)
            if negotiating[pair] != nil || failures[pair].map({ now - $0.at < settings.retryAfterFailure }) == true {
                policyRetryAt = now + 1
                continue
            }
            let (name, notes) = connection(for: stored.terminal, peer: stored.peer, profile: profile)
            negotiating[pair] = now
            count("renegotiated_after_policy_change")
            actions += notes + [.log("policy: CHILD SA \(stored.outbound.spi) of \(stored.terminal) <-> \(stored.peer) was made for other selectors; "
                                     + "negotiating one with the current selectors to replace it")]
            actions += perform(engine.startChild(connection: name, child: stored.childName, now: now), now: now, wallClock: wallClock)
        }
        return actions
    }

    /// When to apply the policy again, after a change that could not reach every SA at once (a negotiation was
    /// under way for the pair, or had just failed): `tick` does, a second later at the soonest.
    private var policyRetryAt: Double?

    /// Deletes every IKE SA (and so every CHILD SA) with the peers.
    public func flush(now: Double, wallClock: Double) -> [ProxyAction] {
        let connections = Set(engine.sessionSummaries.filter(\.established).map(\.connection))
        return connections.sorted().flatMap { perform(engine.deleteIKE(connection: $0, now: now), now: now, wallClock: wallClock) }
    }

    // MARK: packets

    public func receive(from side: LinkSide, packet: [UInt8], now: Double, wallClock: Double) -> [ProxyAction] {
        guard let view = try? IPPacketView(packet) else { return drop("malformed") }
        switch side {
        case .internet: return fromInternet(packet, view: view, now: now, wallClock: wallClock)
        case .terminal: return fromTerminal(packet, view: view, now: now, wallClock: wallClock)
        }
    }

    /// UDP source and destination ports and where the UDP payload starts, for UDP packets that are not later fragments.
    private func udp(_ packet: [UInt8], _ view: IPPacketView) -> (source: UInt16, destination: UInt16, payload: Int)? {
        guard view.upperProtocol == IPProtocolNumber.udp, !view.isLaterFragment, let ports = view.ports(in: packet),
              view.upperOffset + 8 <= view.totalLength else { return nil }
        return (ports.source, ports.destination, view.upperOffset + 8)
    }

    /// UDP to the key-delivery port, whether or not the rest of the UDP header is there.
    private func isToKeyDeliveryPort(_ packet: [UInt8], _ view: IPPacketView) -> Bool {
        view.upperProtocol == IPProtocolNumber.udp && view.ports(in: packet)?.destination == settings.keyDeliveryPort
    }

    private func fromInternet(_ packet: [UInt8], view: IPPacketView, now: Double, wallClock: Double) -> [ProxyAction] {
        let peerBytes = view.source(in: packet), terminalBytes = view.destination(in: packet)
        // Policy rules are written from the terminal's side: look the packet up as the terminal's flow.
        let ports = view.ports(in: packet)
        let isICMP = view.upperProtocol == IPProtocolNumber.icmp || view.upperProtocol == IPProtocolNumber.icmpv6
        let key = FlowKey(isIPv6: view.version == 6, source: AddressKey(terminalBytes), destination: AddressKey(peerBytes),
                          ipProtocol: view.upperProtocol,
                          sourcePort: isICMP ? ports?.source ?? 0 : ports?.destination ?? 0,
                          destinationPort: isICMP ? ports?.destination ?? 0 : ports?.source ?? 0)
        if policy.action(for: key) == .discard { return drop("policy_discard") }
        let udp = udp(packet, view)
        // Judged by the port alone: a datagram to the key-delivery port never reaches a terminal from the
        // Internet, even one whose UDP header is cut short (found by fuzzing: it used to pass unjudged).
        if isToKeyDeliveryPort(packet, view) { return drop("key_delivery_from_internet") }
        guard let udp, udp.destination == 500
                || (udp.destination == 4500 && UDPEncapsulatedKind(payload: packet[udp.payload..<view.totalLength]) == .ike) else {
            count("forwarded_to_terminal")
            return [.forward(.terminal)]
        }
        guard let peer = IPAddress(bytes: peerBytes), let terminalAddress = IPAddress(bytes: terminalBytes) else { return drop("malformed") }
        var actions: [ProxyAction] = []
        let payload = Array(packet[udp.payload..<view.totalLength])
        let isNewSA = payload.count >= 28 && payload[(udp.destination == 4500 ? 4 : 0) + 18] == 34  // IKE_SA_INIT
        guard let terminal = registry.terminal(at: terminalAddress) else {
            // A terminal just removed: the IKE SAs still held in its name are being deleted, and their Delete
            // exchanges (and anything else the peer sends on them meanwhile) are answered; nothing new is made.
            guard !isNewSA, engine.holdsAuthenticatedIKESA(local: terminalAddress, remote: peer) else { return drop("ike_for_unregistered_terminal") }
            count("ike_answered_for_removed_terminal")
            return perform(engine.receive(payload, from: Endpoint(peer, udp.source), to: Endpoint(terminalAddress, udp.destination), now: now),
                           now: now, wallClock: wallClock)
        }
        guard let profile = profile(terminal: terminalAddress, peer: peer) else {
            // No longer protected (the policy changed): an IKE SA still held for the pair goes on until it is
            // deleted, so that its Delete exchanges and liveness checks complete; no new one is made.
            guard !isNewSA, engine.holdsIKESA(local: terminalAddress, remote: peer) else { return drop("ike_without_protect_policy") }
            count("ike_answered_for_terminal")
            return perform(engine.receive(payload, from: Endpoint(peer, udp.source), to: Endpoint(terminalAddress, udp.destination), now: now),
                           now: now, wallClock: wallClock)
        }
        if isNewSA, let reason = refusesNewNegotiations {
            return drop("new_negotiation_refused") + [.log("IKE_SA_INIT from \(peer) for \(terminalAddress) refused: \(reason)")]
        }
        if isNewSA, let reason = missingCredential(terminal, profile: profile) {
            return drop("no_certificate_for_terminal") + [.log("IKE_SA_INIT from \(peer) for \(terminalAddress) refused: \(reason)")]
        }
        if isNewSA, let stored = store.validChild(terminal: terminalAddress, peer: peer, now: now) {
            // The peer starts over while we hold a valid SA: the terminal gets those keys again at once.
            count("stored_sa_set_for_peer_request")
            let (inbound, outbound) = store.resumable(stored)
            actions += keyDelivery(setter(for: terminal).set(inbound, outbound, now: now, wallClock: wallClock), to: terminal)
        }
        actions += connection(for: terminalAddress, peer: peer, profile: profile).notes
        count("ike_answered_for_terminal")
        actions += perform(engine.receive(payload, from: Endpoint(peer, udp.source), to: Endpoint(terminalAddress, udp.destination), now: now),
                           now: now, wallClock: wallClock)
        return actions
    }

    private func fromTerminal(_ packet: [UInt8], view: IPPacketView, now: Double, wallClock: Double) -> [ProxyAction] {
        let terminalBytes = view.source(in: packet), peerBytes = view.destination(in: packet)
        let udp = udp(packet, view)
        if isToKeyDeliveryPort(packet, view) {
            // Key delivery is for us, whatever address it was sent to; it never leaves the terminal link,
            // not even cut short.
            guard let udp else { return drop("malformed_key_delivery") }
            guard let address = IPAddress(bytes: terminalBytes), let terminal = registry.terminal(at: address) ?? departed[address] else {
                return drop("key_delivery_from_unknown_terminal")
            }
            return keyDeliveryFromTerminal(Array(packet[udp.payload..<view.totalLength]), terminal: terminal, now: now, wallClock: wallClock)
        }
        let key = FlowKey(packet: packet, view: view)
        let action = policy.action(for: key)
        switch action {
        case .discard: return drop("policy_discard")
        case .bypass: count("bypassed"); return [.forward(.internet)]
        case .protect: break
        }
        if let udp, udp.destination == 4500 || udp.source == 4500 {
            let payload = packet[udp.payload..<view.totalLength]
            switch UDPEncapsulatedKind(payload: payload) {
            case .keepalive: count("forwarded_keepalive"); return [.forward(.internet)]
            case .esp: return forwardESP(packet, esp: payload, terminal: terminalBytes, now: now, wallClock: wallClock)
            case .ike: return drop("ike_from_terminal")
            case .malformed: return drop("malformed")
            }
        }
        if view.upperProtocol == IPProtocolNumber.esp {
            return forwardESP(packet, esp: packet[view.upperOffset..<view.totalLength], terminal: terminalBytes, now: now, wallClock: wallClock)
        }
        // Plaintext of a protected flow: a start request. The packet itself never goes out.
        guard let terminalAddress = IPAddress(bytes: terminalBytes), let peer = IPAddress(bytes: peerBytes) else { return drop("malformed") }
        var actions = startRequest(terminal: terminalAddress, peer: peer, flow: key, now: now, wallClock: wallClock)
        actions += drop("plaintext_of_protected_flow")
        return actions
    }

    /// ESP from a terminal (`esp` starts at the SPI, in UDP or directly over IP) goes out only under an SA
    /// stored for that terminal; its sequence number is noted so a handed-again SA never reuses one.
    private func forwardESP(_ packet: [UInt8], esp: ArraySlice<UInt8>, terminal terminalBytes: [UInt8], now: Double, wallClock: Double) -> [ProxyAction] {
        let s = esp.startIndex
        guard esp.count >= 8, let terminal = IPAddress(bytes: terminalBytes) else { return drop("esp_of_unknown_sa") }
        let spi = ChildSPI(bytes: Array(esp[s..<(s + 4)]))
        guard store.isOutboundSPI(spi, of: terminal) else {
            // Sent on the old SA just before the terminal had the new one: the peer still takes it for a while.
            if store.isRecentlyReplacedSPI(spi, of: terminal, now: now) { count("forwarded_esp_of_replaced_sa"); return [.forward(.internet)] }
            return drop("esp_of_unknown_sa") + noteOnce("esp \(spi)", "ESP from \(terminal) on SPI \(spi) dropped: no SA of this terminal has it "
                                                         + "(said once per SPI; counted as esp_of_unknown_sa)")
                + (registry.terminal(at: terminal).map { deleteStale(spi, .outbound, terminal: $0, now: now, wallClock: wallClock) } ?? [])
        }
        store.noteOutbound(spi: spi, sequenceLow: esp[(s + 4)..<(s + 8)].reduce(0) { $0 << 8 | UInt32($1) })
        count("forwarded_esp")
        return [.forward(.internet)]
    }

    /// A terminal needs an SA with a peer (a plaintext packet of a protected flow, or an ACQUIRE).
    /// `flow`, when known, is the packet's or the ACQUIRE's: its rule's profile names the CHILD SA it needs (made
    /// on the pair's IKE SA when missing), a stored SA that takes it has its keys set again, and a flow that the
    /// stored SA of its profile does not take is refused with the reason rather than answered with useless keys.
    public func startRequest(terminal address: IPAddress, peer: IPAddress, flow: FlowKey? = nil, now: Double, wallClock: Double) -> [ProxyAction] {
        guard let terminal = registry.terminal(at: address) else { return drop("start_request_from_unregistered_terminal") }
        guard let profile = profile(terminal: address, peer: peer) else { return drop("start_request_without_protect_policy") }
        let pair = pairKey(address, peer)
        // The flow's own profile names the CHILD SA it needs; the pair's first profile sets up the IKE SA.
        var wanted = profile
        if let flow, case .protect(let name) = policy.action(for: flow), let flowProfile = profiles[name] { wanted = flowProfile }
        let valid = store.validChildren(terminal: address, peer: peer, now: now)
        let covering = flow.flatMap { flow in
            valid.last { stored in
                stored.outbound.covers(source: address.bytes[...], destination: peer.bytes[...], ipProtocol: flow.ipProtocol,
                                       ports: (flow.sourcePort, flow.destinationPort))
            }
        }
        let sameChild = valid.last { $0.childName == wanted.childName }
        var renegotiation: [ProxyAction] = []
        if let stored = covering ?? sameChild ?? (flow == nil ? valid.last : nil) {
            if let flow, covering == nil {
                let current = selectors(terminal: address, peer: peer, profile: wanted.name)
                let asked = ProtectedTrafficSelectors(local: current.local, remote: current.remote)
                guard stored.childName == wanted.childName, let was = stored.asked, was != asked,
                      TrafficSelector.cover(current.local, current.remote, source: address.bytes[...], destination: peer.bytes[...],
                                            ipProtocol: flow.ipProtocol, ports: (flow.sourcePort, flow.destinationPort)) else {
                    // Setting these keys again would not help: the SA does not take this flow, and the policy gives
                    // the same selectors as when it was made (the peer narrowed them).
                    count("start_request_outside_stored_sa")
                    return noteOnce("outside \(stored.outbound.spi) \(flow.ipProtocol)",
                        "start request \(address) -> \(peer): the flow (protocol \(flow.ipProtocol), ports \(flow.sourcePort) -> "
                        + "\(flow.destinationPort)) is protected by the policy but outside the stored SA \(stored.outbound.spi) "
                        + "(\(stored.outbound.sourceSelectors.map(\.description).joined(separator: " ")) -> "
                        + "\(stored.outbound.destinationSelectors.map(\.description).joined(separator: " "))), which the peer narrowed "
                        + "to that; its packets are dropped")
                }
                // The policy changed since this SA was made and now takes the flow: a CHILD SA with the current
                // selectors is negotiated below, and replaces the old one once made.
                renegotiation = [.log("start request \(address) -> \(peer): the policy changed since SA \(stored.outbound.spi) was made and "
                                      + "now protects this flow; negotiating a CHILD SA with the current selectors to replace it")]
            } else {
                // A valid SA takes the flow: set its keys into the terminal (it may have lost them); no negotiation.
                guard now - (lastReuse[pair] ?? -.infinity) >= settings.reuseInterval else { count("start_request_while_setting"); return [] }
                lastReuse[pair] = now
                count("stored_sa_reused")
                let (inbound, outbound) = store.resumable(stored)
                return [.log("start request \(address) -> \(peer): valid stored SA \(stored.outbound.spi), setting its keys "
                             + "(sending resumes after sequence number \(outbound.sequenceStart))")]
                    + keyDelivery(setter(for: terminal).set(inbound, outbound, now: now, wallClock: wallClock), to: terminal)
            }
        }
        if negotiating[pair] != nil {
            count("start_request_joined_negotiation")
            return []
        }
        if let failure = failures[pair], now - failure.at < settings.retryAfterFailure {
            count("start_request_held_after_failure")
            return []
        }
        if let reason = refusesNewNegotiations {
            return drop("new_negotiation_refused") + [.log("start request \(address) -> \(peer) refused: \(reason)")]
        }
        if let reason = missingCredential(terminal, profile: profile) {
            return drop("no_certificate_for_terminal") + [.log("start request \(address) -> \(peer) refused: \(reason)")]
        }
        if let refusal = overNegotiationLimit(terminal: terminal, peer: peer, now: now) { return refusal }
        negotiating[pair] = now
        count("negotiations_started")
        if !renegotiation.isEmpty { count("renegotiated_after_policy_change") }
        let (name, notes) = connection(for: address, peer: peer, profile: profile)
        let which = wanted.name == profile.name ? profile.name : "\(wanted.name), on the IKE SA of \(profile.name)"
        let starting: [ProxyAction] = renegotiation.isEmpty ? [.log("start request \(address) -> \(peer): no SA, negotiating in the terminal's name (\(which))")] : []
        return notes + renegotiation + starting
            + perform(engine.startChild(connection: name, child: wanted.childName, now: now), now: now, wallClock: wallClock)
    }

    /// The drop (and, at most every 10 s per terminal, a log line) for a start request that would pass one of the
    /// negotiation limits; nil when it may go on.
    private func overNegotiationLimit(terminal: TerminalEntry, peer: IPAddress, now: Double) -> [ProxyAction]? {
        let own = negotiating.keys.filter { registry.entries[$0.terminal]?.terminalID == terminal.terminalID }.count
        let limit: String
        if own >= settings.maxNegotiationsPerTerminal {
            limit = "\(own) negotiations are under way in its name already (max_negotiations_per_terminal \(settings.maxNegotiationsPerTerminal))"
        } else if negotiating.count >= settings.maxNegotiations {
            limit = "\(negotiating.count) negotiations are under way already (max_negotiations \(settings.maxNegotiations))"
        } else {
            return nil
        }
        var actions = drop("start_request_over_negotiation_limit")
        if now - (limitLogged[terminal.terminalID] ?? -.infinity) >= 10 {
            limitLogged[terminal.terminalID] = now
            actions.append(.log("start request \(terminal.address) -> \(peer) refused: \(limit); later ones are counted, "
                                + "start_request_over_negotiation_limit"))
        }
        return actions
    }

    private func keyDeliveryFromTerminal(_ datagram: [UInt8], terminal: TerminalEntry, now: Double, wallClock: Double) -> [ProxyAction] {
        let keySetter = setter(for: terminal)
        switch keySetter.channel.receive(datagram, now: now, wallClock: wallClock) {
        case .rejected(let reason): return drop("key_delivery_\(reason.rawValue)")
        case .duplicate(let acknowledgement): return keyDelivery([acknowledgement], to: terminal)
        case .acknowledged(let message):
            return keyDelivery(keySetter.acknowledged(message, now: now, wallClock: wallClock), to: terminal)
        case .message(let message, let acknowledgement):
            var actions = keyDelivery([acknowledgement], to: terminal)
            switch message {
            case .acquire(let flow):
                count("acquires")
                // The terminal asks for every flow it has no SA for; only protected flows get one.
                let key = FlowKey(isIPv6: flow.source.isIPv6, source: AddressKey(flow.source.bytes), destination: AddressKey(flow.destination.bytes),
                                  ipProtocol: flow.ipProtocol, sourcePort: flow.sourcePort, destinationPort: flow.destinationPort)
                guard registry.terminal(at: flow.source)?.terminalID == terminal.terminalID, case .protect = policy.action(for: key) else {
                    count("acquire_for_unprotected_flow")
                    break
                }
                actions += startRequest(terminal: flow.source, peer: flow.destination, flow: key, now: now, wallClock: wallClock)
            case .expire(let spi, let direction, let hard):
                guard let stored = store.children.values.first(where: { registry.terminal(at: $0.terminal)?.terminalID == terminal.terminalID
                    && ($0.inbound.spi == spi || $0.outbound.spi == spi) }) else { break }
                actions.append(.log("terminal \(terminal.terminalID): \(hard ? "hard" : "soft") expiry of \(direction.rawValue) SA \(spi)"))
                actions += perform(hard ? engine.deleteChild(connection: stored.connection, spi: stored.inbound.spi, now: now)
                                        : engine.rekeyChild(connection: stored.connection, spi: stored.inbound.spi, now: now),
                                   now: now, wallClock: wallClock)
            case .status(let entries):
                // Kept per SA for the operators (`ikeproxy sas`): only the terminal sees both directions.
                let unknown = entries.filter { entry in
                    !store.recordUsage(spi: entry.spi, packets: entry.packets, octets: entry.bytes,
                                       terminal: { self.registry.terminal(at: $0)?.terminalID == terminal.terminalID }, now: now)
                }
                if !unknown.isEmpty { count("status_of_unknown_sa") }
                actions.append(.log("terminal \(terminal.terminalID) status: \(entries.count) SAs, "
                                    + "\(entries.reduce(0) { $0 + $1.packets }) packets"
                                    + (unknown.isEmpty ? "" : ", \(unknown.count) of SAs the proxy does not hold")))
                // Those are stale (the proxy lost its state, or deleted them and the terminal missed it): they go.
                for entry in unknown where !(entry.direction == .outbound && store.isRecentlyReplacedSPI(entry.spi, of: terminal.address, now: now)) {
                    actions += deleteStale(entry.spi, entry.direction, terminal: terminal, now: now, wallClock: wallClock)
                }
                actions += setAgainIfLost(terminal: terminal, reported: Set(entries.map(\.spi)), now: now, wallClock: wallClock)
            case .addSA, .deleteSA, .flush, .acknowledge:
                count("key_delivery_unexpected")
            }
            return actions
        }
    }

    /// A registered terminal holds an SA the proxy does not (the proxy lost its state, say, restarted without a
    /// store; or the terminal missed a deletion): it sends ESP on it, or its STATUS lists it. Nothing sent on such
    /// an SA will ever leave, and as the terminal has an SA it sends no plaintext that would start a
    /// negotiation. It is told to delete the SA, at most every 10 s per SA: its next packets of the flow are then
    /// a start request.
    private func deleteStale(_ spi: ChildSPI, _ direction: ESPDirection, terminal: TerminalEntry, now: Double, wallClock: Double) -> [ProxyAction] {
        let key = "\(terminal.terminalID) \(spi) \(direction.rawValue)"
        guard now - (staleDeleteSent[key] ?? -.infinity) >= 10 else { return [] }
        if staleDeleteSent.count >= 4096 { staleDeleteSent = staleDeleteSent.filter { now - $0.value < 10 } }
        staleDeleteSent[key] = now
        count("stale_sa_deleted_in_terminal")
        return [.log("terminal \(terminal.terminalID) holds \(direction.rawValue) SA \(spi), which the proxy does not: telling it to delete "
                     + "the SA, so that its next packets start a negotiation")]
            + keyDelivery(setter(for: terminal).deleteUnknown(spi, direction: direction, now: now, wallClock: wallClock), to: terminal)
    }

    /// A terminal whose STATUS lists none of the SAs the proxy set into it has lost them (it restarted, or its
    /// agent did): the newest valid SA of each of its CHILD SAs is set again at once, as a start request would
    /// (sending resumes above the highest sequence number forwarded), instead of waiting for its next packet
    /// while ESP from the peer is dropped. Not while key delivery to it is still unacknowledged: the STATUS may
    /// then predate keys on their way.
    private func setAgainIfLost(terminal: TerminalEntry, reported: Set<ChildSPI>, now: Double, wallClock: Double) -> [ProxyAction] {
        let keySetter = setter(for: terminal)
        guard keySetter.channel.unacknowledgedCount == 0 else { return [] }
        // Its addresses the proxy still acts for (not those the terminal prefixes no longer cover).
        let addresses = registry.entries.values.filter { $0.terminalID == terminal.terminalID && registry.terminal(at: $0.address) != nil }
            .map(\.address)
        var newest: [String: StoredChildSA] = [:]
        for address in addresses {
            for sa in store.children.values where sa.terminal == address && sa.isValid(now: now) {
                let key = "\(sa.terminal) \(sa.peer) \(sa.childName)"
                if newest[key].map({ $0.createdAt < sa.createdAt }) ?? true { newest[key] = sa }
            }
        }
        let held = newest.values.sorted { $0.createdAt < $1.createdAt }
        guard !held.isEmpty, !held.contains(where: { reported.contains($0.inbound.spi) || reported.contains($0.outbound.spi) }) else { return [] }
        count("terminal_lost_its_sas")
        var actions: [ProxyAction] = [.log("terminal \(terminal.terminalID) reports none of the \(held.count) SA(s) the proxy set into it "
                                           + "(it restarted?): setting their keys again")]
        for sa in held {
            lastReuse[pairKey(sa.terminal, sa.peer)] = now
            count("stored_sa_reused")
            let (inbound, outbound) = store.resumable(sa)
            actions += keyDelivery(keySetter.set(inbound, outbound, now: now, wallClock: wallClock), to: terminal)
        }
        return actions
    }

    // MARK: engine and key-delivery output

    private func keyDelivery(_ output: TerminalKeySetter.Output, to terminal: TerminalEntry) -> [ProxyAction] {
        output.log.map { ProxyAction.log($0) } + keyDelivery(output.datagrams, to: terminal)
    }

    private func keyDelivery(_ datagrams: [[UInt8]], to terminal: TerminalEntry) -> [ProxyAction] {
        let destination = terminal.keyDeliveryAddress
        let source = destination.isIPv6 ? settings.keyDeliverySourceIPv6 : settings.keyDeliverySourceIPv4
        return datagrams.map {
            .send(.terminal, IPHeaderBuilder.udpPacket(source: source.bytes, destination: destination.bytes,
                                                      sourcePort: settings.keyDeliveryPort, destinationPort: terminal.keyDeliveryPort, payload: $0))
        }
    }

    private func perform(_ engineActions: [EngineAction], now: Double, wallClock: Double) -> [ProxyAction] {
        var actions: [ProxyAction] = []
        var deferred: [StoredChildSA] = []
        for action in engineActions {
            switch action {
            case .send(let datagram):
                // IKE leaves from the terminal's address: the peer cannot tell it from the terminal itself.
                actions.append(.send(.internet, IPHeaderBuilder.udpPacket(source: datagram.source.address.bytes,
                                                                          destination: datagram.destination.address.bytes,
                                                                          sourcePort: datagram.source.port,
                                                                          destinationPort: datagram.destination.port, payload: datagram.payload)))
            case .event(let event):
                actions.append(.event(event))
                // SAs made, rekeyed and deleted, by kind, for the status and the metrics.
                count(event.kind.rawValue)
                let terminalAddress = event.local.address, peer = event.remote.address
                let profile = event.child.flatMap { self.profile(forChild: $0.name) } ?? profile(terminal: terminalAddress, peer: peer)
                let lifetime = profile?.espLifetime ?? ESPLifetime()
                let added = store.record(event, lifetime: lifetime, asked: asked(event), now: now)
                let pair = pairKey(terminalAddress, peer)
                switch event.kind {
                case .childEstablished:
                    negotiating[pair] = nil
                    failures[pair] = nil
                    if let added { deferred += [added] }
                case .ikeFailed, .childFailed:
                    let reason = event.detail ?? "no reason given"
                    if negotiating.removeValue(forKey: pair) != nil || event.kind == .childFailed {
                        count("negotiation_failed")
                        actions.append(.log("negotiation \(terminalAddress) -> \(peer) failed: \(reason); start requests wait "
                                            + "\(Int(settings.retryAfterFailure)) s"))
                    }
                    failures[pair] = (now, reason)
                case .ikeDeleted: negotiating[pair] = nil
                default: break
                }
                if let terminal = registry.terminal(at: terminalAddress) {
                    actions += keyDelivery(setter(for: terminal).handle(event, lifetime: lifetime, now: now, wallClock: wallClock), to: terminal)
                }
            case .drop(let reason): count("ike_drop_" + reason.key); actions.append(.log("IKE message dropped: \(reason)"))
            case .log(let text): actions.append(.log(text))
            case .checkRevocation(let request): actions.append(.checkRevocation(request))
            }
        }
        // After the new SAs' keys are on their way to the terminal.
        for added in deferred { actions += retireSupersededChildren(by: added, now: now, wallClock: wallClock) }
        return actions
    }

    /// What the policy asked for the CHILD SA of this event: for a rekey, what its predecessor was asked for (a
    /// rekey keeps its selectors); else the selectors of its configuration as the engine now has it.
    private func asked(_ event: SAEvent) -> ProtectedTrafficSelectors? {
        guard let child = event.child else { return nil }
        if let old = child.replaces { return store.children[old.outbound]?.asked }
        guard let configuration = engine.connection(named: event.connection)?.children.first(where: { $0.name == child.name }) else { return nil }
        return ProtectedTrafficSelectors(local: configuration.localTrafficSelectors, remote: configuration.remoteTrafficSelectors)
    }

    /// A CHILD SA made from a changed policy supersedes the SAs of the same profile made before the change: they
    /// are deleted with the peer (the terminal already holds the new one, which covers what it needs).
    private func retireSupersededChildren(by added: StoredChildSA, now: Double, wallClock: Double) -> [ProxyAction] {
        var actions: [ProxyAction] = []
        for old in store.validChildren(terminal: added.terminal, peer: added.peer, now: now)
        where old.childName == added.childName && old.outbound.spi != added.outbound.spi && old.asked != nil && old.asked != added.asked {
            count("child_sa_replaced_after_policy_change")
            actions.append(.log("CHILD SA \(old.inbound.spi)/\(old.outbound.spi) was made before the policy changed; "
                                + "\(added.inbound.spi)/\(added.outbound.spi) replaces it, deleting it"))
            actions += perform(engine.deleteChild(connection: old.connection, spi: old.inbound.spi, now: now), now: now, wallClock: wallClock)
        }
        return actions
    }

    /// The OCSP answer for a `.checkRevocation` action: the held IKE_AUTH goes on or fails.
    public func revocationChecked(_ id: UInt64, _ status: RevocationStatus, now: Double, wallClock: Double) -> [ProxyAction] {
        perform(engine.revocationChecked(id, status, now: now), now: now, wallClock: wallClock)
    }

    /// Timers: IKE retransmissions and rekeys, key-delivery retransmissions, SA expiry.
    public func tick(now: Double, wallClock: Double) -> [ProxyAction] {
        var actions = perform(engine.tick(now: now), now: now, wallClock: wallClock)
        if let at = policyRetryAt, now >= at { actions += applyPolicy(now: now, wallClock: wallClock) }
        for (id, (keySetter, entry)) in setters {
            let departedEntry = departed[entry.keyDeliveryAddress] ?? departed[entry.address]
            guard let terminal = registry.terminal(at: entry.keyDeliveryAddress) ?? registry.terminal(at: entry.address)
                    ?? departedEntry.flatMap({ $0.terminalID == id ? $0 : nil }) else { continue }
            let (datagrams, abandoned) = keySetter.channel.tick(now: now, wallClock: wallClock)
            actions += keyDelivery(datagrams, to: terminal)
            for message in abandoned {
                count("key_delivery_abandoned")
                actions.append(.log("terminal \(terminal.terminalID) never acknowledged \(message.kind)"))
            }
        }
        // A removed terminal that acknowledged its FLUSH (or never will) is forgotten.
        for (address, entry) in departed where setters[entry.terminalID].map({ $0.setter.channel.unacknowledgedCount == 0 }) ?? true {
            departed[address] = nil
        }
        for sa in store.expire(now: now) {
            count("sa_expired")
            if engine.holdsChild(inbound: sa.inbound.spi) {
                // Deleted with the peer too (as strongSwan does at life_time), or it would keep sending on it; the
                // Delete exchange's event deletes it in the terminal.
                actions.append(.log("SA \(sa.inbound.spi)/\(sa.outbound.spi) of terminal \(sa.terminal) reached its hard lifetime: "
                                    + "deleting the CHILD SA with the peer and in the terminal"))
                actions += perform(engine.deleteChild(connection: sa.connection, spi: sa.inbound.spi, now: now), now: now, wallClock: wallClock)
                continue
            }
            actions.append(.log("SA \(sa.inbound.spi)/\(sa.outbound.spi) of terminal \(sa.terminal) reached its hard lifetime"))
            if let terminal = registry.terminal(at: sa.terminal) {
                actions += keyDelivery(setter(for: terminal).delete(inbound: sa.inbound.spi, outbound: sa.outbound.spi, now: now, wallClock: wallClock),
                                       to: terminal)
            }
        }
        // A negotiation that never finished does not block later start requests for ever. The engine reports a
        // failure itself (IKE_SA_INIT and IKE_AUTH each give up after their retransmissions); this is the net
        // under that, and says so when it catches one.
        let stale = max(engine.settings.halfOpenTimeout, 2 * engine.settings.requestGiveUpTime) + 5
        for (pair, started) in negotiating where now - started > stale {
            negotiating[pair] = nil
            count("negotiation_abandoned")
            actions.append(.log("negotiation \(pair.terminal) -> \(pair.peer) still unfinished after \(Int(now - started)) s: abandoned; "
                                + "start requests may begin another"))
        }
        for (pair, failure) in failures where now - failure.at >= settings.retryAfterFailure { failures[pair] = nil }
        return actions
    }
}
