/// CREATE_CHILD_SA for a new CHILD SA (RFC 7296 sections 1.3.1, 2.9), with or without PFS, in both roles; the
/// negotiation and key derivation here serve the rekey of a CHILD SA too (ChildSARekey.swift).
struct ChildRefusal: Error {
    var notify: NotifyPayload
    static func of(_ type: NotifyType, data: [UInt8] = []) -> ChildRefusal { ChildRefusal(notify: NotifyPayload(type: type, data: data)) }
}

extension IKEEngine {
    // MARK: Responder

    /// Selects proposal and narrows traffic selectors for a CHILD SA the peer asked for (section 2.9), derives
    /// its keys and returns it with the SA/KE/TS payloads of the answer (the caller adds Nr) and SK(0), the
    /// shared secret of its KE payloads. When the suite chose additional key exchanges (RFC 9370), the keys
    /// are derived again once they ran (FollowUpKeyExchange.swift).
    func negotiateChild(
        session: IKESession, payloads: [Payload], candidates: [ChildConfiguration], nonceInitiator: Nonce,
        nonceResponder: Nonce, allowPFS: Bool, now: Double
    ) -> Result<(ChildSA, [Payload], KeyMaterial?), ChildRefusal> {
        guard let sa = payloads.securityAssociation, let tsi = payloads.trafficSelectorInitiator,
            let tsr = payloads.trafficSelectorResponder, let suiteIKE = session.suite, let keys = session.keys
        else {
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
                        guard let secret = try? ours.sharedSecret(peerPublicValue: peerKE.data) else {
                            count(.invalidKEValue)
                            return .failure(.of(.invalidSyntax))
                        }
                        sharedSecret = secret
                        response.append(.keyExchange(KeyExchangePayload(group: group.rawValue, data: ours.publicValue)))
                    }
                    let derived = KeyDerivation.childKeys(
                        prf: suiteIKE.prf, deriving: keys.deriving, suite: suite, sharedSecret: sharedSecret,
                        nonceInitiator: nonceInitiator, nonceResponder: nonceResponder)
                    let spiInbound = newChildSPI()
                    let spiOutbound = ChildSPI(bytes: proposal.spi)
                    let transport = payloads.notify(.useTransportMode) != nil && configuration.mode == .transport
                    let child = ChildSA(
                        configuration: configuration, spiInbound: spiInbound, spiOutbound: spiOutbound, suite: suite,
                        keys: session.directionalKeys(derived, initiatedHere: false),
                        localTrafficSelectors: narrowedResponder, remoteTrafficSelectors: narrowedInitiator,
                        mode: transport ? .transport : .tunnel, createdAt: now)
                    var answer: [Payload] = []
                    if transport { answer.append(.notify(NotifyPayload(type: .useTransportMode))) }
                    answer.append(
                        .securityAssociation(SecurityAssociationPayload(proposals: [suite.proposal(number: proposal.number, spi: spiInbound)])))
                    answer += response
                    answer.append(.trafficSelectorInitiator(TrafficSelectorPayload(selectors: narrowedInitiator)))
                    answer.append(.trafficSelectorResponder(TrafficSelectorPayload(selectors: narrowedResponder)))
                    return .success((child, answer, sharedSecret))
                }
            }
        }
        return .failure(.of(narrowedAny ? .noProposalChosen : .tsUnacceptable))
    }

    /// A CREATE_CHILD_SA request: an IKE SA rekey goes to IKESARekey.swift; a CHILD SA (new, or a rekey with
    /// REKEY_SA) is negotiated here.
    func handleCreateChildRequest(session: IKESession, header: IKEHeader, payloads: [Payload], now: Double) -> [EngineAction] {
        guard session.state == .established else {
            return respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .temporaryFailure))])
        }
        guard let sa = payloads.securityAssociation, let nonce = payloads.nonce else {
            return respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .invalidSyntax))])
        }
        if sa.proposals.first?.protocolID == .ike {
            return handleRekeyIKERequest(session: session, header: header, sa: sa, payloads: payloads, nonce: nonce.nonce, now: now)
        }
        var candidates = session.connection.children
        var rekeying: ChildSA?
        if let rekey = payloads.notify(.rekeySA) {
            switch childToRekey(session: session, header: header, rekey: rekey) {
            case .failure(let refused): return refused.actions
            case .success(let old):
                rekeying = old
                candidates = [old.configuration]
            }
        }
        let ourNonce = newNonce()
        switch negotiateChild(
            session: session, payloads: payloads, candidates: candidates, nonceInitiator: nonce.nonce,
            nonceResponder: ourNonce, allowPFS: true, now: now)
        {
        case .failure(let refusal):
            return [.log("CREATE_CHILD_SA from \(session.remote) refused: \(refusal.notify.type)")]
                + respond(session: session, to: header, payloads: [.notify(refusal.notify)])
        case .success(let (child, answer, sharedSecret)):
            var response = answer
            let saIndex = response.firstIndex { $0.type == .securityAssociation }!
            response.insert(.nonce(NoncePayload(ourNonce)), at: saIndex + 1)
            let additional = child.suite.keyExchangesToRun
            if let sharedSecret, !additional.isEmpty {
                // RFC 9370 section 2.2.4: the CHILD SA is made after the IKE_FOLLOWUP_KE exchanges this answer links.
                if let old = rekeying { notePeerRekeyCrossingOurs(session: session, old: old, nonces: [nonce.nonce, ourNonce], replacement: child) }
                let exchanges = FollowUpKeyExchanges(
                    target: .child(child, rekeying: rekeying?.spiInbound), nonceInitiator: nonce.nonce, nonceResponder: ourNonce,
                    firstSecret: sharedSecret, remaining: additional, link: [], startedAt: now)
                response.insert(awaitFollowUps(session: session, exchanges: exchanges), at: saIndex + 2)
                return info("CREATE_CHILD_SA for \(describe(exchanges.target)) answered; \(additional.count) additional key exchange(s) to follow")
                    + respond(session: session, to: header, payloads: response)
            }
            session.children.append(child)
            var actions = respond(session: session, to: header, payloads: response)
            if let old = rekeying {
                actions += acceptPeerChildRekey(session: session, replacing: old, with: child, nonces: [nonce.nonce, ourNonce], now: now)
            } else {
                actions += announceNewChild(session: session, child: child)
            }
            return actions
        }
    }

    /// The log line and event of a new CHILD SA (not a rekey).
    func announceNewChild(session: IKESession, child: ChildSA) -> [EngineAction] {
        info("CHILD SA '\(child.configuration.name)' \(child.spiInbound)/\(child.spiOutbound) established (\(child.suite.name))")
            + [.event(childEvent(.childEstablished, session: session, child: child))]
    }

    // MARK: Initiator

    func finishChildRequest(
        session: IKESession, request: ChildRequest, payloads: [Payload], nonceInitiator: Nonce,
        nonceResponder: Nonce, now: Double
    ) -> [EngineAction] {
        guard let suiteIKE = session.suite, let keys = session.keys else { return [] }
        if let error = payloads.notifies.first(where: { $0.type.isError }) {
            return childRequestFailed(session: session, request: request, reason: "refused by peer: \(error.type)", now: now)
        }
        guard let sa = payloads.securityAssociation, sa.proposals.count == 1, let tsi = payloads.trafficSelectorInitiator,
            let tsr = payloads.trafficSelectorResponder
        else {
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
            inside(tsr.selectors, request.configuration.remoteTrafficSelectors)
        else {
            return childRequestFailed(session: session, request: request, reason: "peer widened the traffic selectors", now: now)
        }
        var sharedSecret: KeyMaterial?
        if let keyExchange = request.keyExchange {
            guard let ke = payloads.keyExchange, ke.group == keyExchange.group.rawValue,
                let secret = try? keyExchange.sharedSecret(peerPublicValue: ke.data)
            else {
                return childRequestFailed(session: session, request: request, reason: "missing or invalid KE in answer", now: now)
            }
            sharedSecret = secret
        }
        let derived = KeyDerivation.childKeys(
            prf: suiteIKE.prf, deriving: keys.deriving, suite: suite, sharedSecret: sharedSecret,
            nonceInitiator: nonceInitiator, nonceResponder: nonceResponder)
        let transport = request.configuration.mode == .transport && payloads.notify(.useTransportMode) != nil
        let child = ChildSA(
            configuration: request.configuration, spiInbound: request.spiInbound,
            spiOutbound: ChildSPI(bytes: proposal.spi), suite: suite,
            keys: session.directionalKeys(derived, initiatedHere: true), localTrafficSelectors: tsi.selectors,
            remoteTrafficSelectors: tsr.selectors, mode: transport ? .transport : .tunnel, createdAt: now)
        let additional = suite.keyExchangesToRun
        if let sharedSecret, !additional.isEmpty {
            // RFC 9370 section 2.2.4: the CHILD SA is made after the IKE_FOLLOWUP_KE exchanges.
            let exchanges = FollowUpKeyExchanges(
                target: .child(child, rekeying: request.rekeying), nonceInitiator: nonceInitiator, nonceResponder: nonceResponder,
                firstSecret: sharedSecret, remaining: additional, link: [], startedAt: now)
            return startFollowUps(session: session, exchanges: exchanges, answer: payloads, now: now)
                ?? childRequestFailed(
                    session: session, request: request, reason: "answer chose additional key exchanges but names no ADDITIONAL_KEY_EXCHANGE link",
                    now: now)
        }
        return establishOurChild(session: session, child: child, rekeying: request.rekeying, nonces: [nonceInitiator, nonceResponder], now: now)
    }

    /// A CHILD SA we asked for is made: a new one is announced, a replacement finishes the rekey.
    func establishOurChild(session: IKESession, child: ChildSA, rekeying: ChildSPI?, nonces: [Nonce], now: Double) -> [EngineAction] {
        guard let old = rekeying else {
            session.children.append(child)
            return announceNewChild(session: session, child: child)
        }
        return finishChildRekey(session: session, child: child, replacing: old, ourNonces: nonces, now: now)
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

    func makeChildRequest(session: IKESession, configuration: ChildConfiguration, rekeying: ChildSPI?, group: KeyExchangeGroup? = nil) -> ChildRequest
    {
        let pfsGroup = group ?? configuration.proposals.lazy.compactMap(\.groups.first).first
        return ChildRequest(
            configuration: configuration, spiInbound: newChildSPI(), nonce: newNonce(),
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
        var middle: [Payload] = [.nonce(NoncePayload(request.nonce))]
        if let ke = request.keyExchange { middle.append(.keyExchange(KeyExchangePayload(group: ke.group.rawValue, data: ke.publicValue))) }
        childPayloads.insert(contentsOf: middle, at: tsStart)
        payloads += childPayloads
        return sendRequest(session: session, exchange: .createChildSA, payloads: payloads, context: .createChild(request), now: now)
    }

    func requestNewChild(session: IKESession, configuration: ChildConfiguration, now: Double) -> [EngineAction] {
        sendChildRequest(session: session, request: makeChildRequest(session: session, configuration: configuration, rekeying: nil), now: now)
    }

    func handleChildResponse(session: IKESession, request: ChildRequest, payloads: [Payload], now: Double) -> [EngineAction] {
        if let requested = payloads.notify(.invalidKEPayload)?.requestedGroup, let group = KeyExchangeGroup(rawValue: requested),
            request.configuration.proposals.contains(where: { $0.groups.contains(group) }), group != request.keyExchange?.group
        {
            let retry = makeChildRequest(session: session, configuration: request.configuration, rekeying: request.rekeying, group: group)
            return [.log("peer wants PFS group \(group.name) for CHILD SA, retrying")] + sendChildRequest(session: session, request: retry, now: now)
        }
        guard let nonce = payloads.nonce else {
            return finishChildRequest(
                session: session, request: request, payloads: payloads.filter { $0.type == .notify }, nonceInitiator: Nonce([]),
                nonceResponder: Nonce([]), now: now
            )
        }
        return finishChildRequest(
            session: session, request: request, payloads: payloads, nonceInitiator: request.nonce,
            nonceResponder: nonce.nonce, now: now)
    }
}
