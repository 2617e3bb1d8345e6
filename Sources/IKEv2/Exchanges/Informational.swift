/// INFORMATIONAL (RFC 7296 section 1.4): Delete of CHILD and IKE SAs, liveness checks, error notifies.
extension IKEEngine {
    func handleInformationalRequest(session: IKESession, header: IKEHeader, payloads: [Payload], now: Double) -> [EngineAction] {
        let deletes = payloads.deletes
        if deletes.contains(where: { $0.protocolID == .ike }) {
            return respond(session: session, to: header, payloads: [])
                + [.log("peer deleted IKE SA \(session.spiInitiator)_\(session.spiResponder)")]
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
