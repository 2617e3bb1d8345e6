/// Where a protected request or response goes, by exchange type and by what our request was for.
extension IKEEngine {
    func handleRequest(session: IKESession, header: IKEHeader, payloads: [Payload], now: Double) -> [EngineAction] {
        switch header.exchangeType {
        case .ikeAuth: return handleAuthRequest(session: session, header: header, payloads: payloads, now: now)
        case .ikeIntermediate: return handleIntermediateRequest(session: session, header: header, payloads: payloads, now: now)
        case .createChildSA: return handleCreateChildRequest(session: session, header: header, payloads: payloads, now: now)
        case .ikeFollowupKE: return handleFollowUpRequest(session: session, header: header, payloads: payloads, now: now)
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
        case .ikeIntermediate(let initiation):
            guard header.exchangeType == .ikeIntermediate else {
                return drop(.invalidState("IKE_INTERMEDIATE answered with \(header.exchangeType)"))
            }
            return handleIntermediateResponse(session: session, initiation: initiation, payloads: payloads, now: now)
        case .createChild(let request):
            return handleChildResponse(session: session, request: request, payloads: payloads, now: now)
        case .rekeyIKE(let spi, let nonce, let keyExchange):
            return handleRekeyIKEResponse(session: session, spi: spi, nonce: nonce, keyExchange: keyExchange, payloads: payloads, now: now)
        case .followUpKE(let initiation):
            guard header.exchangeType == .ikeFollowupKE else { return drop(.invalidState("IKE_FOLLOWUP_KE answered with \(header.exchangeType)")) }
            return handleFollowUpResponse(session: session, initiation: initiation, payloads: payloads, now: now)
        case .deleteChildren, .deleteIKE, .liveness:
            return handleInformationalResponse(session: session, context: context, payloads: payloads)
        case .ikeSAInit:
            return drop(.invalidState("IKE_SA_INIT context on a protected response"))
        }
    }
}

/// A request answered before its exchange's own handling (refused, or settled by a rekey-collision rule):
/// the actions to take.
struct EarlyAnswer: Error {
    var actions: [EngineAction]
}
