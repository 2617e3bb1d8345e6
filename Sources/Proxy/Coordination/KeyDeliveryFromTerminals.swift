import ESP
import IKEv2
import KeyDelivery

/// What terminals tell the proxy over key delivery: acknowledgements, ACQUIRE (a flow needs an SA), EXPIRE
/// (an SA's lifetime ran out in the terminal) and STATUS (what it holds, with its traffic); and what the proxy
/// does about SAs a terminal holds that the proxy does not, or lost.
extension KeyExchangeProxy {
    func keyDeliveryFromTerminal(_ datagram: [UInt8], terminal: TerminalEntry, at time: ClockReading) -> [ProxyAction] {
        let keySetter = keyDeliveries.setter(for: terminal)
        switch keySetter.channel.receive(datagram, at: time) {
        case .rejected(let reason): return drop(PacketDropReason(reason))
        case .duplicate(let acknowledgement): return keyDeliveries.packets([acknowledgement], to: terminal)
        case .acknowledged(let message):
            var actions = keyDeliveries.actions(keySetter.acknowledged(message, at: time), to: terminal)
            if case .addSA(let sa)? = message, sa.direction == .inbound {
                actions += answersAwaitingKeys.acknowledged(spi: sa.spi.rawValue, terminalID: terminal.terminalID)
            }
            return actions
        case .message(let message, let acknowledgement):
            var actions = keyDeliveries.packets([acknowledgement], to: terminal)
            switch message {
            case .acquire(let flow):
                count(.acquires)
                // The terminal asks for every flow it has no SA for; only protected flows get one.
                let key = FlowKey(
                    isIPv6: flow.source.isIPv6, source: AddressKey(flow.source.bytes), destination: AddressKey(flow.destination.bytes),
                    ipProtocol: flow.ipProtocol, sourcePort: flow.sourcePort, destinationPort: flow.destinationPort)
                guard registry.terminal(at: flow.source)?.terminalID == terminal.terminalID, case .protect = policy.action(for: key) else {
                    count(.acquireForUnprotectedFlow)
                    break
                }
                actions += startRequest(terminal: flow.source, peer: flow.destination, flow: key, at: time)
            case .expire(let spi, let direction, let hard):
                guard
                    let stored = store.children.values.first(where: {
                        registry.terminal(at: $0.terminal)?.terminalID == terminal.terminalID
                            && ($0.inbound.spi == spi || $0.outbound.spi == spi)
                    })
                else { break }
                actions.append(.log("terminal \(terminal.terminalID): \(hard ? "hard" : "soft") expiry of \(direction.rawValue) SA \(spi)"))
                actions += perform(
                    hard
                        ? engines.deleteChild(connection: stored.connection, spi: stored.inbound.spi, now: time.monotonic)
                        : engines.rekeyChild(connection: stored.connection, spi: stored.inbound.spi, now: time.monotonic),
                    at: time)
            case .status(let entries):
                // Kept per SA for the operators (`ikeproxy sas`): only the terminal sees both directions.
                let unknown = entries.filter { entry in
                    !store.recordUsage(
                        spi: entry.spi, packets: entry.packets, octets: entry.bytes,
                        terminal: { self.registry.terminal(at: $0)?.terminalID == terminal.terminalID }, now: time.monotonic)
                }
                if !unknown.isEmpty { count(.statusOfUnknownSA) }
                actions.append(
                    .log(
                        "terminal \(terminal.terminalID) status: \(entries.count) SAs, "
                            + "\(entries.reduce(0) { $0 + $1.packets }) packets"
                            + (unknown.isEmpty ? "" : ", \(unknown.count) of SAs the proxy does not hold")))
                // Those are stale (the proxy lost its state, or deleted them and the terminal missed it): they go.
                for entry in unknown
                where !(entry.direction == .outbound && store.isRecentlyReplacedSPI(entry.spi, of: terminal.address, now: time.monotonic)) {
                    actions += deleteStale(entry.spi, entry.direction, terminal: terminal, at: time)
                }
                actions += setAgainIfLost(terminal: terminal, reported: Set(entries.map(\.spi)), at: time)
            case .addSA, .deleteSA, .flush, .acknowledge:
                count(.keyDeliveryUnexpected)
            }
            return actions
        }
    }

    /// A registered terminal holds an SA the proxy does not (the proxy lost its state, say, restarted without a
    /// store; or the terminal missed a deletion): it sends ESP on it, or its STATUS lists it. Nothing sent on such
    /// an SA will ever leave, and as the terminal has an SA it sends no plaintext that would start a
    /// negotiation. It is told to delete the SA, at most every 10 s per SA: its next packets of the flow are then
    /// a start request.
    func deleteStale(_ spi: ChildSPI, _ direction: ESPDirection, terminal: TerminalEntry, at time: ClockReading) -> [ProxyAction] {
        let key = "\(terminal.terminalID) \(spi) \(direction.rawValue)"
        guard time.monotonic - (staleDeleteSent[key] ?? -.infinity) >= 10 else { return [] }
        if staleDeleteSent.count >= 4096 { staleDeleteSent = staleDeleteSent.filter { time.monotonic - $0.value < 10 } }
        staleDeleteSent[key] = time.monotonic
        count(.staleSADeletedInTerminal)
        return [
            .log(
                "terminal \(terminal.terminalID) holds \(direction.rawValue) SA \(spi), which the proxy does not: telling it to delete "
                    + "the SA, so that its next packets start a negotiation")
        ]
            + deliver(to: terminal) { $0.deleteUnknown(spi, direction: direction, at: time) }
    }

    /// A terminal whose STATUS lists none of the SAs the proxy set into it has lost them (it restarted, or its
    /// agent did): the newest valid SA of each of its CHILD SAs is set again at once, as a start request would
    /// (sending resumes above the highest sequence number forwarded), instead of waiting for its next packet
    /// while ESP from the peer is dropped. Not while key delivery to it is still unacknowledged: the STATUS may
    /// then predate keys on their way.
    func setAgainIfLost(terminal: TerminalEntry, reported: Set<ChildSPI>, at time: ClockReading) -> [ProxyAction] {
        let keySetter = keyDeliveries.setter(for: terminal)
        guard keySetter.channel.unacknowledgedCount == 0 else { return [] }
        // Its addresses the proxy still acts for (not those the terminal prefixes no longer cover).
        let addresses = registry.entries.values.filter { $0.terminalID == terminal.terminalID && registry.terminal(at: $0.address) != nil }
            .map(\.address)
        var newest: [String: StoredChildSA] = [:]
        for address in addresses {
            for sa in store.children.values where sa.terminal == address && sa.isValid(now: time.monotonic) {
                let key = "\(sa.terminal) \(sa.peer) \(sa.childName)"
                if newest[key].map({ $0.createdAt < sa.createdAt }) ?? true { newest[key] = sa }
            }
        }
        let held = newest.values.sorted { $0.createdAt < $1.createdAt }
        guard !held.isEmpty, !held.contains(where: { reported.contains($0.inbound.spi) || reported.contains($0.outbound.spi) }) else { return [] }
        count(.terminalLostItsSas)
        var actions: [ProxyAction] = [
            .log(
                "terminal \(terminal.terminalID) reports none of the \(held.count) SA(s) the proxy set into it "
                    + "(it restarted?): setting their keys again")
        ]
        for sa in held {
            lastReuse[TerminalPeer(terminal: sa.terminal, peer: sa.peer)] = time.monotonic
            count(.storedSAReused)
            let (inbound, outbound) = store.resumable(sa)
            actions += keyDeliveries.actions(keySetter.set(inbound, outbound, at: time), to: terminal)
        }
        return actions
    }
}
