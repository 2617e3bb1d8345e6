import ESP
import IKEv2
import Packets

/// What the engine decided, as proxy actions: IKE sent from the terminal's address, SA events recorded in the
/// store and turned into key delivery, negotiations marked done or failed.
extension KeyExchangeProxy {
    func perform(_ engineActions: [EngineAction], at time: ClockReading) -> [ProxyAction] {
        var actions: [ProxyAction] = []
        var deferred: [StoredChildSA] = []
        // Answers go after the key delivery they caused, and wait for the terminal's inbound SA if they made one.
        var answers: [ProxyAction] = []
        var awaited: (terminalID: UInt64, spis: Set<UInt32>)?
        for action in engineActions {
            switch action {
            case .send(let datagram):
                // IKE leaves from the terminal's address: the peer cannot tell it from the terminal itself.
                let packet = ProxyAction.send(
                    .internet,
                    IPHeaderBuilder.udpPacket(
                        source: datagram.source.address.bytes,
                        destination: datagram.destination.address.bytes,
                        sourcePort: datagram.source.port,
                        destinationPort: datagram.destination.port, payload: datagram.payload))
                if datagram.isResponse { answers.append(packet) } else { actions.append(packet) }
            case .event(let event):
                actions.append(.event(event))
                // SAs made, rekeyed and deleted, by kind, for the status and the metrics.
                counters[event.kind.rawValue, default: 0] += 1
                let terminalAddress = event.local.address
                let peer = event.remote.address
                let profile = event.child.flatMap { self.profile(forChild: $0.name) } ?? profile(terminal: terminalAddress, peer: peer)
                let lifetime = profile?.espLifetime ?? ESPLifetime()
                let added = store.record(event, lifetime: lifetime, asked: asked(event), now: time.monotonic)
                let pair = TerminalPeer(terminal: terminalAddress, peer: peer)
                switch event.kind {
                case .childEstablished:
                    if let took = negotiations.succeeded(pair, now: time.monotonic) {
                        if negotiationTimes.count >= 1000 { negotiationTimes.removeFirst() }
                        negotiationTimes.append(took)
                    }
                    if let added { deferred += [added] }
                case .ikeFailed, .childFailed:
                    let reason = event.detail ?? "no reason given"
                    if negotiations.failed(pair, reason: reason, now: time.monotonic) || event.kind == .childFailed {
                        count(.negotiationFailed)
                        actions.append(
                            .log(
                                "negotiation \(terminalAddress) -> \(peer) failed: \(reason); start requests wait "
                                    + "\(Int(settings.retryAfterFailure)) s"))
                    }
                case .ikeDeleted: negotiations.ended(pair)
                default: break
                }
                if let terminal = registry.terminal(at: terminalAddress) {
                    actions += deliver(to: terminal) { $0.handle(event, lifetime: lifetime, at: time) }
                    if let child = event.child, event.kind == .childEstablished || event.kind == .childRekeyed {
                        awaited = (terminal.terminalID, (awaited?.spis ?? []).union([child.spiInbound.rawValue]))
                    }
                }
            case .drop(let reason):
                counters["ike_drop_" + reason.key, default: 0] += 1
                actions.append(.log("IKE message dropped: \(reason)"))
            // The proxy speaks from its terminals' addresses: the line's own address is the terminal's.
            case .log(let line): actions.append(.log(line.adding(LogFacts(terminal: line.facts.local))))
            case .checkRevocation(let request): actions.append(.checkRevocation(request))
            case .initialContact(let match):
                // The engine that received it removed its stale IKE SAs; the other engines theirs.
                actions += perform(engines.forgetStaleSessions(match), at: time)
            }
        }
        // After the new SAs' keys are on their way to the terminal.
        for added in deferred { actions += retireSupersededChildren(by: added, at: time) }
        if let awaited, !answers.isEmpty {
            count(.ikeAnswerHeldForKeys)
            answersAwaitingKeys.hold(
                answers, terminalID: awaited.terminalID, awaiting: awaited.spis, deadline: time.monotonic + settings.answerHoldLimit)
            return actions
        }
        return actions + answers
    }

    /// What the policy asked for the CHILD SA of this event: for a rekey, what its predecessor was asked for (a
    /// rekey keeps its selectors); else the selectors of its configuration as the engine now has it.
    func asked(_ event: SAEvent) -> ProtectedTrafficSelectors? {
        guard let child = event.child else { return nil }
        if let old = child.replaces { return store.children[old.outbound]?.asked }
        guard let configuration = engines.connection(named: event.connection)?.children.first(where: { $0.name == child.name }) else { return nil }
        return ProtectedTrafficSelectors(local: configuration.localTrafficSelectors, remote: configuration.remoteTrafficSelectors)
    }

    /// A CHILD SA made from a changed policy supersedes the SAs of the same profile made before the change: they
    /// are deleted with the peer (the terminal already holds the new one, which covers what it needs).
    func retireSupersededChildren(by added: StoredChildSA, at time: ClockReading) -> [ProxyAction] {
        var actions: [ProxyAction] = []
        for old in store.validChildren(terminal: added.terminal, peer: added.peer, now: time.monotonic)
        where old.childName == added.childName && old.outbound.spi != added.outbound.spi && old.asked != nil && old.asked != added.asked {
            count(.childSAReplacedAfterPolicyChange)
            actions.append(
                .log(
                    "CHILD SA \(old.inbound.spi)/\(old.outbound.spi) was made before the policy changed; "
                        + "\(added.inbound.spi)/\(added.outbound.spi) replaces it, deleting it"))
            actions += perform(engines.deleteChild(connection: old.connection, spi: old.inbound.spi, now: time.monotonic), at: time)
        }
        return actions
    }
}
