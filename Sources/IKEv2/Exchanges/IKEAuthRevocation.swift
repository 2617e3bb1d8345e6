import X509

/// The result of checking the peer's AUTH: verified (how), refused (why), or verified but waiting for the
/// OCSP responders or CRL distribution points its chain names.
enum PeerVerification {
    case verified(String)
    case failed(AuthenticationFailure)
    case needsRevocationCheck(chain: [Certificate], responders: [String], policy: RevocationPolicy)
}

/// IKE_AUTH held for an online revocation check (RFC 6960 OCSP, or CRLs fetched from RFC 5280
/// distribution points, by the I/O layer), then handled again with the answer. The peer's
/// retransmissions meanwhile are absorbed; no answer in `revocationCheckTimeout` seconds counts as
/// unavailable.
extension IKEEngine {
    func holdForRevocationCheck(
        session: IKESession, chain: [Certificate], responders: [String], policy: RevocationPolicy,
        requestHeader: IKEHeader?, childRequest: ChildRequest?, payloads: [Payload], now: Double
    ) -> [EngineAction] {
        let id = nextRevocationCheckID
        nextRevocationCheckID &+= UInt64(settings.shard.count)
        let subject = "\(chain[0].subject)"
        session.pendingRevocation = PendingRevocationCheck(
            id: id, startedAt: now, policy: policy, subject: subject,
            sources: responders.joined(separator: ", "), requestHeader: requestHeader,
            childRequest: childRequest, payloads: payloads)
        count(.revocationChecks)
        return [
            .log(
                "IKE SA \(session.spiInitiator)_\(session.spiResponder): checking online whether \(subject) or its issuers "
                    + "are revoked (\(responders.joined(separator: ", ")))"),
            .checkRevocation(RevocationCheckRequest(id: id, chain: chain, responders: responders))
        ]
    }

    /// The answer to a `.checkRevocation` action: the held IKE_AUTH goes on or fails, as the connection's
    /// `RevocationPolicy` says for that answer.
    public func revocationChecked(_ id: UInt64, _ status: RevocationStatus, now: Double) -> [EngineAction] {
        guard let session = sessions.values.first(where: { $0.pendingRevocation?.id == id }), let pending = session.pendingRevocation else {
            return [.log("revocation answer \(id) came for no waiting IKE_AUTH (it timed out or the IKE SA is gone)")]
        }
        session.pendingRevocation = nil
        var actions: [EngineAction] = []
        switch status {
        case .good:
            count(.revocationGood)
            session.revocationOutcome = .success("not revoked (\(pending.sources))")
        case .revoked(let why):
            count(.revocationRevoked)
            session.revocationOutcome = .failure(AuthenticationFailure("the certificate \(pending.subject) or an issuer is revoked (\(why))"))
        case .unavailable(let why):
            count(.revocationUnavailable)
            if pending.policy == .relaxed {
                actions.append(.log("no revocation status for \(pending.subject) (\(why)); accepted, revocation is relaxed"))
                session.revocationOutcome = .success("revocation status unknown, accepted (revocation relaxed)")
            } else {
                session.revocationOutcome = .failure(
                    AuthenticationFailure(
                        "no revocation status for \(pending.subject) (\(why)) and revocation is \(pending.policy.rawValue)"))
            }
        }
        if let header = pending.requestHeader {
            actions += handleAuthRequest(session: session, header: header, payloads: pending.payloads, now: now)
        } else {
            actions += handleAuthResponse(session: session, request: pending.childRequest, payloads: pending.payloads, now: now)
            actions += sendNextQueued(session: session, now: now)
        }
        session.revocationOutcome = nil
        return actions
    }

    /// Held checks that got no answer in time.
    func expireRevocationChecks(now: Double) -> [EngineAction] {
        var actions: [EngineAction] = []
        for session in Array(sessions.values) {
            guard let pending = session.pendingRevocation, now - pending.startedAt >= settings.revocationCheckTimeout else { continue }
            actions += revocationChecked(pending.id, .unavailable("no answer within \(Int(settings.revocationCheckTimeout)) s"), now: now)
        }
        return actions
    }
}
