/// IKE_FOLLOWUP_KE (RFC 9370 section 2.2.4): when a CREATE_CHILD_SA (a new CHILD SA with PFS, a CHILD SA rekey,
/// an IKE SA rekey) chose ADDITIONAL_KEY_EXCHANGE transforms, each additional key exchange runs in an exchange of
/// its own (type 44) right after it, on the IKE SA that carried the CREATE_CHILD_SA. The responder's answer names
/// the next one with N(ADDITIONAL_KEY_EXCHANGE) (16441) and opaque link data, which the initiator's next request
/// carries back; a link the responder does not hold is answered STATE_NOT_FOUND (47). Nothing is made until the
/// last one: the keys then come from every shared secret, SK(0) | Ni | Nr | SK(1) | ... | SK(n)
/// (`KeyDerivation.childKeys`, `KeyDerivation.rekeyedSkeyseed`).

/// What a CREATE_CHILD_SA with additional key exchanges makes once they all ran: everything but the keys.
enum FollowUpTarget {
    /// A CHILD SA: new, or the replacement of `rekeying` (our inbound SPI of the old one). Its keys are set last.
    case child(ChildSA, rekeying: ChildSPI?)
    /// The IKE SA replacing the one the exchanges run on.
    case ikeSA(spiInitiator: IKESPI, spiResponder: IKESPI, suite: IKECipherSuite)
}

/// The key exchanges of one CREATE_CHILD_SA and its IKE_FOLLOWUP_KE exchanges, as either side keeps them.
struct FollowUpKeyExchanges {
    var target: FollowUpTarget
    var nonceInitiator: Nonce
    var nonceResponder: Nonce
    /// SK(0), from the KE payloads of the CREATE_CHILD_SA.
    var firstSecret: KeyMaterial
    /// SK(1), SK(2)... so far.
    var secrets: [KeyMaterial] = []
    /// The additional key exchanges still to run, in the order of their transform types.
    var remaining: [KeyExchangeMethod]
    /// The responder's link data for the next IKE_FOLLOWUP_KE.
    var link: [UInt8]
    var startedAt: Double

    /// How long a responder holds the state of an exchange whose next IKE_FOLLOWUP_KE does not come: the
    /// initiator's retransmissions are over long before (about 30 s with the usual five).
    static let responderTimeout = 120.0

    /// Which additional key exchange is next, for log lines ("2 of 2").
    var position: String { "\(secrets.count + 1) of \(secrets.count + remaining.count)" }
}

/// Our IKE_FOLLOWUP_KE request in flight: the exchanges so far and our half of the current one.
struct FollowUpInitiation {
    var exchanges: FollowUpKeyExchanges
    var current: KeyExchangeInitiation
}

extension IKEEngine {
    // MARK: Initiator

    /// Sends the IKE_FOLLOWUP_KE request of the next additional key exchange, with the responder's last link.
    func sendFollowUp(session: IKESession, exchanges: FollowUpKeyExchanges, now: Double) -> [EngineAction] {
        let method = exchanges.remaining[0]
        let initiation = method.initiate(random: random)
        let payloads: [Payload] = [
            .keyExchange(KeyExchangePayload(group: method.identifier, data: initiation.share)),
            .notify(NotifyPayload(type: .additionalKeyExchange, data: exchanges.link))
        ]
        return info("IKE_FOLLOWUP_KE: additional key exchange \(method) (\(exchanges.position)) for \(describe(exchanges.target))")
            + sendRequest(
                session: session, exchange: .ikeFollowupKE, payloads: payloads,
                context: .followUpKE(FollowUpInitiation(exchanges: exchanges, current: initiation)), now: now)
    }

    /// Starts the IKE_FOLLOWUP_KE exchanges after our CREATE_CHILD_SA was answered with a choice that needs them;
    /// the answer must carry the responder's link. A crossing rekey of the peer's is settled first.
    func startFollowUps(session: IKESession, exchanges: FollowUpKeyExchanges, answer: [Payload], now: Double) -> [EngineAction]? {
        guard let link = answer.notify(.additionalKeyExchange)?.data, !link.isEmpty else { return nil }
        var exchanges = exchanges
        exchanges.link = link
        switch settleCrossingRekey(session: session, exchanges: exchanges) {
        case .stop(let actions): return actions
        case .goOn(let actions): return actions + sendFollowUp(session: session, exchanges: exchanges, now: now)
        }
    }

    /// Whether our exchange goes on to its IKE_FOLLOWUP_KE exchanges once its CREATE_CHILD_SA is answered.
    enum CrossingSettlement {
        case goOn([EngineAction])
        case stop([EngineAction])
    }

    /// When the peer's rekey of the same SA crossed ours and still waits for its own IKE_FOLLOWUP_KE exchanges, the
    /// tie is broken now, by the nonces of the two CREATE_CHILD_SA exchanges (RFC 7296 sections 2.8.1 and 2.8.2):
    /// the exchange with the lowest nonce stops before its additional key exchanges and the other goes on alone,
    /// so that only the SA that stays is made (as strongSwan 6 does). A crossing exchange that made its SA at once
    /// is settled when ours is made (`finishChildRekey`, `finishOurIKERekey`).
    func settleCrossingRekey(session: IKESession, exchanges: FollowUpKeyExchanges) -> CrossingSettlement {
        func decide(_ what: String, peerNonces: [Nonce], peerStops: () -> Void) -> CrossingSettlement {
            let settled = "simultaneous rekey of \(what) settled: the lowest nonce is in "
            if RekeyCollision.ourReplacementIsRedundant(ourNonces: [exchanges.nonceInitiator, exchanges.nonceResponder], peerNonces: peerNonces) {
                count(.rekeyCollisionLost)
                return .stop([.log(settled + "our exchange, so ours stops before its additional key exchanges and the peer's stays")])
            }
            count(.rekeyCollisionWon)
            peerStops()
            return .goOn([.log(settled + "the peer's exchange, which stops; ours goes on with its additional key exchanges")])
        }
        switch exchanges.target {
        case .child(_, let rekeying?):
            guard let index = session.children.firstIndex(where: { $0.spiInbound == rekeying }) else {
                // The SA went while our rekey of it was answered: no replacement is made for it.
                guard session.supersededRekeys.remove(rekeying) != nil else {
                    return .stop([
                        .log("CHILD SA \(rekeying) was deleted by the peer while being rekeyed; the rekey stops before its additional key exchanges")
                    ])
                }
                count(.rekeyCollisionLost)
                return .stop([
                    .log(
                        "simultaneous rekey of CHILD SA \(rekeying) settled: the peer kept its replacement and deleted the old SA "
                            + "before ours was answered, so ours stops before its additional key exchanges")
                ])
            }
            let peers = { (pending: FollowUpKeyExchanges) in if case .child(_, rekeying?) = pending.target { true } else { false } }
            guard session.followUps.contains(where: peers), let crossing = session.children[index].peerRekey else { return .goOn([]) }
            return decide("CHILD SA \(rekeying)", peerNonces: crossing.nonces) {
                session.children[index].peerRekey = nil
                session.followUps.removeAll(where: peers)
            }
        case .ikeSA:
            let peers = { (pending: FollowUpKeyExchanges) in if case .ikeSA = pending.target { true } else { false } }
            guard session.followUps.contains(where: peers), let crossing = session.rekey.crossedBy else { return .goOn([]) }
            let settlement = decide("IKE SA \(session.spiInitiator)_\(session.spiResponder)", peerNonces: crossing.nonces) {
                session.rekey.crossedBy = nil
                session.followUps.removeAll(where: peers)
            }
            if case .stop = settlement { session.rekey.oursPending = false }
            return settlement
        case .child(_, nil):
            return .goOn([])
        }
    }

    /// The responder's KE for our IKE_FOLLOWUP_KE: the next one goes, or the SA is made with every secret.
    func handleFollowUpResponse(session: IKESession, initiation: FollowUpInitiation, payloads: [Payload], now: Double) -> [EngineAction] {
        var exchanges = initiation.exchanges
        let method = initiation.current.method
        func fail(_ reason: String) -> [EngineAction] { followUpFailed(session: session, target: exchanges.target, reason: reason, now: now) }
        if let error = payloads.notifies.first(where: { $0.type.isError }) {
            return fail("IKE_FOLLOWUP_KE refused by peer: \(error.type)")
        }
        guard let ke = payloads.keyExchange, ke.group == method.identifier else {
            return fail("IKE_FOLLOWUP_KE answer without the KE of \(method)")
        }
        guard let secret = try? initiation.current.complete(responderShare: ke.data) else {
            return fail("invalid \(method) share in the IKE_FOLLOWUP_KE answer (\(ke.data.count) octets)")
        }
        exchanges.secrets.append(secret)
        exchanges.remaining.removeFirst()
        if exchanges.remaining.isEmpty {
            return completeFollowUps(session: session, exchanges: exchanges, initiatedHere: true, now: now)
        }
        guard let link = payloads.notify(.additionalKeyExchange)?.data, !link.isEmpty else {
            return fail("IKE_FOLLOWUP_KE answer names no link for the next additional key exchange")
        }
        exchanges.link = link
        return sendFollowUp(session: session, exchanges: exchanges, now: now)
    }

    /// Our CREATE_CHILD_SA or one of its IKE_FOLLOWUP_KE exchanges came to nothing: what failed is reported and
    /// retried as a refused CHILD SA or IKE SA rekey is.
    func followUpFailed(session: IKESession, target: FollowUpTarget, reason: String, now: Double) -> [EngineAction] {
        switch target {
        case .child(let child, let rekeying):
            let request = ChildRequest(
                configuration: child.configuration, spiInbound: child.spiInbound, nonce: Nonce([]), keyExchange: nil, rekeying: rekeying)
            return childRequestFailed(session: session, request: request, reason: reason, now: now)
        case .ikeSA:
            return ikeRekeyFailed(session: session, reason: reason, now: now)
        }
    }

    // MARK: Responder

    /// Keeps the state of a CREATE_CHILD_SA we answered that needs IKE_FOLLOWUP_KE exchanges, and returns the
    /// notify that links the initiator's first one to it.
    func awaitFollowUps(session: IKESession, exchanges: FollowUpKeyExchanges) -> Payload {
        var exchanges = exchanges
        exchanges.link = random.bytes(8)
        session.followUps.append(exchanges)
        return .notify(NotifyPayload(type: .additionalKeyExchange, data: exchanges.link))
    }

    /// An IKE_FOLLOWUP_KE request: the link must name exchanges we hold (else STATE_NOT_FOUND, and nothing else
    /// changes); a missing link, a KE for another method or one that holds no share is malformed
    /// (INVALID_SYNTAX, fatal to the IKE SA, section 2.21.3), and the linked exchanges are dropped.
    func handleFollowUpRequest(session: IKESession, header: IKEHeader, payloads: [Payload], now: Double) -> [EngineAction] {
        func refuse(_ notify: NotifyType, _ reason: String) -> [EngineAction] {
            count(.followUpRefused)
            return [.log("IKE_FOLLOWUP_KE \(header.messageID) from \(session.remote) refused: \(reason)")]
                + respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: notify))])
        }
        guard session.state == .established else { return refuse(.invalidSyntax, "the IKE SA is not established") }
        guard let link = payloads.notify(.additionalKeyExchange)?.data else {
            return refuse(.invalidSyntax, "no ADDITIONAL_KEY_EXCHANGE notify")
        }
        guard let index = session.followUps.firstIndex(where: { $0.link == link }) else {
            return refuse(.stateNotFound, "its link names no exchange in progress")
        }
        var exchanges = session.followUps.remove(at: index)
        let method = exchanges.remaining[0]
        guard let ke = payloads.keyExchange else { return refuse(.invalidSyntax, "no KE payload for \(method)") }
        guard ke.group == method.identifier else { return refuse(.invalidSyntax, "KE for method \(ke.group) where \(method) is due") }
        guard let answer = try? method.respond(to: ke.data, random: random) else {
            return refuse(.invalidSyntax, "the KE holds no valid \(method) share (\(ke.data.count) octets)")
        }
        exchanges.secrets.append(answer.secret)
        exchanges.remaining.removeFirst()
        var response: [Payload] = [.keyExchange(KeyExchangePayload(group: method.identifier, data: answer.share))]
        guard exchanges.remaining.isEmpty else {
            response.append(awaitFollowUps(session: session, exchanges: exchanges))
            return info("IKE_FOLLOWUP_KE: additional key exchange \(method) answered; \(exchanges.remaining.count) more to come")
                + respond(session: session, to: header, payloads: response)
        }
        // The answer goes under the keys of the IKE SA the exchanges ran on, before a rekeyed one takes over.
        let sent = respond(session: session, to: header, payloads: response)
        return sent + completeFollowUps(session: session, exchanges: exchanges, initiatedHere: false, now: now)
    }

    /// Drops the state of exchanges whose next IKE_FOLLOWUP_KE never came.
    func expireFollowUps(session: IKESession, now: Double) -> [EngineAction] {
        let stale = session.followUps.filter { now - $0.startedAt > FollowUpKeyExchanges.responderTimeout }
        guard !stale.isEmpty else { return [] }
        session.followUps.removeAll { now - $0.startedAt > FollowUpKeyExchanges.responderTimeout }
        return stale.map { .log("IKE_FOLLOWUP_KE for \(describe($0.target)): the initiator never sent the next exchange; dropped") }
    }

    // MARK: Both roles

    /// Every key exchange ran: the CHILD SA or IKE SA is made as after a CREATE_CHILD_SA without them.
    func completeFollowUps(session: IKESession, exchanges: FollowUpKeyExchanges, initiatedHere: Bool, now: Double) -> [EngineAction] {
        let nonces = (exchanges.nonceInitiator, exchanges.nonceResponder)
        switch exchanges.target {
        case .child(var child, let rekeying):
            guard let suiteIKE = session.suite, let keys = session.keys else { return [] }
            child.keys = session.directionalKeys(
                KeyDerivation.childKeys(
                    prf: suiteIKE.prf, deriving: keys.deriving, suite: child.suite, sharedSecret: exchanges.firstSecret,
                    nonceInitiator: nonces.0, nonceResponder: nonces.1, additionalSecrets: exchanges.secrets),
                initiatedHere: initiatedHere)
            child.createdAt = now
            if initiatedHere {
                return establishOurChild(session: session, child: child, rekeying: rekeying, nonces: [nonces.0, nonces.1], now: now)
            }
            session.children.append(child)
            guard let old = rekeying.flatMap({ spi in session.children.first { $0.spiInbound == spi } }) else {
                if rekeying != nil {
                    return [.log("CHILD SA \(rekeying!) went while its rekey ran; its replacement stays")]
                        + announceNewChild(session: session, child: child)
                }
                return announceNewChild(session: session, child: child)
            }
            return acceptPeerChildRekey(session: session, replacing: old, with: child, nonces: [nonces.0, nonces.1], now: now)
        case .ikeSA(let spiInitiator, let spiResponder, let suite):
            if initiatedHere {
                return finishOurIKERekey(
                    session: session, spi: spiInitiator, peerSPI: spiResponder, suite: suite, secret: exchanges.firstSecret,
                    additionalSecrets: exchanges.secrets, nonce: nonces.0, peerNonce: nonces.1, now: now)
            }
            return acceptPeerIKERekey(
                session: session, peerSPI: spiInitiator, ourSPI: spiResponder, suite: suite, secret: exchanges.firstSecret,
                additionalSecrets: exchanges.secrets, peerNonce: nonces.0, ourNonce: nonces.1, now: now)
        }
    }

    func describe(_ target: FollowUpTarget) -> String {
        switch target {
        case .child(let child, let rekeying):
            rekeying.map { "the rekey of CHILD SA \($0)" } ?? "CHILD SA '\(child.configuration.name)'"
        case .ikeSA: "the IKE SA rekey"
        }
    }
}
