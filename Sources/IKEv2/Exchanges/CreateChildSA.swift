/// CREATE_CHILD_SA (RFC 7296 sections 1.3, 2.8): new CHILD SAs, CHILD SA rekeying and IKE SA rekeying,
/// with or without PFS, in both roles.
struct ChildRefusal: Error {
    var notify: NotifyPayload
    static func of(_ type: NotifyType, data: [UInt8] = []) -> ChildRefusal { ChildRefusal(notify: NotifyPayload(type: type, data: data)) }
}

extension IKEEngine {
    // MARK: Responder side of a CHILD SA

    /// Selects proposal and narrows traffic selectors for a CHILD SA the peer asked for (section 2.9), derives
    /// its keys and returns it with the SA/KE/TS payloads of the answer (the caller adds Nr).
    func negotiateChild(session: IKESession, payloads: [Payload], candidates: [ChildConfiguration], nonceInitiator: [UInt8],
                        nonceResponder: [UInt8], allowPFS: Bool, now: Double) -> Result<(ChildSA, [Payload]), ChildRefusal> {
        guard let sa = payloads.securityAssociation, let tsi = payloads.trafficSelectorInitiator,
              let tsr = payloads.trafficSelectorResponder, let suiteIKE = session.suite, let keys = session.keys else {
            return .failure(.of(.invalidSyntax))
        }
        let peerKE = allowPFS ? payloads.keyExchange : nil
        var narrowedAny = false
        for configuration in candidates {
            let narrowedInitiator = tsi.selectors.flatMap { s in configuration.remoteTrafficSelectors.compactMap { s.intersection($0) } }
            let narrowedResponder = tsr.selectors.flatMap { s in configuration.localTrafficSelectors.compactMap { s.intersection($0) } }
            guard !narrowedInitiator.isEmpty, !narrowedResponder.isEmpty else { continue }
            narrowedAny = true
            for proposal in sa.proposals {
                for spec in configuration.proposals {
                    // PFS is required in CREATE_CHILD_SA when configured; IKE_AUTH cannot carry KE (section 1.2).
                    if allowPFS && peerKE == nil && !spec.groups.isEmpty { continue }
                    guard let suite = spec.selectChild(from: proposal, pfs: peerKE != nil && !spec.groups.isEmpty) else { continue }
                    var sharedSecret: KeyMaterial?
                    var response: [Payload] = []
                    if let group = suite.group, let peerKE {
                        guard peerKE.group == group.rawValue else {
                            return .failure(ChildRefusal(notify: .invalidKEPayload(group: group.rawValue)))
                        }
                        let ours = group.generatePrivateKey(random: random)
                        guard let secret = try? ours.sharedSecret(peerPublicValue: peerKE.data) else { return .failure(.of(.invalidSyntax)) }
                        sharedSecret = secret
                        response.append(.keyExchange(KeyExchangePayload(group: group.rawValue, data: ours.publicValue)))
                    }
                    let derived = KeyDerivation.childKeys(prf: suiteIKE.prf, deriving: keys.deriving, suite: suite, sharedSecret: sharedSecret,
                                                          nonceInitiator: nonceInitiator, nonceResponder: nonceResponder)
                    let spiInbound = newChildSPI()
                    let spiOutbound = ChildSPI(bytes: proposal.spi)
                    let transport = payloads.notify(.useTransportMode) != nil && configuration.mode == .transport
                    let child = ChildSA(configuration: configuration, spiInbound: spiInbound, spiOutbound: spiOutbound, suite: suite,
                                        keys: session.directionalKeys(derived, initiatedHere: false),
                                        localTrafficSelectors: narrowedResponder, remoteTrafficSelectors: narrowedInitiator,
                                        mode: transport ? .transport : .tunnel, createdAt: now)
                    var answer: [Payload] = []
                    if transport { answer.append(.notify(NotifyPayload(type: .useTransportMode))) }
                    answer.append(.securityAssociation(SecurityAssociationPayload(proposals: [suite.proposal(number: proposal.number, spi: spiInbound)])))
                    answer += response
                    answer.append(.trafficSelectorInitiator(TrafficSelectorPayload(selectors: narrowedInitiator)))
                    answer.append(.trafficSelectorResponder(TrafficSelectorPayload(selectors: narrowedResponder)))
                    return .success((child, answer))
                }
            }
        }
        return .failure(.of(narrowedAny ? .noProposalChosen : .tsUnacceptable))
    }

    // MARK: Initiator side of a CHILD SA

    func finishChildRequest(session: IKESession, request: ChildRequest, payloads: [Payload], nonceInitiator: [UInt8],
                            nonceResponder: [UInt8], now: Double) -> [EngineAction] {
        guard let suiteIKE = session.suite, let keys = session.keys else { return [] }
        if let error = payloads.notifies.first(where: { $0.type.isError }) {
            return childRequestFailed(session: session, request: request, reason: "refused by peer: \(error.type)", now: now)
        }
        guard let sa = payloads.securityAssociation, sa.proposals.count == 1, let tsi = payloads.trafficSelectorInitiator,
              let tsr = payloads.trafficSelectorResponder else {
            return childRequestFailed(session: session, request: request, reason: "answer lacks SA or traffic selectors", now: now)
        }
        let proposal = sa.proposals[0]
        let pfs = request.keyExchange != nil
        guard let suite = request.configuration.proposals.lazy.compactMap({ $0.selectChild(from: proposal, pfs: pfs) }).first else {
            return childRequestFailed(session: session, request: request, reason: "peer chose a proposal we did not offer", now: now)
        }
        let inside = { (selectors: [TrafficSelector], ours: [TrafficSelector]) in
            selectors.allSatisfy { s in ours.contains { $0.contains(s) } }
        }
        guard inside(tsi.selectors, request.configuration.localTrafficSelectors),
              inside(tsr.selectors, request.configuration.remoteTrafficSelectors) else {
            return childRequestFailed(session: session, request: request, reason: "peer widened the traffic selectors", now: now)
        }
        var sharedSecret: KeyMaterial?
        if let keyExchange = request.keyExchange {
            guard let ke = payloads.keyExchange, ke.group == keyExchange.group.rawValue,
                  let secret = try? keyExchange.sharedSecret(peerPublicValue: ke.data) else {
                return childRequestFailed(session: session, request: request, reason: "missing or invalid KE in answer", now: now)
            }
            sharedSecret = secret
        }
        let derived = KeyDerivation.childKeys(prf: suiteIKE.prf, deriving: keys.deriving, suite: suite, sharedSecret: sharedSecret,
                                              nonceInitiator: nonceInitiator, nonceResponder: nonceResponder)
        let transport = request.configuration.mode == .transport && payloads.notify(.useTransportMode) != nil
        var child = ChildSA(configuration: request.configuration, spiInbound: request.spiInbound,
                            spiOutbound: ChildSPI(bytes: proposal.spi), suite: suite,
                            keys: session.directionalKeys(derived, initiatedHere: true), localTrafficSelectors: tsi.selectors,
                            remoteTrafficSelectors: tsr.selectors, mode: transport ? .transport : .tunnel, createdAt: now)
        let deleteNew = { (why: String) -> [EngineAction] in
            [.log(why)] + self.sendRequest(session: session, exchange: .informational, payloads: [.delete(.child([child.spiInbound]))],
                                           context: .deleteChildren([child.spiInbound]), now: now)
        }
        guard let old = request.rekeying else {
            session.children.append(child)
            return [.log("CHILD SA '\(child.configuration.name)' \(child.spiInbound)/\(child.spiOutbound) established (\(suite.name))"),
                    .event(childEvent(.childEstablished, session: session, child: child))]
        }
        guard let index = session.children.firstIndex(where: { $0.spiInbound == old }) else {
            child.rekeyed = true; child.rekeyedAt = now; child.announced = false
            session.children.append(child)
            if session.supersededRekeys.remove(old) != nil {
                count(.rekeyCollisionLost)
                return deleteNew("simultaneous rekey of CHILD SA \(old) settled: the peer kept its replacement and deleted the old SA "
                                 + "before our rekey was answered; deleting our redundant \(child.spiInbound)/\(child.spiOutbound)")
            }
            // The peer closed the SA while we rekeyed it; its replacement goes too, as strongSwan does.
            return deleteNew("CHILD SA \(old) was deleted by the peer while being rekeyed; deleting its replacement \(child.spiInbound)/\(child.spiOutbound)")
        }
        let replaced = session.children[index]
        if let collision = replaced.peerRekey,
           RekeyCollision.ourReplacementIsRedundant(ourNonces: [nonceInitiator, nonceResponder], peerNonces: collision.nonces) {
            // Ours lost: the peer's replacement stays, the peer deletes the old SA, we delete ours unannounced.
            child.rekeyed = true; child.rekeyedAt = now; child.announced = false
            session.children.append(child)
            count(.rekeyCollisionLost)
            return deleteNew("simultaneous rekey of CHILD SA \(replaced.spiInbound)/\(replaced.spiOutbound) settled: the lowest nonce is in our exchange, "
                             + "so our replacement \(child.spiInbound)/\(child.spiOutbound) is redundant; deleting it and keeping the peer's")
        }
        session.children.append(child)
        session.children[index].rekeyed = true
        session.children[index].rekeyedAt = now
        var actions: [EngineAction] = []
        if replaced.peerRekey != nil {
            count(.rekeyCollisionWon)
            actions.append(.log("simultaneous rekey of CHILD SA \(replaced.spiInbound)/\(replaced.spiOutbound) settled: the lowest nonce is in the peer's "
                                + "exchange, so our replacement stays and the peer deletes its own"))
        }
        actions.append(.log("CHILD SA \(replaced.spiInbound)/\(replaced.spiOutbound) rekeyed to \(child.spiInbound)/\(child.spiOutbound)"))
        actions.append(.event(childEvent(.childRekeyed, session: session, child: child,
                                         replaces: (replaced.spiInbound, replaced.spiOutbound))))
        // Make-before-break: the new SA is in place, now retire the old one.
        actions += sendRequest(session: session, exchange: .informational, payloads: [.delete(.child([old]))],
                               context: .deleteChildren([old]), now: now)
        return actions
    }

    /// A CHILD SA request that came to nothing. A failed rekey is tried again later, unless the peer's
    /// own rekey of the same SA already replaced it.
    func childRequestFailed(session: IKESession, request: ChildRequest, reason: String, now: Double) -> [EngineAction] {
        count(.childRefused)
        var actions: [EngineAction] = [.log("CHILD SA '\(request.configuration.name)': \(reason)")]
        if request.rekeying == nil {
            actions.append(.event(ikeEvent(.childFailed, session: session, detail: "CHILD SA '\(request.configuration.name)': \(reason)")))
        }
        if let old = request.rekeying, let index = session.children.firstIndex(where: { $0.spiInbound == old }) {
            if session.children[index].rekeyed {
                actions.append(.log("CHILD SA \(old) was rekeyed by the peer meanwhile; nothing to retry"))
            } else {
                let delay = retryDelay()
                session.children[index].rekeyNotBefore = now + delay
                actions.append(.log("rekey of CHILD SA \(old) will be tried again in \(Int(delay)) s"))
            }
        }
        return actions
    }

    /// The rekey retry delay with its random part (section 2.8.1 asks for jitter so collisions do not repeat).
    func retryDelay() -> Double {
        settings.rekeyRetryDelay * (1 + Double(random.uint32() % 1000) / 2000)
    }

    func makeChildRequest(session: IKESession, configuration: ChildConfiguration, rekeying: ChildSPI?, group: KeyExchangeGroup? = nil) -> ChildRequest {
        let pfsGroup = group ?? configuration.proposals.lazy.compactMap(\.groups.first).first
        return ChildRequest(configuration: configuration, spiInbound: newChildSPI(), nonce: newNonce(),
                            keyExchange: pfsGroup.map { $0.generatePrivateKey(random: random) }, rekeying: rekeying)
    }

    func sendChildRequest(session: IKESession, request: ChildRequest, now: Double) -> [EngineAction] {
        var payloads: [Payload] = []
        if let old = request.rekeying {
            payloads.append(.notify(NotifyPayload(protocolID: .esp, spi: old.bytes, type: .rekeySA)))
        }
        var childPayloads = childRequestPayloads(request, includeGroups: request.keyExchange != nil)
        // Order: [N(USE_TRANSPORT_MODE)], SA, Ni, [KEi], TSi, TSr.
        let tsStart = childPayloads.firstIndex { $0.type == .trafficSelectorInitiator }!
        var middle: [Payload] = [.nonce(NoncePayload(data: request.nonce))]
        if let ke = request.keyExchange { middle.append(.keyExchange(KeyExchangePayload(group: ke.group.rawValue, data: ke.publicValue))) }
        childPayloads.insert(contentsOf: middle, at: tsStart)
        payloads += childPayloads
        return sendRequest(session: session, exchange: .createChildSA, payloads: payloads, context: .createChild(request), now: now)
    }

    func requestNewChild(session: IKESession, configuration: ChildConfiguration, now: Double) -> [EngineAction] {
        sendChildRequest(session: session, request: makeChildRequest(session: session, configuration: configuration, rekeying: nil), now: now)
    }

    func requestRekeyChild(session: IKESession, child: ChildSA, now: Double) -> [EngineAction] {
        let request = makeChildRequest(session: session, configuration: child.configuration, rekeying: child.spiInbound,
                                       group: child.suite.group)
        return [.log("rekeying CHILD SA \(child.spiInbound)/\(child.spiOutbound) (age \(RekeySchedule.seconds(now - child.createdAt)) s)")] + sendChildRequest(session: session, request: request, now: now)
    }

    func handleChildResponse(session: IKESession, request: ChildRequest, payloads: [Payload], now: Double) -> [EngineAction] {
        if let requested = payloads.notify(.invalidKEPayload)?.requestedGroup, let group = KeyExchangeGroup(rawValue: requested),
           request.configuration.proposals.contains(where: { $0.groups.contains(group) }), group != request.keyExchange?.group {
            let retry = makeChildRequest(session: session, configuration: request.configuration, rekeying: request.rekeying, group: group)
            return [.log("peer wants PFS group \(group.name) for CHILD SA, retrying")] + sendChildRequest(session: session, request: retry, now: now)
        }
        guard let nonce = payloads.nonce else {
            return finishChildRequest(session: session, request: request, payloads: payloads.filter { $0.type == .notify }, nonceInitiator: [], nonceResponder: [], now: now)
        }
        return finishChildRequest(session: session, request: request, payloads: payloads, nonceInitiator: request.nonce,
                                  nonceResponder: nonce.data, now: now)
    }

    // MARK: IKE SA rekey

    func requestRekeyIKE(session: IKESession, now: Double) -> [EngineAction] {
        guard let group = session.suite?.group ?? session.connection.proposals.first?.groups.first else { return [] }
        let spi = newIKESPI()
        let nonce = newNonce()
        let keyExchange = group.generatePrivateKey(random: random)
        let proposals = ikeProposals(connection: session.connection, spi: spi.bytes, preferring: group)
        session.rekeyInProgress = true
        let payloads: [Payload] = [.securityAssociation(SecurityAssociationPayload(proposals: proposals)), .nonce(NoncePayload(data: nonce)),
                                   .keyExchange(KeyExchangePayload(group: group.rawValue, data: keyExchange.publicValue))]
        return [.log("rekeying IKE SA \(session.spiInitiator)_\(session.spiResponder) (age \(RekeySchedule.seconds(now - session.createdAt)) s)")]
            + sendRequest(session: session, exchange: .createChildSA, payloads: payloads,
                          context: .rekeyIKE(spi: spi, nonce: nonce, keyExchange: keyExchange), now: now)
    }

    /// Builds and registers the IKE SA a rekey of `old` made (section 2.18); its CHILD SAs move separately.
    func makeRekeyedIKESA(old: IKESession, initiatedHere: Bool, spiInitiator: IKESPI, spiResponder: IKESPI, suite: IKECipherSuite,
                          sharedSecret: KeyMaterial, nonceInitiator: [UInt8], nonceResponder: [UInt8], now: Double) -> IKESession {
        let new = IKESession(connection: old.connection, isOriginalInitiator: initiatedHere, spiInitiator: spiInitiator,
                             spiResponder: spiResponder, local: old.local, remote: old.remote, now: now)
        // SKEYSEED of a rekeyed IKE SA uses the old SA's PRF and SK_d.
        let skeyseed = KeyDerivation.rekeyedSkeyseed(prf: old.suite!.prf, oldDeriving: old.keys!.deriving, sharedSecret: sharedSecret,
                                                     nonceInitiator: nonceInitiator, nonceResponder: nonceResponder)
        new.suite = suite
        new.keys = KeyDerivation.ikeKeys(suite: suite, skeyseed: skeyseed, nonceInitiator: nonceInitiator, nonceResponder: nonceResponder,
                                         spiInitiator: spiInitiator, spiResponder: spiResponder)
        new.nonceInitiator = nonceInitiator; new.nonceResponder = nonceResponder
        new.natDetected = old.natDetected
        new.state = .established
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
        old.replacedByRekey = true
        old.replacedAt = now
        old.state = .deleting
    }

    func handleRekeyIKEResponse(session: IKESession, spi: IKESPI, nonce: [UInt8], keyExchange: KeyExchangePrivateKey,
                                payloads: [Payload], now: Double) -> [EngineAction] {
        session.rekeyInProgress = false
        guard let sa = payloads.securityAssociation, sa.proposals.count == 1, sa.proposals[0].spi.count == 8,
              let suite = session.connection.proposals.lazy.compactMap({ $0.selectIKE(from: sa.proposals[0]) }).first,
              let ke = payloads.keyExchange, ke.group == keyExchange.group.rawValue, let peerNonce = payloads.nonce,
              let secret = try? keyExchange.sharedSecret(peerPublicValue: ke.data) else {
            let reason = payloads.notifies.first { $0.type.isError }.map { "\($0.type)" } ?? "unusable answer"
            count(.ikeRekeyFailed)
            var actions: [EngineAction] = [.log("IKE SA rekey refused: \(reason)")]
            if session.peerRekey != nil || session.replacedByRekey {
                actions.append(.log("the peer's own rekey of IKE SA \(session.spiInitiator)_\(session.spiResponder) stands"))
            } else if session.state == .established {
                let delay = retryDelay()
                session.rekeyAt = now + delay
                actions.append(.log("rekey of IKE SA \(session.spiInitiator)_\(session.spiResponder) will be tried again in \(Int(delay)) s"))
            }
            return actions
        }
        let peerSPI = IKESPI(bytes: sa.proposals[0].spi)
        let new = makeRekeyedIKESA(old: session, initiatedHere: true, spiInitiator: spi, spiResponder: peerSPI, suite: suite,
                                   sharedSecret: secret, nonceInitiator: nonce, nonceResponder: peerNonce.data, now: now)
        var replaced = session
        var actions: [EngineAction] = []
        if let collision = session.peerRekey, let peers = collision.ikeReplacement.flatMap({ sessions[$0] }) {
            if RekeyCollision.ourReplacementIsRedundant(ourNonces: [nonce, peerNonce.data], peerNonces: collision.nonces) {
                // Ours lost: the peer's IKE SA keeps the CHILD SAs and the peer deletes the old one; ours goes.
                new.replacedByRekey = true; new.replacedAt = now; new.state = .deleting
                count(.rekeyCollisionLost)
                return [.log("simultaneous rekey of IKE SA \(session.spiInitiator)_\(session.spiResponder) settled: the lowest nonce is in our exchange, "
                             + "so our IKE SA \(new.spiInitiator)_\(new.spiResponder) is redundant; deleting it and keeping the peer's "
                             + "\(peers.spiInitiator)_\(peers.spiResponder)")]
                    + sendRequest(session: new, exchange: .informational, payloads: [.delete(.ikeSA)], context: .deleteIKE, now: now)
                    + sendNextQueued(session: peers, now: now)
            }
            count(.rekeyCollisionWon)
            actions.append(.log("simultaneous rekey of IKE SA \(session.spiInitiator)_\(session.spiResponder) settled: the lowest nonce is in the peer's "
                                + "exchange, so our IKE SA stays and the peer deletes its own \(peers.spiInitiator)_\(peers.spiResponder)"))
            replaced = peers
        }
        moveChildren(from: replaced, to: new, now: now)
        session.state = .deleting
        var event = ikeEvent(.ikeRekeyed, session: new, detail: "\(replaced.spiInitiator)_\(replaced.spiResponder)")
        event.ikeSuite = suite
        actions += [.log("IKE SA \(session.spiInitiator)_\(session.spiResponder) rekeyed to \(new.spiInitiator)_\(new.spiResponder)"),
                    .event(event)]
        return actions
            + sendRequest(session: session, exchange: .informational, payloads: [.delete(.ikeSA)], context: .deleteIKE, now: now)
            + sendNextQueued(session: new, now: now)
    }

    // MARK: Requests from the peer

    func handleCreateChildRequest(session: IKESession, header: IKEHeader, payloads: [Payload], now: Double) -> [EngineAction] {
        guard session.state == .established else {
            return respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .temporaryFailure))])
        }
        guard let sa = payloads.securityAssociation, let nonce = payloads.nonce else {
            return respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .invalidSyntax))])
        }
        if sa.proposals.first?.protocolID == .ike {
            return handleRekeyIKERequest(session: session, header: header, sa: sa, payloads: payloads, nonce: nonce.data, now: now)
        }
        var candidates = session.connection.children
        var rekeying: ChildSA?
        if let rekey = payloads.notify(.rekeySA) {
            let spi = ChildSPI(bytes: rekey.spi)
            guard let old = session.children.first(where: { $0.spiOutbound == spi }) else {
                return [.log("peer asked to rekey unknown CHILD SA \(spi)")]
                    + respond(session: session, to: header, payloads: [.notify(NotifyPayload(protocolID: .esp, spi: rekey.spi, type: .childSANotFound))])
            }
            // Section 2.25.1: an SA this side is already replacing or closing is not rekeyed again.
            if old.rekeyed || isDeleting(session: session, spi: old.spiInbound) {
                return [.log("peer asked to rekey CHILD SA \(old.spiInbound)/\(old.spiOutbound), which is being replaced or deleted here: TEMPORARY_FAILURE")]
                    + respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .temporaryFailure))])
            }
            rekeying = old
            candidates = [old.configuration]
        }
        let ourNonce = newNonce()
        switch negotiateChild(session: session, payloads: payloads, candidates: candidates, nonceInitiator: nonce.data,
                              nonceResponder: ourNonce, allowPFS: true, now: now) {
        case .failure(let refusal):
            return [.log("CREATE_CHILD_SA from \(session.remote) refused: \(refusal.notify.type)")]
                + respond(session: session, to: header, payloads: [.notify(refusal.notify)])
        case .success(let (child, answer)):
            var response = answer
            let saIndex = response.firstIndex { $0.type == .securityAssociation }!
            response.insert(.nonce(NoncePayload(data: ourNonce)), at: saIndex + 1)
            session.children.append(child)
            var actions = respond(session: session, to: header, payloads: response)
            if let old = rekeying, let index = session.children.firstIndex(where: { $0.spiInbound == old.spiInbound }) {
                session.children[index].rekeyed = true
                session.children[index].rekeyedAt = now
                // A rekey of ours not yet sent is moot; one in flight collides with this one (section 2.8.1).
                session.queued.removeAll { if case .createChild(let r) = $0.context { return r.rekeying == old.spiInbound } else { return false } }
                var event = childEvent(.childRekeyed, session: session, child: child, replaces: (old.spiInbound, old.spiOutbound))
                if case .createChild(let r) = session.outstanding?.context, r.rekeying == old.spiInbound {
                    session.children[index].peerRekey = PeerRekeyRecord(nonces: [nonce.data, ourNonce], childReplacement: child.spiInbound)
                    actions.append(.log("simultaneous rekey of CHILD SA \(old.spiInbound)/\(old.spiOutbound): both ends rekey it, the lowest nonce decides which replacement stays"))
                    event.child?.outboundHeld = true
                }
                actions.append(.log("CHILD SA \(old.spiInbound)/\(old.spiOutbound) rekeyed by peer to \(child.spiInbound)/\(child.spiOutbound)"))
                actions.append(.event(event))
            } else {
                actions.append(.log("CHILD SA '\(child.configuration.name)' \(child.spiInbound)/\(child.spiOutbound) established (\(child.suite.name))"))
                actions.append(.event(childEvent(.childEstablished, session: session, child: child)))
            }
            return actions
        }
    }

    func handleRekeyIKERequest(session: IKESession, header: IKEHeader, sa: SecurityAssociationPayload, payloads: [Payload],
                               nonce: [UInt8], now: Double) -> [EngineAction] {
        // A CHILD SA exchange of ours in flight would finish on the old IKE SA after its CHILD SAs moved:
        // the peer is asked to try later (section 2.25.2), as strongSwan does.
        if let context = session.outstanding?.context {
            switch context {
            case .rekeyIKE, .liveness: break
            default:
                return [.log("peer asked to rekey IKE SA \(session.spiInitiator)_\(session.spiResponder) while our \(context) exchange is in flight: TEMPORARY_FAILURE")]
                    + respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .temporaryFailure))])
            }
        }
        let usable = SecurityAssociationPayload(proposals: sa.proposals.filter { $0.spi.count == 8 })
        guard let selection = selectIKEProposal(sa: usable, candidates: [session.connection]), let ke = payloads.keyExchange,
              let proposal = usable.proposals.first(where: { $0.number == selection.proposalNumber }) else {
            return respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .noProposalChosen))])
        }
        let suite = selection.suite
        guard ke.group == suite.group.rawValue else {
            return respond(session: session, to: header, payloads: [.notify(.invalidKEPayload(group: suite.group.rawValue))])
        }
        let ours = suite.group.generatePrivateKey(random: random)
        guard let secret = try? ours.sharedSecret(peerPublicValue: ke.data) else {
            return respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .invalidSyntax))])
        }
        let ourNonce = newNonce()
        let peerSPI = IKESPI(bytes: proposal.spi)
        let ourSPI = newIKESPI()
        let response: [Payload] = [
            .securityAssociation(SecurityAssociationPayload(proposals: [suite.proposal(number: proposal.number, spi: ourSPI.bytes)])),
            .nonce(NoncePayload(data: ourNonce)),
            .keyExchange(KeyExchangePayload(group: suite.group.rawValue, data: ours.publicValue)),
        ]
        // Answer under the old SA's keys before the new SA takes the children.
        var actions = respond(session: session, to: header, payloads: response)
        let new = makeRekeyedIKESA(old: session, initiatedHere: false, spiInitiator: peerSPI, spiResponder: ourSPI, suite: suite,
                                   sharedSecret: secret, nonceInitiator: nonce, nonceResponder: ourNonce, now: now)
        // A rekey of ours not yet sent is moot; one in flight collides with this one (section 2.8.2).
        let queuedBefore = session.queued.count
        session.queued.removeAll { if case .rekeyIKE = $0.context { return true } else { return false } }
        var collision = false
        if case .rekeyIKE = session.outstanding?.context {
            collision = true
            session.peerRekey = PeerRekeyRecord(nonces: [nonce, ourNonce], ikeReplacement: new.localSPI)
            actions.append(.log("simultaneous rekey of IKE SA \(session.spiInitiator)_\(session.spiResponder): both ends rekey it, "
                                + "the lowest nonce decides which new IKE SA stays"))
        } else if session.queued.count != queuedBefore {
            session.rekeyInProgress = false
        }
        moveChildren(from: session, to: new, now: now)
        var event = ikeEvent(.ikeRekeyed, session: new, detail: "\(session.spiInitiator)_\(session.spiResponder)")
        event.ikeSuite = suite
        actions.append(.log("IKE SA \(session.spiInitiator)_\(session.spiResponder) rekeyed by peer to \(new.spiInitiator)_\(new.spiResponder)"))
        actions.append(.event(event))
        // Until a collision is settled the requests we queued wait: they go on whichever new SA stays.
        if !collision { actions += sendNextQueued(session: new, now: now) }
        return actions
    }
}
