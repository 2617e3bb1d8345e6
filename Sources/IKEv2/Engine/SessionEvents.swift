/// What the engine reports about its SAs (events for the embedding program) and the fresh SPIs and nonces
/// each new SA takes.
extension IKEEngine {
    /// Removes an IKE SA and reports it and its CHILD SAs gone.
    func closeSession(_ session: IKESession, kind: SAEvent.Kind, reason: String?) -> [EngineAction] {
        var actions: [EngineAction] = []
        for child in session.children where child.announced {
            actions.append(.event(childEvent(.childDeleted, session: session, child: child)))
        }
        session.children = []
        session.close()
        releaseFragments(of: session)
        if sessions[session.localSPI] === session { sessions[session.localSPI] = nil }
        actions.append(.event(ikeEvent(kind, session: session, detail: reason)))
        return actions
    }

    func ikeEvent(_ kind: SAEvent.Kind, session: IKESession, detail: String? = nil) -> SAEvent {
        SAEvent(
            kind: kind, connection: session.connection.name, spiInitiator: session.spiInitiator,
            spiResponder: session.spiResponder, local: session.local, remote: session.remote,
            ikeSuite: session.suite, child: nil, detail: detail, ppkIdentity: session.ppkUsed?.identityDescription)
    }

    func childEvent(
        _ kind: SAEvent.Kind, session: IKESession, child: ChildSA,
        replaces: (ChildSPI, ChildSPI)? = nil
    ) -> SAEvent {
        var event = ikeEvent(kind, session: session)
        event.child = ChildSAEventDetails(
            name: child.configuration.name, spiInbound: child.spiInbound, spiOutbound: child.spiOutbound,
            suite: child.suite, localTrafficSelectors: child.localTrafficSelectors,
            remoteTrafficSelectors: child.remoteTrafficSelectors, mode: child.mode,
            encapsulated: session.natDetected || session.remote.port == 4500,
            keys: child.keys, replaces: replaces)
        return event
    }

    func newChildSPI() -> ChildSPI {
        var spi: UInt32 = 0
        while spi < 256 { spi = random.uint32() }  // SPIs 1-255 are reserved (RFC 4303 section 2.1)
        return ChildSPI(spi)
    }

    func newIKESPI() -> IKESPI {
        var spi: UInt64 = 0
        while spi == 0 || sessions[IKESPI(spi)] != nil { spi = settings.shard.own(random.uint64()) }
        return IKESPI(spi)
    }

    func newNonce() -> Nonce { Nonce(random.bytes(32)) }
}
