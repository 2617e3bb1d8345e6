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
                + [
                    .log(
                        "peer \(session.remote) refused our authentication (AUTHENTICATION_FAILED): IKE SA \(session.spiInitiator)_\(session.spiResponder) closed"
                    )
                ]
                + closeSession(session, kind: .ikeDeleted, reason: "the peer refused our authentication (AUTHENTICATION_FAILED)")
        }
        if deletes.contains(where: { $0.protocolID == .ike }) {
            if let settled = settleRekeyOnPeerDelete(of: session, header: header, now: now) { return settled.actions }
            let notes = forgetOurRekeyOnPeerDelete(of: session)
            return respond(session: session, to: header, payloads: [])
                + info("peer deleted IKE SA \(session.spiInitiator)_\(session.spiResponder)") + notes
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
                actions += info("peer deleted CHILD SA \(child.spiInbound)/\(child.spiOutbound)")
                noteChildDeletedDuringRekey(session: session, child: child)
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

    func handleInformationalResponse(session: IKESession, context: RequestContext, payloads: [Payload]) -> [EngineAction] {
        switch context {
        case .deleteChildren(let spis):
            var actions: [EngineAction] = []
            for spi in spis {
                guard let index = session.children.firstIndex(where: { $0.spiInbound == spi }) else { continue }
                let child = session.children.remove(at: index)
                actions += info("CHILD SA \(child.spiInbound)/\(child.spiOutbound) deleted")
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
}
