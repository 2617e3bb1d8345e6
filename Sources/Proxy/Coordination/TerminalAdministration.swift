import ESP
import IKEv2

/// What administrators (and the reloads that act for them) ask of the proxy: terminals removed or withdrawn,
/// SAs of terminals no longer enrolled, a CHILD SA deleted, everything flushed.
extension KeyExchangeProxy {
    /// IKE SAs held in the name of addresses that are no longer enrolled terminals (restored after a restart
    /// that followed a removal whose Delete exchanges had not finished): deleted with their peers.
    public func deleteSAsOfUnenrolledTerminals(at time: ClockReading) -> [ProxyAction] {
        let unenrolled: (IKEEngine.SessionSummary) -> Bool = { self.registry.terminal(at: $0.local.address) == nil }
        return deleteIKESAs(where: unenrolled, at: time) { session in
            self.count(.ikeSAOfUnenrolledTerminalDeleted)
            return [
                .log(
                    "IKE SA \(session.spiInitiator)/\(session.spiResponder) with \(session.remote.address) is held for "
                        + "\(session.local.address), which is no longer an enrolled terminal: deleting it")
            ]
        }
    }

    /// Deletes with their peers the established IKE SAs that `chosen` picks, each after what `note` says about it.
    func deleteIKESAs(
        where chosen: (IKEEngine.SessionSummary) -> Bool, at time: ClockReading,
        note: (IKEEngine.SessionSummary) -> [ProxyAction] = { _ in [] }
    ) -> [ProxyAction] {
        engines.sessionSummaries.filter { $0.established && chosen($0) }.flatMap { session in
            note(session)
                + perform(
                    engines.deleteIKE(connection: session.connection, spiInitiator: session.spiInitiator, now: time.monotonic),
                    at: time)
        }
    }

    /// An administrator removes a terminal: from now on the proxy does not act for it (no new SA, no start
    /// request, no IKE answered but the Delete exchanges below), deletes the IKE SAs held in its name with
    /// their peers, and flushes every SA out of the terminal. Nil when no terminal has that ID.
    public func removeTerminal(id: UInt64, at time: ClockReading) -> [ProxyAction]? {
        let removed = registry.remove(terminalID: id)
        guard let first = removed.first else { return nil }
        let addresses = Set(removed.map(\.address))
        let delivery = removed.first { $0.address == $0.keyDeliveryAddress } ?? first
        for entry in removed { keyDeliveries.depart(entry.address, delivery: delivery) }
        count(.terminalsRemoved)
        var actions: [ProxyAction] = [
            .log(
                "terminal \(id) (\(removed.map(\.address.description).joined(separator: ", "))) removed: its SAs are "
                    + "deleted with the peers and in the terminal; no SA is made for it any more")
        ]
        actions += deliver(to: delivery) { $0.flush(at: time) }
        actions += deleteIKESAs(where: { addresses.contains($0.local.address) }, at: time)
        negotiations.cancel(terminals: addresses)
        return actions
    }

    /// These enrolled addresses are no longer ones to act for (the terminal prefixes changed, or a terminal's DHCP
    /// lease moved): the proxy stops acting for them (no new SA, no start request) and deletes their SAs, in the
    /// terminal and with the peers. The entries stay unless the caller forgets them.
    public func withdraw(
        addresses: Set<IPAddress>, reason: String = "is no longer inside the terminal prefixes",
        at time: ClockReading
    ) -> [ProxyAction] {
        var actions: [ProxyAction] = []
        for address in addresses.sorted(by: { $0.description < $1.description }) {
            guard let entry = registry.entries[address] else { continue }
            // Acknowledgements come from the key-delivery address; it may be one of those withdrawn.
            keyDeliveries.depart(address, delivery: registry.entries[entry.keyDeliveryAddress] ?? entry)
            count(.terminalAddressesWithdrawn)
            let children = store.children.values.filter { $0.terminal == address }.sorted { $0.createdAt < $1.createdAt }
            actions.append(
                .log(
                    "terminal \(entry.terminalID): \(address) \(reason): not acted for; "
                        + "\(children.count) CHILD SA(s) deleted in the terminal and with the peers"))
            for sa in children {
                actions += deliver(to: entry) { $0.delete(inbound: sa.inbound.spi, outbound: sa.outbound.spi, at: time) }
            }
        }
        actions += deleteIKESAs(where: { addresses.contains($0.local.address) }, at: time)
        negotiations.cancel(terminals: addresses)
        return actions
    }

    /// Deletes a CHILD SA (by either SPI) with its peer, as an administrator asked; the terminal is told
    /// when the engine reports the deletion.
    public func deleteChild(spi: ChildSPI, at time: ClockReading) -> [ProxyAction]? {
        guard let stored = store.children.values.first(where: { $0.inbound.spi == spi || $0.outbound.spi == spi }) else { return nil }
        return perform(engines.deleteChild(connection: stored.connection, spi: stored.inbound.spi, now: time.monotonic), at: time)
    }
    /// Deletes every IKE SA (and so every CHILD SA) with the peers.
    public func flush(at time: ClockReading) -> [ProxyAction] {
        let connections = Set(engines.sessionSummaries.filter(\.established).map(\.connection))
        return connections.sorted().flatMap { perform(engines.deleteIKE(connection: $0, now: time.monotonic), at: time) }
    }
}
