/// IKE_INTERMEDIATE (RFC 9242) carrying the additional key exchanges of RFC 9370 between IKE_SA_INIT and
/// IKE_AUTH, in both roles: one exchange per additional key exchange chosen, in the order of their transform
/// types, each protected with the keys of the one before and updating them after (RFC 9370 section 2.2.2),
/// each message chained into IntAuth for IKE_AUTH's signed octets (RFC 9242 section 3.3.2).
extension IKEEngine {
    /// Whether a connection's proposals can ask for an additional key exchange (it then announces
    /// INTERMEDIATE_EXCHANGE_SUPPORTED in IKE_SA_INIT, RFC 9370 section 2.2.1).
    static func offersAdditionalKeyExchanges(_ connection: ConnectionConfiguration) -> Bool {
        connection.proposals.contains { $0.additionalKeyExchanges.values.contains { $0.contains { $0 != nil } } }
    }

    /// Chains one IKE_INTERMEDIATE message into its sender's IntAuth, with the sender's SK_p in effect now (the
    /// keys that protect the message).
    func linkIntAuth(session: IKESession, header: IKEHeader, firstInner: PayloadType, inner: ArraySlice<UInt8>) {
        guard let suite = session.suite, let keys = session.keys else { return }
        if header.isFromOriginalInitiator {
            session.intAuthInitiator = IntermediateAuthentication.link(
                prf: suite.prf, key: keys.authenticationInitiator, previous: session.intAuthInitiator, header: header,
                firstInner: firstInner, inner: inner)
        } else {
            session.intAuthResponder = IntermediateAuthentication.link(
                prf: suite.prf, key: keys.authenticationResponder, previous: session.intAuthResponder, header: header,
                firstInner: firstInner, inner: inner)
        }
    }

    /// The keys after one additional key exchange with shared secret `secret`.
    func updateKeys(session: IKESession, secret: KeyMaterial) {
        guard let suite = session.suite, let keys = session.keys else { return }
        session.agreeKeys(
            suite: suite,
            keys: KeyDerivation.afterAdditionalKeyExchange(
                suite: suite, previous: keys, sharedSecret: secret, nonceInitiator: session.nonceInitiator,
                nonceResponder: session.nonceResponder, spiInitiator: session.spiInitiator, spiResponder: session.spiResponder))
        session.intermediateExchanges += 1
    }

    // MARK: Initiator

    /// The next additional key exchange in IKE_INTERMEDIATE, or IKE_AUTH when none is left.
    func sendNextIntermediateOrAuth(session: IKESession, now: Double) -> [EngineAction] {
        guard let method = session.pendingKeyExchanges.first else { return sendAuthRequest(session: session, now: now) }
        let initiation = method.initiate(random: random)
        let payloads: [Payload] = [.keyExchange(KeyExchangePayload(group: method.identifier, data: initiation.share))]
        // Chained before it goes: the request takes the next message ID, nothing being queued before IKE_AUTH.
        let header = session.header(exchange: .ikeIntermediate, messageID: session.nextRequestID, response: false)
        linkIntAuth(session: session, header: header, firstInner: .keyExchange, inner: Payload.encodeChain(payloads)[...])
        return info(
            "IKE_INTERMEDIATE: additional key exchange \(method) (\(session.intermediateExchanges + 1) of \(session.intermediateExchanges + session.pendingKeyExchanges.count))"
        )
            + sendRequest(session: session, exchange: .ikeIntermediate, payloads: payloads, context: .ikeIntermediate(initiation), now: now)
    }

    /// The responder's KE of our additional key exchange (its IntAuth link is made on receipt): the keys are
    /// updated, and the next exchange (or IKE_AUTH) goes.
    func handleIntermediateResponse(session: IKESession, initiation: KeyExchangeInitiation, payloads: [Payload], now: Double) -> [EngineAction] {
        if let error = payloads.notifies.first(where: { $0.type.isError }) {
            return closeSession(session, kind: .ikeFailed, reason: "IKE_INTERMEDIATE refused: \(error.type)")
        }
        guard session.pendingKeyExchanges.first == initiation.method, let ke = payloads.keyExchange else {
            return closeSession(session, kind: .ikeFailed, reason: "IKE_INTERMEDIATE response without the KE of \(initiation.method)")
        }
        guard ke.group == initiation.method.identifier else {
            return closeSession(
                session, kind: .ikeFailed, reason: "IKE_INTERMEDIATE response's KE is for method \(ke.group), not \(initiation.method)")
        }
        let secret: KeyMaterial
        do { secret = try initiation.complete(responderShare: ke.data) } catch {
            return closeSession(session, kind: .ikeFailed, reason: "invalid \(initiation.method) share from the responder (\(ke.data.count) octets)")
        }
        session.pendingKeyExchanges.removeFirst()
        updateKeys(session: session, secret: secret)
        return sendNextIntermediateOrAuth(session: session, now: now)
    }

    // MARK: Responder

    /// The initiator's KE of the next additional key exchange: answered with ours, then the keys are updated
    /// (the answer goes under the keys the request came with). Anything else is malformed (INVALID_SYNTAX,
    /// which ends the half-open IKE SA): an IKE_INTERMEDIATE when no additional key exchange is left, a KE for
    /// another method than the one due, or a share that is not one.
    func handleIntermediateRequest(session: IKESession, header: IKEHeader, payloads: [Payload], now: Double) -> [EngineAction] {
        func refuse(_ reason: String) -> [EngineAction] {
            count(.intermediateRefused)
            let refused: [EngineAction] =
                [.log("IKE_INTERMEDIATE \(header.messageID) from \(session.remote) refused: \(reason)")]
                + respond(session: session, to: header, payloads: [.notify(NotifyPayload(type: .invalidSyntax))])
            // On an authenticated IKE SA, answering INVALID_SYNTAX closed it already (RFC 7296 section 2.21.3).
            guard session.state == .authenticating else { return refused }
            return refused + closeSession(session, kind: .ikeFailed, reason: "IKE_INTERMEDIATE: \(reason)")
        }
        guard !session.isOriginalInitiator, session.state == .authenticating else {
            return refuse("IKE_INTERMEDIATE comes before IKE_AUTH only")
        }
        guard let method = session.pendingKeyExchanges.first else { return refuse("no additional key exchange is left to run") }
        guard let ke = payloads.keyExchange else { return refuse("no KE payload for \(method)") }
        guard ke.group == method.identifier else { return refuse("KE for method \(ke.group) where \(method) is due") }
        let answer: (share: [UInt8], secret: KeyMaterial)
        do { answer = try method.respond(to: ke.data, random: random) } catch {
            return refuse("the KE holds no valid \(method) share (\(ke.data.count) octets)")
        }
        let response: [Payload] = [.keyExchange(KeyExchangePayload(group: method.identifier, data: answer.share))]
        let responseHeader = session.header(exchange: .ikeIntermediate, messageID: header.messageID, response: true)
        linkIntAuth(session: session, header: responseHeader, firstInner: .keyExchange, inner: Payload.encodeChain(response)[...])
        let sent = respond(session: session, to: header, payloads: response)
        session.pendingKeyExchanges.removeFirst()
        updateKeys(session: session, secret: answer.secret)
        return info("IKE_INTERMEDIATE: additional key exchange \(method) answered") + sent
    }
}
