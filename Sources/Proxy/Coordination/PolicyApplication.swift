import ESP
import IKEv2

extension KeyExchangeProxy {
    /// Brings the SAs in line with a changed policy at once (RFC 4301 leaves an SA's selectors to the SPD entry
    /// it came from): an SA whose profile now asks for other selectors is replaced by a CHILD SA with the
    /// current ones (CREATE_CHILD_SA on its IKE SA, the old one deleted once the new is made), and one whose
    /// profile no longer protects anything between its terminal and peer is deleted. A pair being negotiated
    /// is left to that negotiation.
    public func applyPolicy(at time: ClockReading) -> [ProxyAction] {
        var actions: [ProxyAction] = []
        policyRetryAt = nil
        deletingForPolicy.formIntersection(Set(store.children.keys))
        let valid = store.children.values.filter { $0.isValid(now: time.monotonic) }.sorted { $0.createdAt > $1.createdAt }
        var protecting: [TerminalPeer: [ProtectionProfile]] = [:]
        func profiles(_ stored: StoredChildSA) -> [ProtectionProfile] {
            let pair = TerminalPeer(terminal: stored.terminal, peer: stored.peer)
            if let known = protecting[pair] { return known }
            let found = profilesProtecting(terminal: stored.terminal, peer: stored.peer)
            protecting[pair] = found
            return found
        }
        // Every SA of a profile that protects nothing between its terminal and peer any more goes.
        for stored in valid where !profiles(stored).contains(where: { $0.childName == stored.childName }) {
            guard deletingForPolicy.insert(stored.outbound.spi).inserted else { continue }
            count(.childSADeletedAfterPolicyChange)
            actions.append(
                .log(
                    "policy: \(stored.childName) no longer protects anything between \(stored.terminal) and \(stored.peer); "
                        + "deleting CHILD SA \(stored.inbound.spi)/\(stored.outbound.spi)"))
            actions += perform(engines.deleteChild(connection: stored.connection, spi: stored.inbound.spi, now: time.monotonic), at: time)
        }
        // The newest SA of each profile made for other selectors than the policy time.monotonic gives is replaced.
        var seen: Set<String> = []
        for stored in valid {
            guard seen.insert("\(stored.terminal) \(stored.peer) \(stored.childName)").inserted, let asked = stored.asked,
                let profile = profiles(stored).first, let childProfile = profiles(stored).first(where: { $0.childName == stored.childName })
            else { continue }
            let current = selectors(terminal: stored.terminal, peer: stored.peer, profile: childProfile.name)
            guard ProtectedTrafficSelectors(local: current.local, remote: current.remote) != asked else { continue }
            let pair = TerminalPeer(terminal: stored.terminal, peer: stored.peer)
            if negotiations.isUnderWay(pair) || negotiations.isHeldAfterFailure(pair, now: time.monotonic) {
                policyRetryAt = time.monotonic + 1
                continue
            }
            let (name, notes) = connection(for: stored.terminal, peer: stored.peer, profile: profile)
            negotiations.begin(pair, now: time.monotonic)
            count(.renegotiatedAfterPolicyChange)
            actions +=
                notes + [
                    .log(
                        "policy: CHILD SA \(stored.outbound.spi) of \(stored.terminal) <-> \(stored.peer) was made for other selectors; "
                            + "negotiating one with the current selectors to replace it")
                ]
            actions += perform(engines.startChild(connection: name, child: stored.childName, now: time.monotonic), at: time)
        }
        return actions
    }
}
