/// Rekeying a CHILD SA (RFC 7296 section 2.8): CREATE_CHILD_SA with REKEY_SA in both roles, make-before-break,
/// and simultaneous rekeys of the same SA (section 2.8.1, decided by `RekeyCollision`) in one place.
extension IKEEngine {
    func requestRekeyChild(session: IKESession, child: ChildSA, now: Double) -> [EngineAction] {
        let request = makeChildRequest(
            session: session, configuration: child.configuration, rekeying: child.spiInbound,
            group: child.suite.group)
        return info("rekeying CHILD SA \(child.spiInbound)/\(child.spiOutbound) (age \(RekeySchedule.seconds(now - child.createdAt)) s)")
            + sendChildRequest(session: session, request: request, now: now)
    }

    /// The CHILD SA a peer's CREATE_CHILD_SA with REKEY_SA asks to replace, or the answer refusing it: an SA we
    /// do not hold (CHILD_SA_NOT_FOUND), or one this side is already replacing or closing (section 2.25.1).
    func childToRekey(session: IKESession, header: IKEHeader, rekey: NotifyPayload) -> Result<ChildSA, EarlyAnswer> {
        let spi = ChildSPI(bytes: rekey.spi)
        guard let old = session.children.first(where: { $0.spiOutbound == spi }) else {
            return .failure(
                EarlyAnswer(
                    actions: [.log("peer asked to rekey unknown CHILD SA \(spi)")]
                        + respond(
                            session: session, to: header, payloads: [.notify(NotifyPayload(protocolID: .esp, spi: rekey.spi, type: .childSANotFound))]
                        )))
        }
        func temporaryFailure(_ why: String) -> Result<ChildSA, EarlyAnswer> {
            .failure(
                EarlyAnswer(
                    actions: [.log("peer asked to rekey CHILD SA \(old.spiInbound)/\(old.spiOutbound) \(why): TEMPORARY_FAILURE")]
                        + respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .temporaryFailure))])))
        }
        if case .followUpKE = session.outstanding?.context, session.outstanding?.context.childRekeyed == old.spiInbound {
            // Our rekey of it was answered and its IKE_FOLLOWUP_KE exchanges are under way: too late to set the two
            // against each other, the peer tries again later (as strongSwan 6 does).
            return temporaryFailure("while our rekey of it runs its additional key exchanges")
        }
        if old.rekeyed || isDeleting(session: session, spi: old.spiInbound) {
            return temporaryFailure("which is being replaced or deleted here")
        }
        return .success(old)
    }

    /// The peer's rekey of CHILD SA `old` made `child`. A rekey of ours not yet sent is moot; one in flight
    /// collides with this one (section 2.8.1): the peer's nonces are kept until ours is answered, and the new
    /// outbound SA is held until it is known to stay.
    func acceptPeerChildRekey(session: IKESession, replacing old: ChildSA, with child: ChildSA, nonces: [Nonce], now: Double) -> [EngineAction] {
        guard let index = session.children.firstIndex(where: { $0.spiInbound == old.spiInbound }) else { return [] }
        var actions: [EngineAction] = []
        session.children[index].lifecycle = .replaced(at: now)
        // A rekey of ours not yet sent is moot; one in flight collides with this one (section 2.8.1).
        session.queued.removeAll { $0.context.childRekeyed == old.spiInbound }
        var event = childEvent(.childRekeyed, session: session, child: child, replaces: (old.spiInbound, old.spiOutbound))
        event.child?.rekeyedByPeer = true
        if notePeerRekeyCrossingOurs(session: session, old: old, nonces: nonces, replacement: child) {
            actions.append(
                .log(
                    "simultaneous rekey of CHILD SA \(old.spiInbound)/\(old.spiOutbound): both ends rekey it, the lowest nonce decides which replacement stays"
                ))
            event.child?.outboundHeld = true
        } else if old.peerRekey?.childReplacement == child.spiInbound {
            // Its CREATE_CHILD_SA crossed ours, which has since been answered and settled (its additional key
            // exchanges took longer): the replacement that stays is decided, the old SA's Delete tells which.
            event.child?.outboundHeld = true
        }
        actions += info("CHILD SA \(old.spiInbound)/\(old.spiOutbound) rekeyed by peer to \(child.spiInbound)/\(child.spiOutbound)")
        actions.append(.event(event))
        return actions
    }

    /// Records the peer's rekey of `old` (its CREATE_CHILD_SA nonces and the replacement it makes) when our own
    /// rekey of the same SA is in flight, in its CREATE_CHILD_SA or its IKE_FOLLOWUP_KE exchanges: a simultaneous
    /// rekey (section 2.8.1), settled by the nonces of the two CREATE_CHILD_SA exchanges when ours is answered.
    @discardableResult
    func notePeerRekeyCrossingOurs(session: IKESession, old: ChildSA, nonces: [Nonce], replacement: ChildSA) -> Bool {
        guard session.outstanding?.context.childRekeyed == old.spiInbound,
            let index = session.children.firstIndex(where: { $0.spiInbound == old.spiInbound })
        else { return false }
        session.children[index].peerRekey = PeerRekeyRecord(nonces: nonces, childReplacement: replacement.spiInbound)
        return true
    }

    /// Our rekey of CHILD SA `old` was answered with `child`. Make-before-break: the new SA is in place, then the
    /// old one is deleted; unless the peer rekeyed the same SA at the same moment and the lowest nonce says our
    /// replacement is the redundant one (section 2.8.1), or the peer deleted the old SA meanwhile.
    func finishChildRekey(session: IKESession, child: ChildSA, replacing old: ChildSPI, ourNonces: [Nonce], now: Double) -> [EngineAction] {
        var child = child
        let deleteNew = { (why: String) -> [EngineAction] in
            [.log(why)]
                + self.sendRequest(
                    session: session, exchange: .informational, payloads: [.delete(.child([child.spiInbound]))],
                    context: .deleteChildren([child.spiInbound]), now: now)
        }
        guard let index = session.children.firstIndex(where: { $0.spiInbound == old }) else {
            child.lifecycle = .redundant(at: now)
            session.children.append(child)
            if session.supersededRekeys.remove(old) != nil {
                count(.rekeyCollisionLost)
                return deleteNew(
                    "simultaneous rekey of CHILD SA \(old) settled: the peer kept its replacement and deleted the old SA "
                        + "before our rekey was answered; deleting our redundant \(child.spiInbound)/\(child.spiOutbound)")
            }
            // The peer closed the SA while we rekeyed it; its replacement goes too, as strongSwan does.
            return deleteNew(
                "CHILD SA \(old) was deleted by the peer while being rekeyed; deleting its replacement \(child.spiInbound)/\(child.spiOutbound)")
        }
        let replaced = session.children[index]
        if let collision = replaced.peerRekey,
            RekeyCollision.ourReplacementIsRedundant(ourNonces: ourNonces, peerNonces: collision.nonces)
        {
            // Ours lost: the peer's replacement stays, the peer deletes the old SA, we delete ours unannounced.
            child.lifecycle = .redundant(at: now)
            session.children.append(child)
            count(.rekeyCollisionLost)
            return deleteNew(
                "simultaneous rekey of CHILD SA \(replaced.spiInbound)/\(replaced.spiOutbound) settled: the lowest nonce is in our exchange, "
                    + "so our replacement \(child.spiInbound)/\(child.spiOutbound) is redundant; deleting it and keeping the peer's")
        }
        session.children.append(child)
        session.children[index].lifecycle = .replaced(at: now)
        var actions: [EngineAction] = []
        if replaced.peerRekey != nil {
            count(.rekeyCollisionWon)
            actions.append(
                .log(
                    "simultaneous rekey of CHILD SA \(replaced.spiInbound)/\(replaced.spiOutbound) settled: the lowest nonce is in the peer's "
                        + "exchange, so our replacement stays and the peer deletes its own"))
        }
        actions += info("CHILD SA \(replaced.spiInbound)/\(replaced.spiOutbound) rekeyed to \(child.spiInbound)/\(child.spiOutbound)")
        actions.append(
            .event(
                childEvent(
                    .childRekeyed, session: session, child: child,
                    replaces: (replaced.spiInbound, replaced.spiOutbound))))
        // Make-before-break: the new SA is in place, now retire the old one.
        actions += sendRequest(
            session: session, exchange: .informational, payloads: [.delete(.child([old]))],
            context: .deleteChildren([old]), now: now)
        return actions
    }

    /// The peer deleted a CHILD SA both ends were rekeying: only the winner of a simultaneous rekey deletes the
    /// old SA, so the peer's replacement stays and ours, when answered, is redundant (`finishChildRekey`).
    func noteChildDeletedDuringRekey(session: IKESession, child: ChildSA) {
        if child.peerRekey != nil, isRekeying(session: session, spi: child.spiInbound) { session.supersededRekeys.insert(child.spiInbound) }
    }
}
