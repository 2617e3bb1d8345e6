/// Rekeying an IKE SA (RFC 7296 sections 1.3.2, 2.18): CREATE_CHILD_SA with an IKE proposal in both roles, the
/// CHILD SAs moved to the new IKE SA, and simultaneous rekeys (sections 2.8.2, 2.25.2) in one place.
extension IKEEngine {
    func requestRekeyIKE(session: IKESession, now: Double) -> [EngineAction] {
        guard let group = session.suite?.group ?? session.connection.proposals.first?.groups.first else { return [] }
        let spi = newIKESPI()
        let nonce = newNonce()
        let keyExchange = group.generatePrivateKey(random: random)
        let proposals = ikeProposals(connection: session.connection, spi: spi.bytes, preferring: group)
        session.rekey.oursPending = true
        let payloads: [Payload] = [
            .securityAssociation(SecurityAssociationPayload(proposals: proposals)), .nonce(NoncePayload(nonce)),
            .keyExchange(KeyExchangePayload(group: group.rawValue, data: keyExchange.publicValue))
        ]
        return info("rekeying IKE SA \(session.spiInitiator)_\(session.spiResponder) (age \(RekeySchedule.seconds(now - session.createdAt)) s)")
            + sendRequest(
                session: session, exchange: .createChildSA, payloads: payloads,
                context: .rekeyIKE(spi: spi, nonce: nonce, keyExchange: keyExchange), now: now)
    }

    /// Builds and registers the IKE SA a rekey of `old` made (section 2.18); its CHILD SAs move separately.
    func makeRekeyedIKESA(
        old: IKESession, oldKeying: IKESAKeying, initiatedHere: Bool, spiInitiator: IKESPI, spiResponder: IKESPI,
        suite: IKECipherSuite, sharedSecret: KeyMaterial, additionalSecrets: [KeyMaterial] = [], nonceInitiator: Nonce,
        nonceResponder: Nonce, now: Double
    ) -> IKESession {
        let new = IKESession(
            connection: old.connection, isOriginalInitiator: initiatedHere, spiInitiator: spiInitiator,
            spiResponder: spiResponder, local: old.local, remote: old.remote, now: now)
        // SKEYSEED of a rekeyed IKE SA uses the old SA's PRF and SK_d.
        let skeyseed = KeyDerivation.rekeyedSkeyseed(
            prf: oldKeying.suite.prf, oldDeriving: oldKeying.keys.deriving, sharedSecret: sharedSecret,
            nonceInitiator: nonceInitiator, nonceResponder: nonceResponder, additionalSecrets: additionalSecrets)
        let keys = KeyDerivation.ikeKeys(
            suite: suite, skeyseed: skeyseed, nonceInitiator: nonceInitiator, nonceResponder: nonceResponder,
            spiInitiator: spiInitiator, spiResponder: spiResponder)
        new.lifecycle = .established(IKESAKeying(suite: suite, keys: keys))
        new.nonceInitiator = nonceInitiator
        new.nonceResponder = nonceResponder
        new.natDetected = old.natDetected
        // The old SA's SK_d, mixed with a PPK (RFC 8784), goes into the new keys: the protection carries over.
        new.ppkUsed = old.ppkUsed
        new.rekeyAt = RekeySchedule.ikeRekeyDelay(old.connection, random: random).map { now + $0 }
        sessions[new.localSPI] = new
        return new
    }

    /// Moves CHILD SAs and the CHILD SA requests not yet sent from an IKE SA to the one replacing it; the
    /// replaced SA then waits quietly for its Delete.
    func moveChildren(from old: IKESession, to new: IKESession, now: Double) {
        new.children += old.children
        old.children = []
        let (forIKESA, forChildren) = old.queued.reduce(into: ([QueuedRequest](), [QueuedRequest]())) { parts, request in
            switch request.context {
            case .rekeyIKE, .deleteIKE: parts.0.append(request)
            default: parts.1.append(request)
            }
        }
        old.queued = forIKESA
        new.queued += forChildren
        old.markReplaced(now: now)
    }

    func handleRekeyIKEResponse(
        session: IKESession, spi: IKESPI, nonce: Nonce, keyExchange: KeyExchangePrivateKey,
        payloads: [Payload], now: Double
    ) -> [EngineAction] {
        session.rekey.oursPending = false
        guard session.keying != nil, let sa = payloads.securityAssociation, sa.proposals.count == 1, sa.proposals[0].spi.count == 8,
            let suite = session.connection.proposals.lazy.compactMap({ $0.selectIKE(from: sa.proposals[0]) }).first,
            let ke = payloads.keyExchange, ke.group == keyExchange.group.rawValue, let peerNonce = payloads.nonce,
            let secret = try? keyExchange.sharedSecret(peerPublicValue: ke.data)
        else {
            let reason = payloads.notifies.first { $0.type.isError }.map { "\($0.type)" } ?? "unusable answer"
            return ikeRekeyFailed(session: session, reason: reason, now: now)
        }
        let peerSPI = IKESPI(bytes: sa.proposals[0].spi)
        let additional = suite.keyExchangesToRun
        if !additional.isEmpty {
            // RFC 9370 section 2.2.4: the new IKE SA is made after the IKE_FOLLOWUP_KE exchanges, run on this one.
            session.rekey.oursPending = true
            let exchanges = FollowUpKeyExchanges(
                target: .ikeSA(spiInitiator: spi, spiResponder: peerSPI, suite: suite), nonceInitiator: nonce,
                nonceResponder: peerNonce.nonce, firstSecret: secret, remaining: additional, link: [], startedAt: now)
            return startFollowUps(session: session, exchanges: exchanges, answer: payloads, now: now)
                ?? ikeRekeyFailed(
                    session: session, reason: "answer chose additional key exchanges but names no ADDITIONAL_KEY_EXCHANGE link", now: now)
        }
        return finishOurIKERekey(
            session: session, spi: spi, peerSPI: peerSPI, suite: suite, secret: secret, additionalSecrets: [], nonce: nonce,
            peerNonce: peerNonce.nonce, now: now)
    }

    /// Our rekey of the IKE SA came to nothing: tried again later, unless the peer's own rekey replaced it.
    func ikeRekeyFailed(session: IKESession, reason: String, now: Double) -> [EngineAction] {
        session.rekey.oursPending = false
        count(.ikeRekeyFailed)
        var actions: [EngineAction] = [.log("IKE SA rekey refused: \(reason)")]
        if session.rekey.crossedBy != nil || session.replacedByRekey {
            actions.append(.log("the peer's own rekey of IKE SA \(session.spiInitiator)_\(session.spiResponder) stands"))
        } else if session.state == .established {
            let delay = retryDelay()
            session.rekeyAt = now + delay
            actions.append(.log("rekey of IKE SA \(session.spiInitiator)_\(session.spiResponder) will be tried again in \(Int(delay)) s"))
        }
        return actions
    }

    /// Our rekey of the IKE SA was answered (and its additional key exchanges ran): the new IKE SA takes the
    /// CHILD SAs and the old one is deleted, unless a simultaneous rekey of the peer's wins (section 2.8.2).
    func finishOurIKERekey(
        session: IKESession, spi: IKESPI, peerSPI: IKESPI, suite: IKECipherSuite, secret: KeyMaterial, additionalSecrets: [KeyMaterial],
        nonce: Nonce, peerNonce: Nonce, now: Double
    ) -> [EngineAction] {
        session.rekey.oursPending = false
        guard let oldKeying = session.keying else { return [] }
        let new = makeRekeyedIKESA(
            old: session, oldKeying: oldKeying, initiatedHere: true, spiInitiator: spi, spiResponder: peerSPI, suite: suite,
            sharedSecret: secret, additionalSecrets: additionalSecrets, nonceInitiator: nonce, nonceResponder: peerNonce, now: now)
        var replaced = session
        var actions: [EngineAction] = []
        if let collision = session.rekey.crossedBy, let peers = collision.ikeReplacement.flatMap({ sessions[$0] }) {
            if RekeyCollision.ourReplacementIsRedundant(ourNonces: [nonce, peerNonce], peerNonces: collision.nonces) {
                // Ours lost: the peer's IKE SA keeps the CHILD SAs and the peer deletes the old one; ours goes.
                new.markReplaced(now: now)
                count(.rekeyCollisionLost)
                return [
                    .log(
                        "simultaneous rekey of IKE SA \(session.spiInitiator)_\(session.spiResponder) settled: the lowest nonce is in our exchange, "
                            + "so our IKE SA \(new.spiInitiator)_\(new.spiResponder) is redundant; deleting it and keeping the peer's "
                            + "\(peers.spiInitiator)_\(peers.spiResponder)")
                ]
                    + sendRequest(session: new, exchange: .informational, payloads: [.delete(.ikeSA)], context: .deleteIKE, now: now)
                    + sendNextQueued(session: peers, now: now)
            }
            count(.rekeyCollisionWon)
            actions.append(
                .log(
                    "simultaneous rekey of IKE SA \(session.spiInitiator)_\(session.spiResponder) settled: the lowest nonce is in the peer's "
                        + "exchange, so our IKE SA stays and the peer deletes its own \(peers.spiInitiator)_\(peers.spiResponder)"))
            replaced = peers
        }
        moveChildren(from: replaced, to: new, now: now)
        session.startDeleting()
        var event = ikeEvent(.ikeRekeyed, session: new, detail: "\(replaced.spiInitiator)_\(replaced.spiResponder)")
        event.ikeSuite = suite
        actions += info("IKE SA \(session.spiInitiator)_\(session.spiResponder) rekeyed to \(new.spiInitiator)_\(new.spiResponder)")
        actions.append(.event(event))
        return actions
            + sendRequest(session: session, exchange: .informational, payloads: [.delete(.ikeSA)], context: .deleteIKE, now: now)
            + sendNextQueued(session: new, now: now)
    }

    func handleRekeyIKERequest(
        session: IKESession, header: IKEHeader, sa: SecurityAssociationPayload, payloads: [Payload],
        nonce: Nonce, now: Double
    ) -> [EngineAction] {
        // A CHILD SA exchange of ours in flight would finish on the old IKE SA after its CHILD SAs moved:
        // the peer is asked to try later (section 2.25.2), as strongSwan does.
        if let context = session.outstanding?.context, !context.isIKERekey, !context.isLiveness {
            return [
                .log(
                    "peer asked to rekey IKE SA \(session.spiInitiator)_\(session.spiResponder) while our \(context) exchange is in flight: TEMPORARY_FAILURE"
                )
            ]
                + respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .temporaryFailure))])
        }
        // Nor while a CHILD SA the peer asked for is half made here: its IKE_FOLLOWUP_KE exchanges run on this IKE SA.
        if session.followUps.contains(where: { if case .child = $0.target { true } else { false } }) {
            return [
                .log(
                    "peer asked to rekey IKE SA \(session.spiInitiator)_\(session.spiResponder) while one of its CHILD SAs waits for its "
                        + "additional key exchanges: TEMPORARY_FAILURE")
            ]
                + respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .temporaryFailure))])
        }
        let usable = SecurityAssociationPayload(proposals: sa.proposals.filter { $0.spi.count == 8 })
        guard session.keying != nil, let selection = selectIKEProposal(sa: usable, proposals: session.connection.proposals),
            let ke = payloads.keyExchange,
            let proposal = usable.proposals.first(where: { $0.number == selection.proposalNumber })
        else {
            return respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .noProposalChosen))])
        }
        let suite = selection.suite
        guard ke.group == suite.group.rawValue else {
            return respond(session: session, to: header, payloads: [.notify(.invalidKEPayload(group: suite.group.rawValue))])
        }
        let ours = suite.group.generatePrivateKey(random: random)
        guard let secret = try? ours.sharedSecret(peerPublicValue: ke.data) else {
            count(.invalidKEValue)
            return respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .invalidSyntax))])
        }
        let ourNonce = newNonce()
        let peerSPI = IKESPI(bytes: proposal.spi)
        let ourSPI = newIKESPI()
        var response: [Payload] = [
            .securityAssociation(SecurityAssociationPayload(proposals: [suite.proposal(number: proposal.number, spi: ourSPI.bytes)])),
            .nonce(NoncePayload(ourNonce)),
            .keyExchange(KeyExchangePayload(group: suite.group.rawValue, data: ours.publicValue))
        ]
        let additional = suite.keyExchangesToRun
        if let ours = session.outstanding?.context, ours.isIKERekey, !ours.isRekeyIKERequest {
            // Our rekey was answered and its IKE_FOLLOWUP_KE exchanges are under way: too late to set the two
            // against each other, the peer tries again later (as strongSwan 6 does).
            return [
                .log(
                    "peer asked to rekey IKE SA \(session.spiInitiator)_\(session.spiResponder) while our rekey runs its additional key exchanges: TEMPORARY_FAILURE"
                )
            ]
                + respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .temporaryFailure))])
        }
        if !additional.isEmpty {
            // RFC 9370 section 2.2.4: the new IKE SA is made after the IKE_FOLLOWUP_KE exchanges this answer links.
            if session.outstanding?.context.isRekeyIKERequest == true {
                // Our own rekey crossed this one: the nonces decide when ours is answered (`startFollowUps`).
                session.rekey.crossedBy = PeerRekeyRecord(nonces: [nonce, ourNonce], ikeReplacement: ourSPI)
            }
            let exchanges = FollowUpKeyExchanges(
                target: .ikeSA(spiInitiator: peerSPI, spiResponder: ourSPI, suite: suite), nonceInitiator: nonce, nonceResponder: ourNonce,
                firstSecret: secret, remaining: additional, link: [], startedAt: now)
            response.append(awaitFollowUps(session: session, exchanges: exchanges))
            return info("CREATE_CHILD_SA for the IKE SA rekey answered; \(additional.count) additional key exchange(s) to follow")
                + respond(session: session, to: header, payloads: response)
        }
        // Answer under the old SA's keys before the new SA takes the children.
        return respond(session: session, to: header, payloads: response)
            + acceptPeerIKERekey(
                session: session, peerSPI: peerSPI, ourSPI: ourSPI, suite: suite, secret: secret, additionalSecrets: [], peerNonce: nonce,
                ourNonce: ourNonce, now: now)
    }

    /// The peer's rekey of this IKE SA was answered (and its additional key exchanges ran): the new IKE SA takes
    /// the CHILD SAs, unless our own rekey crossed it and the tie is still to be broken (section 2.8.2).
    func acceptPeerIKERekey(
        session: IKESession, peerSPI: IKESPI, ourSPI: IKESPI, suite: IKECipherSuite, secret: KeyMaterial, additionalSecrets: [KeyMaterial],
        peerNonce nonce: Nonce, ourNonce: Nonce, now: Double
    ) -> [EngineAction] {
        guard let oldKeying = session.keying else { return [] }
        var actions: [EngineAction] = []
        let new = makeRekeyedIKESA(
            old: session, oldKeying: oldKeying, initiatedHere: false, spiInitiator: peerSPI, spiResponder: ourSPI, suite: suite,
            sharedSecret: secret, additionalSecrets: additionalSecrets, nonceInitiator: nonce, nonceResponder: ourNonce, now: now)
        // A rekey of ours not yet sent is moot; one in flight collides with this one (section 2.8.2).
        let queuedBefore = session.queued.count
        session.queued.removeAll { $0.context.isIKERekey }
        var collision = false
        if session.outstanding?.context.isIKERekey == true {
            collision = true
            session.rekey.crossedBy = PeerRekeyRecord(nonces: [nonce, ourNonce], ikeReplacement: new.localSPI)
            actions.append(
                .log(
                    "simultaneous rekey of IKE SA \(session.spiInitiator)_\(session.spiResponder): both ends rekey it, "
                        + "the lowest nonce decides which new IKE SA stays"))
        } else if session.queued.count != queuedBefore {
            session.rekey.oursPending = false
        }
        moveChildren(from: session, to: new, now: now)
        var event = ikeEvent(.ikeRekeyed, session: new, detail: "\(session.spiInitiator)_\(session.spiResponder)")
        event.ikeSuite = suite
        actions += info("IKE SA \(session.spiInitiator)_\(session.spiResponder) rekeyed by peer to \(new.spiInitiator)_\(new.spiResponder)")
        actions.append(.event(event))
        // Until a collision is settled the requests we queued wait: they go on whichever new SA stays.
        if !collision { actions += sendNextQueued(session: new, now: now) }
        return actions
    }

    /// The IKE SA whose rekey of ours is in flight and collided with the peer's rekey that made `replacement`.
    func collidingRekey(replacedBy replacement: IKESession) -> IKESession? {
        sessions.values.first { old in
            old.rekey.crossedBy?.ikeReplacement == replacement.localSPI && old.outstanding?.context.isIKERekey == true
        }
    }

    /// An IKE SA whose CHILD SAs moved to its rekeyed successor goes quietly.
    func removeReplacedSession(_ session: IKESession) -> [EngineAction] {
        session.close()
        releaseFragments(of: session)
        if sessions[session.localSPI] === session { sessions[session.localSPI] = nil }
        return info("old IKE SA \(session.spiInitiator)_\(session.spiResponder) removed after rekey")
    }

    /// The peer deletes an IKE SA we are rekeying (section 2.25.2): the peer wins and our rekey is forgotten;
    /// the lines say whether it was a simultaneous rekey the peer settled.
    func forgetOurRekeyOnPeerDelete(of session: IKESession) -> [EngineAction] {
        var notes: [EngineAction] = []
        if session.outstanding?.context.isIKERekey == true {
            // Section 2.25.2: a peer that closes the IKE SA we are rekeying wins; our rekey is forgotten.
            let what =
                session.rekey.crossedBy != nil
                ? "simultaneous rekey of IKE SA \(session.spiInitiator)_\(session.spiResponder) settled: "
                    + "the peer kept its new IKE SA and deleted this one before our rekey was answered, so ours is dropped"
                : "our rekey of IKE SA \(session.spiInitiator)_\(session.spiResponder) was still unanswered; it is dropped with the SA"
            notes.append(.log(what))
            if session.rekey.crossedBy != nil { count(.rekeyCollisionLost) }
        }
        return notes
    }

    /// The peer deletes its IKE SA that lost a simultaneous rekey before our own rekey was answered: the CHILD
    /// SAs go back to the old IKE SA and move on to ours when the answer comes. Nil when that is not the case.
    func settleRekeyOnPeerDelete(of session: IKESession, header: IKEHeader, now: Double) -> EarlyAnswer? {
        if let old = collidingRekey(replacedBy: session) {
            moveChildren(from: session, to: old, now: now)
            old.rekey.crossedBy = nil
            if let keying = old.keying { old.lifecycle = .established(keying) }
            count(.rekeyCollisionWon)
            return EarlyAnswer(
                actions: respond(session: session, to: header, payloads: [])
                    + [
                        .log(
                            "simultaneous rekey of IKE SA \(old.spiInitiator)_\(old.spiResponder) settled: the peer deleted its redundant "
                                + "IKE SA \(session.spiInitiator)_\(session.spiResponder), ours will stay once it is answered")
                    ]
                    + removeReplacedSession(session))
        }
        return nil
    }
}
