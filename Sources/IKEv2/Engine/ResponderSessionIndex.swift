/// The IKE SAs this side answered an IKE_SA_INIT for, indexed so that no IKE_SA_INIT scans every IKE SA:
/// by the initiator's SPI (a retransmitted IKE_SA_INIT finds its IKE SA), and those not yet authenticated
/// (the half-open count that turns COOKIEs on, RFC 7296 section 2.6). With a thousand IKE SAs, the scans
/// these replace cost the responder as much as the crypto of a negotiation (issue 21). Entries for IKE SAs
/// the engine no longer holds are dropped lazily: at each tick, and before a half-open count is trusted.
struct ResponderSessionIndex {
    private var byInitiatorSPI: [IKESPI: IKESession] = [:]
    private var halfOpen: [IKESPI: IKESession] = [:]

    mutating func add(_ session: IKESession) {
        byInitiatorSPI[session.spiInitiator] = session
        halfOpen[session.spiResponder] = session
    }

    /// The responder IKE SA still held for an IKE_SA_INIT from `remote` with this initiator SPI.
    func session(initiatorSPI: IKESPI, remote: IPAddress, held sessions: [IKESPI: IKESession]) -> IKESession? {
        guard let session = byInitiatorSPI[initiatorSPI], sessions[session.localSPI] === session, session.remote.address == remote else { return nil }
        return session
    }

    /// How many held responder IKE SAs have not authenticated yet, exact whenever it reaches `threshold`.
    mutating func halfOpenCount(held sessions: [IKESPI: IKESession], threshold: Int) -> Int {
        if halfOpen.count >= threshold { pruneHalfOpen(held: sessions) }
        return halfOpen.count
    }

    /// Forgets what the engine no longer holds, and half-open entries that authenticated.
    /// Called at every tick: the tables are rebuilt only when they hold something to forget, so that a
    /// thousand established IKE SAs cost a scan, not two new dictionaries, ten times a second.
    mutating func prune(held sessions: [IKESPI: IKESession]) {
        let stale: (Dictionary<IKESPI, IKESession>.Element) -> Bool = { sessions[$0.value.localSPI] !== $0.value }
        if byInitiatorSPI.contains(where: stale) { byInitiatorSPI = byInitiatorSPI.filter { !stale($0) } }
        pruneHalfOpen(held: sessions)
    }

    private mutating func pruneHalfOpen(held sessions: [IKESPI: IKESession]) {
        let stale: (Dictionary<IKESPI, IKESession>.Element) -> Bool = { entry in
            sessions[entry.key] !== entry.value || (entry.value.state != .initiating && entry.value.state != .authenticating)
        }
        if halfOpen.contains(where: stale) { halfOpen = halfOpen.filter { !stale($0) } }
    }
}
