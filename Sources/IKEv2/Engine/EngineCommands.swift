import Crypto

/// What the embedding program asks of the engine: connections set and removed, SAs initiated, rekeyed and
/// deleted, liveness checked, and what it holds.
extension IKEEngine {
    // MARK: Commands

    /// Replaces the configuration of the connection with the same name and local address, or adds it: new
    /// negotiations use it (as after a policy change); IKE SAs already made keep what they agreed.
    public func setConnection(_ connection: ConnectionConfiguration) {
        if let index = connectionsByName[connection.name], connections[index].localAddress == connection.localAddress {
            connections[index] = connection
        } else if connectionsByName[connection.name] == nil {
            _ = addConnection(connection)
        }
    }

    /// Removes a connection (gone from a reloaded file): no new negotiation uses it; IKE SAs already made
    /// with it keep their own copy until they are deleted. False when there is none by that name.
    @discardableResult
    public func removeConnection(named name: String) -> Bool {
        guard let index = connectionsByName[name] else { return false }
        connections.remove(at: index)
        connectionsByName = [:]
        connectionsByLocalAddress = [:]
        for (position, connection) in connections.enumerated() {
            connectionsByName[connection.name] = position
            connectionsByLocalAddress[connection.localAddress, default: []].append(position)
        }
        return true
    }

    /// Adds a connection at run time (the proxy creates one per terminal and peer when first needed);
    /// false when one with that name exists already.
    @discardableResult
    public func addConnection(_ connection: ConnectionConfiguration) -> Bool {
        guard connectionsByName[connection.name] == nil else { return false }
        connectionsByName[connection.name] = connections.count
        connectionsByLocalAddress[connection.localAddress, default: []].append(connections.count)
        connections.append(connection)
        return true
    }

    /// Starts IKE_SA_INIT for a configured connection.
    public func initiate(connection name: String, now: Double) -> [EngineAction] {
        guard let connection = connection(named: name) else {
            return [.log("initiate: no connection named '\(name)'")]
        }
        guard let remoteAddress = connection.remoteAddress else {
            return [.log("initiate: connection '\(name)' has no remote address")]
        }
        return startInitiator(connection: connection, remote: Endpoint(remoteAddress, connection.remotePort), now: now)
    }

    /// A CHILD SA for the connection's child named `child` (default: its first): on its established IKE SA with
    /// CREATE_CHILD_SA when there is one (as after the last CHILD SA expired, or one was refused), else with a
    /// new IKE SA that makes that CHILD SA alone.
    public func startChild(connection name: String, child childName: String? = nil, now: Double) -> [EngineAction] {
        guard let connection = connection(named: name),
            let child = childName.map({ wanted in connection.children.first { $0.name == wanted } }) ?? connection.children.first
        else {
            return initiate(connection: name, now: now)
        }
        guard let session = findSession(connection: name), !session.replacedByRekey else {
            guard let remoteAddress = connection.remoteAddress else { return [.log("initiate: connection '\(name)' has no remote address")] }
            return startInitiator(connection: connection, remote: Endpoint(remoteAddress, connection.remotePort), children: [child], now: now)
        }
        return [.log("CHILD SA '\(child.name)' asked for on the established IKE SA \(session.spiInitiator)_\(session.spiResponder)")]
            + requestNewChild(session: session, configuration: child, now: now)
    }

    /// Rekeys the CHILD SA with this inbound SPI, or the first of the named connection's children.
    public func rekeyChild(connection name: String, spi: ChildSPI? = nil, now: Double) -> [EngineAction] {
        guard let (session, child) = findChild(connection: name, spi: spi) else { return [.log("rekey: no CHILD SA found for '\(name)'")] }
        // Both directions of an SA can reach a lifetime: one rekey is enough.
        if isRekeying(session: session, spi: child.spiInbound) {
            return [.log("rekey of CHILD SA \(child.spiInbound) is already under way")]
        }
        return requestRekeyChild(session: session, child: child, now: now)
    }

    public func rekeyIKE(connection name: String, now: Double) -> [EngineAction] {
        guard let session = findSession(connection: name) else { return [.log("rekey: no IKE SA for '\(name)'")] }
        return requestRekeyIKE(session: session, now: now)
    }

    public func deleteChild(connection name: String, spi: ChildSPI? = nil, now: Double) -> [EngineAction] {
        guard let (session, child) = findChild(connection: name, spi: spi) else { return [.log("delete: no CHILD SA found for '\(name)'")] }
        return sendRequest(
            session: session, exchange: .informational, payloads: [.delete(.child([child.spiInbound]))],
            context: .deleteChildren([child.spiInbound]), now: now)
    }

    /// Deletes the connection's newest established IKE SA, or the one with this initiator SPI (an older one
    /// another replaced, as when reauthenticating make-before-break).
    public func deleteIKE(connection name: String, spiInitiator: IKESPI? = nil, now: Double) -> [EngineAction] {
        let found =
            spiInitiator.map { spi in sessions.values.first { $0.connection.name == name && $0.state == .established && $0.spiInitiator == spi } }
            ?? findSession(connection: name)
        guard let session = found else { return [.log("delete: no IKE SA for '\(name)'")] }
        session.startDeleting()
        return sendRequest(session: session, exchange: .informational, payloads: [.delete(.ikeSA)], context: .deleteIKE, now: now)
    }

    /// Sends an empty INFORMATIONAL request (liveness check, section 1.4).
    public func checkLiveness(connection name: String, now: Double) -> [EngineAction] {
        guard let session = findSession(connection: name) else { return [.log("liveness: no IKE SA for '\(name)'")] }
        return sendRequest(session: session, exchange: .informational, payloads: [], context: .liveness, now: now)
    }

    /// Whether an IKE SA (in any state) exists between these two addresses.
    public func holdsIKESA(local: IPAddress, remote: IPAddress) -> Bool {
        sessions.values.contains { $0.local.address == local && $0.remote.address == remote && $0.state != .closed }
    }

    /// Whether an authenticated IKE SA (established, or being deleted) exists between these two addresses:
    /// one whose exchanges must still be answered even when no new negotiation would be.
    public func holdsAuthenticatedIKESA(local: IPAddress, remote: IPAddress) -> Bool {
        sessions.values.contains { $0.local.address == local && $0.remote.address == remote && ($0.state == .established || $0.state == .deleting) }
    }

    /// Whether an established IKE SA holds a CHILD SA with this inbound SPI that is not replaced already.
    public func holdsChild(inbound spi: ChildSPI) -> Bool {
        guard let (session, child) = child(inbound: spi) else { return false }
        return session.state == .established && !child.rekeyed
    }

    /// The CHILD SA with this inbound SPI (ours, so unique) and the IKE SA holding it.
    func child(inbound spi: ChildSPI) -> (IKESession, ChildSA)? {
        for session in sessions.values {
            if let child = session.children.first(where: { $0.spiInbound == spi }) { return (session, child) }
        }
        return nil
    }

    func findSession(connection name: String) -> IKESession? {
        sessions.values.filter { $0.connection.name == name && $0.state == .established }.max { $0.createdAt < $1.createdAt }
    }

    func findChild(connection name: String, spi: ChildSPI?) -> (IKESession, ChildSA)? {
        for session in sessions.values where session.state == .established {
            for child in session.children where !child.rekeyed {
                if let spi {
                    if child.spiInbound == spi || child.spiOutbound == spi { return (session, child) }
                } else if session.connection.name == name || child.configuration.name == name {
                    return (session, child)
                }
            }
        }
        return nil
    }
}
