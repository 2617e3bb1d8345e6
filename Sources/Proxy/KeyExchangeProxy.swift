import ESP
import IKEv2
import KeyDelivery
import Packets

/// The key-exchange proxy, pure: packets from either side and clock ticks in, packets to send out.
/// It judges each packet against the policy (the two flows of the design: `PacketJudgment.swift`,
/// docs/proxy.md), runs IKE in terminals' names through its IKEv2 engines, keeps the SA store, and sets
/// keys into terminals over key delivery. No sockets: the data path (AF_PACKET, or virtual links in
/// `ikeproxy demo`) is outside. This type coordinates; each concern lives in its own part:
/// `NegotiationsInFlight` (negotiations and their limits), `TerminalKeyDeliveries` (channels to the
/// terminals), `PairPolicies` (what the policy says per terminal and peer), and the extensions in
/// `Coordination/` (key delivery from terminals, administration, policy application, restore).
public final class KeyExchangeProxy {
    public var policy: PolicyTable { didSet { pairPolicies.forget() } }
    public var registry: TerminalRegistry
    /// By name; a profile changed here (a reload of its CAs and CRLs) applies from the next negotiation.
    public var profiles: [String: ProtectionProfile] { didSet { pairPolicies.forget() } }
    public let settings: ProxySettings
    /// One engine, or several sharing the IKE SAs by SPI (`EngineShards`) when `engineCount` > 1.
    public let engines: EngineShards
    /// Set by a program that reads packets in batches (the daemon): IKE datagrams for the engines wait until
    /// `answerHeldIKE(at:)` at the end of the batch, where the engines take them side by side, `run` choosing
    /// the threads (`EngineShards.receive(batch:now:run:)`). Nil: each datagram is answered at once.
    public var batchesIKE: ((Int, (Int) -> Void) -> Void)?
    /// IKE datagrams of the current batch, held for `answerHeldIKE(at:)`, which answers them at its time.
    var heldIKE: [EngineShards.Datagram] = []
    /// Answers that made a CHILD SA, waiting until the terminal holds its inbound SA.
    var answersAwaitingKeys = AnswersAwaitingKeys()
    /// Seconds from a start request to the terminal's CHILD SA, of the negotiations the proxy started since the last
    /// `takeTimings()` (at most the last 1,000).
    var negotiationTimes: [Double] = []

    /// How long the negotiations the proxy started took, and key delivery's round trips, since the last call: the
    /// daemon's histograms.
    public func takeTimings() -> (negotiations: [Double], keyDeliveryRoundTrips: [Double]) {
        defer { negotiationTimes.removeAll() }
        return (negotiationTimes, keyDeliveries.takeRoundTrips())
    }
    public let store = SAStore()
    /// Refuses new negotiations (the sealing token is absent): established SAs keep working.
    public var refusesNewNegotiations: String?
    /// Terminals' certificates and keys, by terminal ID, for profiles that authenticate with them.
    public var terminalCredentials: [UInt64: CertificateCredential] = [:]
    /// Counts by name (`ProxyCounter`, `PacketDropReason`, `SAEvent.Kind`, the engine's drops): the metrics.
    public internal(set) var counters: [String: Int] = [:]

    var pairPolicies = PairPolicies()
    var negotiations: NegotiationsInFlight
    var keyDeliveries: TerminalKeyDeliveries
    /// When a stored SA was last handed to a terminal, per terminal and peer (at most every `reuseInterval`).
    var lastReuse: [TerminalPeer: Double] = [:]
    /// When a terminal was last told to delete an SA the proxy does not hold, by terminal ID, SPI and direction.
    var staleDeleteSent: [String: Double] = [:]
    /// CHILD SAs (by outbound SPI) whose deletion a policy change asked for: asked once, until the SA is gone.
    var deletingForPolicy: Set<ChildSPI> = []
    /// When to apply the policy again, after a change that could not reach every SA at once (a negotiation was
    /// under way for the pair, or had just failed): `tick` does, a second later at the soonest.
    var policyRetryAt: Double?
    /// Log lines said once (by key), for conditions that repeat with every packet of a flow.
    private var saidOnce: Set<String> = []

    public init(
        policy: PolicyTable, registry: TerminalRegistry, profiles: [ProtectionProfile], settings: ProxySettings = ProxySettings(),
        engineSettings: EngineSettings = EngineSettings(), engineCount: Int = 1, random: RandomSource = SystemRandom(),
        epoch: UInt64 = 1
    ) {
        self.policy = policy
        self.registry = registry
        self.profiles = Dictionary(profiles.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.settings = settings
        negotiations = NegotiationsInFlight(settings: settings)
        keyDeliveries = TerminalKeyDeliveries(settings: settings, epoch: epoch, logLevel: engineSettings.logLevel)
        engines = EngineShards(connections: [], settings: engineSettings, count: engineCount, random: random)
    }

    func count(_ counter: ProxyCounter, by amount: Int = 1) { counters[counter.rawValue, default: 0] += amount }

    func drop(_ reason: PacketDropReason, log: String? = nil) -> [ProxyAction] {
        counters[reason.counterName, default: 0] += 1
        return [.drop(reason)] + (log.map { [.log($0)] } ?? [])
    }

    func noteOnce(_ key: String, _ line: String) -> [ProxyAction] {
        guard saidOnce.count < 4096, saidOnce.insert(key).inserted else { return [] }
        return [.log(line)]
    }

    public var hasNegotiationsInFlight: Bool { !negotiations.isEmpty }

    /// Whether a negotiation for this terminal and peer is under way.
    public func isNegotiating(terminal: IPAddress, peer: IPAddress) -> Bool {
        negotiations.isUnderWay(TerminalPeer(terminal: terminal, peer: peer))
    }

    /// Key-delivery messages sent to this terminal and not acknowledged yet.
    public func unacknowledgedKeyDeliveries(terminalID: UInt64) -> Int { keyDeliveries.unacknowledged(terminalID: terminalID) }

    /// Key-delivery output for a terminal, through its channel, as actions.
    func deliver(to terminal: TerminalEntry, _ make: (TerminalKeySetter) -> TerminalKeySetter.Output) -> [ProxyAction] {
        keyDeliveries.actions(make(keyDeliveries.setter(for: terminal)), to: terminal)
    }

    /// Why the proxy cannot negotiate for this terminal under this profile, if it cannot.
    func missingCredential(_ terminal: TerminalEntry, profile: ProtectionProfile) -> String? {
        guard profile.authenticatesWithTerminalCertificate, terminalCredentials[terminal.terminalID] == nil else { return nil }
        return "profile '\(profile.name)' authenticates with the terminal's certificate, but terminal \(terminal.terminalID) has none configured"
    }

    // MARK: packets

    /// Judges one IP packet received on `side` (`PacketJudgment.swift`) and carries the verdict out.
    public func receive(from side: LinkSide, packet: [UInt8], at time: ClockReading) -> [ProxyAction] {
        guard let view = try? IPPacketView(packet) else { return drop(.malformed) }
        switch side {
        case .internet: return carryOut(judgeFromInternet(packet, view: view, now: time.monotonic), at: time)
        case .terminal: return carryOut(judgeFromTerminal(packet, view: view, now: time.monotonic), at: time)
        }
    }

    private func carryOut(_ verdict: InternetPacketVerdict, at time: ClockReading) -> [ProxyAction] {
        switch verdict {
        case .drop(let reason, let log): return drop(reason, log: log)
        case .forwardToTerminal:
            count(.forwardedToTerminal)
            return [.forward(.terminal)]
        case .answerOnHeldIKESA(let datagram, let counted):
            count(counted)
            return answer(datagram, at: time)
        case .negotiate(let datagram, let terminal, let profile, let storedSA):
            var actions: [ProxyAction] = []
            if let storedSA {
                // The peer starts over while we hold a valid SA: the terminal gets those keys again at once.
                count(.storedSASetForPeerRequest)
                let (inbound, outbound) = store.resumable(storedSA)
                actions += deliver(to: terminal) { $0.set(inbound, outbound, at: time) }
            }
            actions += connection(for: datagram.terminal.address, peer: datagram.peer.address, profile: profile).notes
            count(.ikeAnsweredForTerminal)
            return actions + answer(datagram, at: time)
        }
    }

    /// The engines' answer to an IKE datagram: now, or held until the end of the batch (`batchesIKE`).
    private func answer(_ datagram: IKEDatagramForTerminal, at time: ClockReading) -> [ProxyAction] {
        let datagram = EngineShards.Datagram(datagram.payload, from: datagram.peer, to: datagram.terminal)
        guard batchesIKE != nil else { return perform(engines.receive(datagram, now: time.monotonic), at: time) }
        heldIKE.append(datagram)
        return []
    }

    /// The engines' answers to the IKE datagrams held in this batch (`batchesIKE`), carried out in the order the
    /// datagrams came: the same as answering each at once, with the engines working side by side.
    public func answerHeldIKE(at time: ClockReading) -> [ProxyAction] {
        guard let run = batchesIKE, !heldIKE.isEmpty else { return [] }
        let held = heldIKE
        heldIKE.removeAll(keepingCapacity: true)
        return engines.receive(batch: held, now: time.monotonic, run: run).flatMap { perform($0, at: time) }
    }

    private func carryOut(_ verdict: TerminalPacketVerdict, at time: ClockReading) -> [ProxyAction] {
        switch verdict {
        case .drop(let reason): return drop(reason)
        case .keyDelivery(let datagram, let terminal): return keyDeliveryFromTerminal(datagram, terminal: terminal, at: time)
        case .bypass:
            count(.bypassed)
            return [.forward(.internet)]
        case .forwardKeepalive:
            count(.forwardedKeepalive)
            return [.forward(.internet)]
        case .forwardESP(let spi, let sequenceLow):
            // Noted so that an SA handed again never reuses a sequence number.
            store.noteOutbound(spi: spi, sequenceLow: sequenceLow)
            count(.forwardedESP)
            return [.forward(.internet)]
        case .forwardESPOfReplacedSA:
            count(.forwardedESPOfReplacedSA)
            return [.forward(.internet)]
        case .espOfUnknownSA(let spi, let terminal):
            return drop(.espOfUnknownSA)
                + noteOnce(
                    "esp \(spi)",
                    "ESP from \(terminal) on SPI \(spi) dropped: no SA of this terminal has it "
                        + "(said once per SPI; counted as esp_of_unknown_sa)")
                + (registry.terminal(at: terminal).map { deleteStale(spi, .outbound, terminal: $0, at: time) } ?? [])
        case .startRequest(let terminal, let peer, let flow):
            return startRequest(terminal: terminal, peer: peer, flow: flow, at: time) + drop(.plaintextOfProtectedFlow)
        }
    }

    /// A terminal needs an SA with a peer (a plaintext packet of a protected flow, or an ACQUIRE): judged by
    /// `judgeStartRequest`, then carried out here.
    public func startRequest(terminal address: IPAddress, peer: IPAddress, flow: FlowKey? = nil, at time: ClockReading) -> [ProxyAction] {
        let pair = TerminalPeer(terminal: address, peer: peer)
        switch judgeStartRequest(terminal: address, peer: peer, flow: flow, now: time.monotonic) {
        case .drop(let reason, let log): return drop(reason, log: log)
        case .settingAlready:
            count(.startRequestWhileSetting)
            return []
        case .setStoredSA(let stored, let terminal):
            lastReuse[pair] = time.monotonic
            count(.storedSAReused)
            let (inbound, outbound) = store.resumable(stored)
            return [
                .log(
                    "start request \(address) -> \(peer): valid stored SA \(stored.outbound.spi), setting its keys "
                        + "(sending resumes after sequence number \(outbound.sequenceStart))")
            ]
                + deliver(to: terminal) { $0.set(inbound, outbound, at: time) }
        case .outsideStoredSA(let stored, let flow):
            count(.startRequestOutsideStoredSA)
            return noteOnce(
                "outside \(stored.outbound.spi) \(flow.ipProtocol)",
                "start request \(address) -> \(peer): the flow (protocol \(flow.ipProtocol), ports \(flow.sourcePort) -> "
                    + "\(flow.destinationPort)) is protected by the policy but outside the stored SA \(stored.outbound.spi) "
                    + "(\(stored.outbound.sourceSelectors.map(\.description).joined(separator: " ")) -> "
                    + "\(stored.outbound.destinationSelectors.map(\.description).joined(separator: " "))), which the peer narrowed "
                    + "to that; its packets are dropped")
        case .joinNegotiation:
            count(.startRequestJoinedNegotiation)
            return []
        case .heldAfterFailure:
            count(.startRequestHeldAfterFailure)
            return []
        case .overLimit(let limit, let terminal):
            var actions = drop(.startRequestOverNegotiationLimit)
            if negotiations.shouldLogLimit(terminalID: terminal.terminalID, now: time.monotonic) {
                actions.append(
                    .log(
                        "start request \(terminal.address) -> \(peer) refused: \(limit); later ones are counted, "
                            + "start_request_over_negotiation_limit"))
            }
            return actions
        case .negotiate(_, let profile, let wanted, let replacing):
            negotiations.begin(pair, now: time.monotonic)
            count(.negotiationsStarted)
            let (name, notes) = connection(for: address, peer: peer, profile: profile)
            var starting: [ProxyAction] = []
            if let replacing {
                count(.renegotiatedAfterPolicyChange)
                starting.append(
                    .log(
                        "start request \(address) -> \(peer): the policy changed since SA \(replacing.outbound.spi) was made and "
                            + "now protects this flow; negotiating a CHILD SA with the current selectors to replace it"))
            } else if engines.settings.logLevel <= .info {
                let which = wanted.name == profile.name ? profile.name : "\(wanted.name), on the IKE SA of \(profile.name)"
                starting.append(.log("start request \(address) -> \(peer): no SA, negotiating in the terminal's name (\(which))"))
            }
            return notes + starting
                + perform(engines.startChild(connection: name, child: wanted.childName, now: time.monotonic), at: time)
        }
    }

    // MARK: timers

    /// The OCSP answer for a `.checkRevocation` action: the held IKE_AUTH goes on or fails.
    public func revocationChecked(_ id: UInt64, _ status: RevocationStatus, at time: ClockReading) -> [ProxyAction] {
        perform(engines.revocationChecked(id, status, now: time.monotonic), at: time)
    }

    /// Timers: IKE retransmissions and rekeys, key-delivery retransmissions, SA expiry.
    public func tick(at time: ClockReading) -> [ProxyAction] {
        var actions = perform(engines.tick(now: time.monotonic), at: time)
        let late = answersAwaitingKeys.expire(now: time.monotonic)
        if late.count > 0 {
            count(.ikeAnswerSentBeforeKeys, by: late.count)
            actions.append(
                .log(
                    "\(late.count) IKE answer(s) sent before the terminal acknowledged the new inbound SA "
                        + "(waited \(settings.answerHoldLimit) s; counted as ike_answer_sent_before_keys)"))
            actions += late.packets
        }
        if let at = policyRetryAt, time.monotonic >= at { actions += applyPolicy(at: time) }
        let delivery = keyDeliveries.tick(at: time, registry: registry)
        actions += delivery.actions
        for (terminal, message) in delivery.abandoned {
            count(.keyDeliveryAbandoned)
            actions.append(.log("terminal \(terminal.terminalID) never acknowledged \(message.kind)"))
        }
        for sa in store.expire(now: time.monotonic) {
            count(.saExpired)
            if engines.holdsChild(inbound: sa.inbound.spi) {
                // Deleted with the peer too (as strongSwan does at life_time), or it would keep sending on it; the
                // Delete exchange's event deletes it in the terminal.
                actions.append(
                    .log(
                        "SA \(sa.inbound.spi)/\(sa.outbound.spi) of terminal \(sa.terminal) reached its hard lifetime: "
                            + "deleting the CHILD SA with the peer and in the terminal"))
                actions += perform(engines.deleteChild(connection: sa.connection, spi: sa.inbound.spi, now: time.monotonic), at: time)
                continue
            }
            actions.append(.log("SA \(sa.inbound.spi)/\(sa.outbound.spi) of terminal \(sa.terminal) reached its hard lifetime"))
            if let terminal = registry.terminal(at: sa.terminal) {
                actions += deliver(to: terminal) { $0.delete(inbound: sa.inbound.spi, outbound: sa.outbound.spi, at: time) }
            }
        }
        // A negotiation that never finished does not block later start requests for ever. The engine reports a
        // failure itself (IKE_SA_INIT and IKE_AUTH each give up after their retransmissions); this is the net
        // under that, and says so when it catches one.
        let stale = max(engines.settings.halfOpenTimeout, 2 * engines.settings.requestGiveUpTime) + 5
        for (pair, started) in negotiations.expire(now: time.monotonic, abandonAfter: stale) {
            count(.negotiationAbandoned)
            actions.append(
                .log(
                    "negotiation \(pair.terminal) -> \(pair.peer) still unfinished after \(Int(time.monotonic - started)) s: abandoned; "
                        + "start requests may begin another"))
        }
        return actions
    }
}
