/// INFORMATIONAL (RFC 7296 section 1.4): Delete of CHILD and IKE SAs, liveness checks, error notifies.
extension IKEEngine {
    func handleInformationalRequest(session: IKESession, header: IKEHeader, payloads: [Payload], now: Double) -> [EngineAction] {
        let deletes = payloads.deletes
        if payloads.notify(.authenticationFailed) != nil {
            // Section 2.21.2: the initiator refused our IKE_AUTH answer (our certificate, its status, our
            // identity) after we had made the SA; it says so in an INFORMATIONAL and forgets the SA. The
            // message is protected by the SA, so only the peer can close it this way.
            count(.authenticationRefusedByPeer)
            return respond(session: session, to: header, payloads: [])
                + [.log("peer \(session.remote) refused our authentication (AUTHENTICATION_FAILED): IKE SA \(session.spiInitiator)_\(session.spiResponder) closed")]
                + closeSession(session, kind: .ikeDeleted, reason: "the peer refused our authentication (AUTHENTICATION_FAILED)")
        }
        if deletes.contains(where: { $0.protocolID == .ike }) {
            var notes: [EngineAction] = []
            if case .rekeyIKE = session.outstanding?.context {
                // Section 2.25.2: a peer that closes the IKE SA we are rekeying wins; our rekey is forgotten.
                let what = session.peerRekey != nil ? "simultaneous rekey of IKE SA \(session.spiInitiator)_\(session.spiResponder) settled: "
                    + "the peer kept its new IKE SA and deleted this one before our rekey was answered, so ours is dropped"
                    : "our rekey of IKE SA \(session.spiInitiator)_\(session.spiResponder) was still unanswered; it is dropped with the SA"
                notes.append(.log(what))
                if session.peerRekey != nil { count(.rekeyCollisionLost) }
            }
            if let old = collidingRekey(replacedBy: session) {
                // The peer's IKE SA lost the simultaneous rekey and the peer closed it before our own rekey was
                // answered: the CHILD SAs go back to the old IKE SA and move on to ours when the answer comes.
                moveChildren(from: session, to: old, now: now)
                old.peerRekey = nil
                old.replacedByRekey = false; old.replacedAt = nil; old.state = .established
                count(.rekeyCollisionWon)
                return respond(session: session, to: header, payloads: [])
                    + [.log("simultaneous rekey of IKE SA \(old.spiInitiator)_\(old.spiResponder) settled: the peer deleted its redundant "
                            + "IKE SA \(session.spiInitiator)_\(session.spiResponder), ours will stay once it is answered")]
                    + removeReplacedSession(session)
            }
            return respond(session: session, to: header, payloads: [])
                + [.log("peer deleted IKE SA \(session.spiInitiator)_\(session.spiResponder)")] + notes
                + (session.replacedByRekey ? removeReplacedSession(session) : closeSession(session, kind: .ikeDeleted, reason: "deleted by peer"))
        }
        var actions: [EngineAction] = []
        var ourSPIs: [ChildSPI] = []
        for delete in deletes where delete.protocolID == .esp || delete.protocolID == .ah {
            for spi in delete.childSPIs {
                guard let index = session.children.firstIndex(where: { $0.spiOutbound == spi }) else {
                    actions.append(.log("peer deleted unknown CHILD SA \(spi)"))
                    continue
                }
                let child = session.children.remove(at: index)
                ourSPIs.append(child.spiInbound)
                actions.append(.log("peer deleted CHILD SA \(child.spiInbound)/\(child.spiOutbound)"))
                if child.peerRekey != nil, isRekeying(session: session, spi: child.spiInbound) {
                    // Only the winner of a simultaneous rekey deletes the old SA: the peer's replacement stays.
                    session.supersededRekeys.insert(child.spiInbound)
                }
                if child.announced { actions.append(.event(childEvent(.childDeleted, session: session, child: child))) }
            }
        }
        for notify in payloads.notifies where notify.type.isError {
            actions.append(.log("peer reports error \(notify.type)"))
        }
        // Section 1.4.1: answer a Delete with a Delete of our side's SPIs of the same pairs.
        let response: [Payload] = ourSPIs.isEmpty ? [] : [.delete(.child(ourSPIs))]
        return respond(session: session, to: header, payloads: response) + actions
    }

    /// The IKE SA whose rekey of ours is in flight and collided with the peer's rekey that made `replacement`.
    func collidingRekey(replacedBy replacement: IKESession) -> IKESession? {
        sessions.values.first { old in
            guard old.peerRekey?.ikeReplacement == replacement.localSPI, case .rekeyIKE = old.outstanding?.context else { return false }
            return true
        }
    }

    /// An IKE SA whose CHILD SAs moved to its rekeyed successor goes quietly.
    func removeReplacedSession(_ session: IKESession) -> [EngineAction] {
        session.state = .closed
        if sessions[session.localSPI] === session { sessions[session.localSPI] = nil }
        return [.log("old IKE SA \(session.spiInitiator)_\(session.spiResponder) removed after rekey")]
    }

    func handleInformationalResponse(session: IKESession, context: RequestContext, payloads: [Payload]) -> [EngineAction] {
        switch context {
        case .deleteChildren(let spis):
            var actions: [EngineAction] = []
            for spi in spis {
                guard let index = session.children.firstIndex(where: { $0.spiInbound == spi }) else { continue }
                let child = session.children.remove(at: index)
                actions.append(.log("CHILD SA \(child.spiInbound)/\(child.spiOutbound) deleted"))
                if child.announced { actions.append(.event(childEvent(.childDeleted, session: session, child: child))) }
            }
            return actions
        case .deleteIKE:
            if session.replacedByRekey { return removeReplacedSession(session) }
            return closeSession(session, kind: .ikeDeleted, reason: "deleted locally")
        default:
            return []
        }
    }

    // MARK: Dispatch

    func handleRequest(session: IKESession, header: IKEHeader, payloads: [Payload], now: Double) -> [EngineAction] {
        switch header.exchangeType {
        case .ikeAuth: return handleAuthRequest(session: session, header: header, payloads: payloads, now: now)
        case .createChildSA: return handleCreateChildRequest(session: session, header: header, payloads: payloads, now: now)
        case .informational: return handleInformationalRequest(session: session, header: header, payloads: payloads, now: now)
        default:
            return drop(.invalidState("unexpected \(header.exchangeType) request"))
                + respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .invalidSyntax))])
        }
    }

    func handleResponse(session: IKESession, context: RequestContext, header: IKEHeader, payloads: [Payload], now: Double) -> [EngineAction] {
        switch context {
        case .ikeAuth(let request):
            guard header.exchangeType == .ikeAuth else { return drop(.invalidState("IKE_AUTH answered with \(header.exchangeType)")) }
            return handleAuthResponse(session: session, request: request, payloads: payloads, now: now)
        case .createChild(let request):
            return handleChildResponse(session: session, request: request, payloads: payloads, now: now)
        case .rekeyIKE(let spi, let nonce, let keyExchange):
            return handleRekeyIKEResponse(session: session, spi: spi, nonce: nonce, keyExchange: keyExchange, payloads: payloads, now: now)
        case .deleteChildren, .deleteIKE, .liveness:
            return handleInformationalResponse(session: session, context: context, payloads: payloads)
        case .ikeSAInit:
            return drop(.invalidState("IKE_SA_INIT context on a protected response"))
        }
    }
}
