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
            count("child_refused")
            return [.log("CHILD SA '\(request.configuration.name)' refused by peer: \(error.type)")]
        }
        guard let sa = payloads.securityAssociation, sa.proposals.count == 1, let tsi = payloads.trafficSelectorInitiator,
              let tsr = payloads.trafficSelectorResponder else {
            count("child_refused")
            return [.log("CHILD SA '\(request.configuration.name)': answer lacks SA or traffic selectors")]
        }
        let proposal = sa.proposals[0]
        let pfs = request.keyExchange != nil
        guard let suite = request.configuration.proposals.lazy.compactMap({ $0.selectChild(from: proposal, pfs: pfs) }).first else {
            count("child_refused")
            return [.log("CHILD SA '\(request.configuration.name)': peer chose a proposal we did not offer")]
        }
        let inside = { (selectors: [TrafficSelector], ours: [TrafficSelector]) in
            selectors.allSatisfy { s in ours.contains { $0.contains(s) } }
        }
        guard inside(tsi.selectors, request.configuration.localTrafficSelectors),
              inside(tsr.selectors, request.configuration.remoteTrafficSelectors) else {
            count("child_refused")
            return [.log("CHILD SA '\(request.configuration.name)': peer widened the traffic selectors")]
        }
        var sharedSecret: KeyMaterial?
        if let keyExchange = request.keyExchange {
            guard let ke = payloads.keyExchange, ke.group == keyExchange.group.rawValue,
                  let secret = try? keyExchange.sharedSecret(peerPublicValue: ke.data) else {
                count("child_refused")
                return [.log("CHILD SA '\(request.configuration.name)': missing or invalid KE in answer")]
            }
            sharedSecret = secret
        }
        let derived = KeyDerivation.childKeys(prf: suiteIKE.prf, deriving: keys.deriving, suite: suite, sharedSecret: sharedSecret,
                                              nonceInitiator: nonceInitiator, nonceResponder: nonceResponder)
        let transport = request.configuration.mode == .transport && payloads.notify(.useTransportMode) != nil
        let child = ChildSA(configuration: request.configuration, spiInbound: request.spiInbound,
                            spiOutbound: ChildSPI(bytes: proposal.spi), suite: suite,
                            keys: session.directionalKeys(derived, initiatedHere: true), localTrafficSelectors: tsi.selectors,
                            remoteTrafficSelectors: tsr.selectors, mode: transport ? .transport : .tunnel, createdAt: now)
        session.children.append(child)
        var actions: [EngineAction] = []
        if let old = request.rekeying, let index = session.children.firstIndex(where: { $0.spiInbound == old }) {
            session.children[index].rekeyed = true
            let replaced = session.children[index]
            actions.append(.log("CHILD SA \(replaced.spiInbound)/\(replaced.spiOutbound) rekeyed to \(child.spiInbound)/\(child.spiOutbound)"))
            actions.append(.event(childEvent(.childRekeyed, session: session, child: child,
                                             replaces: (replaced.spiInbound, replaced.spiOutbound))))
            // Make-before-break: the new SA is in place, now retire the old one.
            actions += sendRequest(session: session, exchange: .informational, payloads: [.delete(.child([old]))],
                                   context: .deleteChildren([old]), now: now)
        } else {
            actions.append(.log("CHILD SA '\(child.configuration.name)' \(child.spiInbound)/\(child.spiOutbound) established (\(suite.name))"))
            actions.append(.event(childEvent(.childEstablished, session: session, child: child)))
        }
        return actions
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
        return [.log("rekeying CHILD SA \(child.spiInbound)/\(child.spiOutbound)")] + sendChildRequest(session: session, request: request, now: now)
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
        return [.log("rekeying IKE SA \(session.spiInitiator)_\(session.spiResponder)")]
            + sendRequest(session: session, exchange: .createChildSA, payloads: payloads,
                          context: .rekeyIKE(spi: spi, nonce: nonce, keyExchange: keyExchange), now: now)
    }

    /// Builds the IKE SA that replaces `old` and moves its CHILD SAs over (section 2.18).
    func replaceIKESA(old: IKESession, initiatedHere: Bool, spiInitiator: IKESPI, spiResponder: IKESPI, suite: IKECipherSuite,
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
        old.replacedByRekey = true
        new.state = .established
        new.children = old.children
        old.children = []
        if let rekeyTime = old.connection.rekeyTime { new.rekeyAt = now + rekeyTime }
        sessions[new.localSPI] = new
        return new
    }

    func handleRekeyIKEResponse(session: IKESession, spi: IKESPI, nonce: [UInt8], keyExchange: KeyExchangePrivateKey,
                                payloads: [Payload], now: Double) -> [EngineAction] {
        session.rekeyInProgress = false
        guard let sa = payloads.securityAssociation, sa.proposals.count == 1, sa.proposals[0].spi.count == 8,
              let suite = session.connection.proposals.lazy.compactMap({ $0.selectIKE(from: sa.proposals[0]) }).first,
              let ke = payloads.keyExchange, ke.group == keyExchange.group.rawValue, let peerNonce = payloads.nonce,
              let secret = try? keyExchange.sharedSecret(peerPublicValue: ke.data) else {
            let reason = payloads.notifies.first { $0.type.isError }.map { "\($0.type)" } ?? "unusable answer"
            count("ike_rekey_failed")
            return [.log("IKE SA rekey refused: \(reason)")]
        }
        let peerSPI = IKESPI(bytes: sa.proposals[0].spi)
        let new = replaceIKESA(old: session, initiatedHere: true, spiInitiator: spi, spiResponder: peerSPI, suite: suite,
                               sharedSecret: secret, nonceInitiator: nonce, nonceResponder: peerNonce.data, now: now)
        session.state = .deleting
        var event = ikeEvent(.ikeRekeyed, session: new, detail: "\(session.spiInitiator)_\(session.spiResponder)")
        event.ikeSuite = suite
        return [.log("IKE SA \(session.spiInitiator)_\(session.spiResponder) rekeyed to \(new.spiInitiator)_\(new.spiResponder)"),
                .event(event)]
            + sendRequest(session: session, exchange: .informational, payloads: [.delete(.ikeSA)], context: .deleteIKE, now: now)
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
            guard let old = session.children.first(where: { $0.spiOutbound == spi && !$0.rekeyed }) else {
                return [.log("peer asked to rekey unknown CHILD SA \(spi)")]
                    + respond(session: session, to: header, payloads: [.notify(NotifyPayload(protocolID: .esp, spi: rekey.spi, type: .childSANotFound))])
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
                actions.append(.log("CHILD SA \(old.spiInbound)/\(old.spiOutbound) rekeyed by peer to \(child.spiInbound)/\(child.spiOutbound)"))
                actions.append(.event(childEvent(.childRekeyed, session: session, child: child, replaces: (old.spiInbound, old.spiOutbound))))
            } else {
                actions.append(.log("CHILD SA '\(child.configuration.name)' \(child.spiInbound)/\(child.spiOutbound) established (\(child.suite.name))"))
                actions.append(.event(childEvent(.childEstablished, session: session, child: child)))
            }
            return actions
        }
    }

    func handleRekeyIKERequest(session: IKESession, header: IKEHeader, sa: SecurityAssociationPayload, payloads: [Payload],
                               nonce: [UInt8], now: Double) -> [EngineAction] {
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
        let new = replaceIKESA(old: session, initiatedHere: false, spiInitiator: peerSPI, spiResponder: ourSPI, suite: suite,
                               sharedSecret: secret, nonceInitiator: nonce, nonceResponder: ourNonce, now: now)
        session.state = .deleting
        var event = ikeEvent(.ikeRekeyed, session: new, detail: "\(session.spiInitiator)_\(session.spiResponder)")
        event.ikeSuite = suite
        actions.append(.log("IKE SA \(session.spiInitiator)_\(session.spiResponder) rekeyed by peer to \(new.spiInitiator)_\(new.spiResponder)"))
        actions.append(.event(event))
        return actions
    }
}
