/// Sending and receiving protected messages: requests with their message IDs and retransmission state, the
/// queue of requests waiting for the window (RFC 7296 section 2.3), cached responses, fragmentation
/// (RFC 7383) and reassembly.
extension IKEEngine {
    func makeDatagram(_ ike: [UInt8], from local: Endpoint, to remote: Endpoint) -> Datagram {
        let payload = (local.port == 4500 || remote.port == 4500) ? [0, 0, 0, 0] + ike : ike
        return Datagram(payload: payload, source: local, destination: remote)
    }

    /// Queues or sends a protected request; window size one (section 2.3), so one request in flight.
    func sendRequest(
        session: IKESession, exchange: ExchangeType, payloads: [Payload], context: RequestContext,
        now: Double
    ) -> [EngineAction] {
        if session.outstanding != nil {
            session.queued.append((payloads, exchange, context))
            return []
        }
        let messageID = session.nextRequestID
        session.nextRequestID &+= 1
        let header = session.header(exchange: exchange, messageID: messageID, response: false)
        guard let datagrams = protectedDatagrams(session: session, header: header, payloads: payloads) else {
            return [.log("cannot protect \(exchange) request: SA has no keys")]
        }
        session.outstanding = OutstandingRequest(
            messageID: messageID, datagrams: datagrams, context: context, attempts: 1,
            nextRetransmitAt: now + settings.retransmitTimeout)
        return datagrams.map { .send($0) }
    }

    func sendNextQueued(session: IKESession, now: Double) -> [EngineAction] {
        guard session.outstanding == nil, !session.queued.isEmpty, sessions[session.localSPI] === session,
            session.state == .established || session.state == .deleting
        else { return [] }
        let next = session.queued.removeFirst()
        return sendRequest(session: session, exchange: next.exchange, payloads: next.payloads, context: next.context, now: now)
    }

    /// Sends a protected response and caches it for retransmitted requests.
    /// An answer of INVALID_SYNTAX after authentication ends the IKE SA (section 2.21.3: it is fatal, and the peer
    /// closes its side on receiving it), whichever check found the request malformed.
    func respond(session: IKESession, to request: IKEHeader, payloads: [Payload]) -> [EngineAction] {
        let header = session.header(exchange: request.exchangeType, messageID: request.messageID, response: true)
        guard let datagrams = protectedDatagrams(session: session, header: header, payloads: payloads) else {
            return [.log("cannot protect response")]
        }
        session.lastResponse = (request.messageID, datagrams)
        let sent: [EngineAction] = datagrams.map { .send($0) }
        // Before authentication (IKE_AUTH, IKE_INTERMEDIATE) the exchange itself reports the failed negotiation.
        guard request.exchangeType != .ikeAuth, !(request.exchangeType == .ikeIntermediate && session.state == .authenticating),
            payloads.notify(.invalidSyntax) != nil, sessions[session.localSPI] === session
        else { return sent }
        count(.invalidSyntaxSent)
        return sent
            + closeSession(
                session, kind: .ikeDeleted, reason: "request \(request.messageID) was malformed; answered INVALID_SYNTAX (section 2.21.3)")
    }

    /// A protected message as datagrams: one, or SKF fragments when both ends support fragmentation and
    /// the whole would make an IP datagram larger than `settings.fragmentSize` (RFC 7383 section 2.5).
    func protectedDatagrams(session: IKESession, header: IKEHeader, payloads: [Payload]) -> [Datagram]? {
        guard let protection = session.outgoingProtection,
            let bytes = try? ProtectedMessage.seal(header: header, payloads: payloads, protection: protection, random: random)
        else { return nil }
        let ipAndUDP = (session.remote.address.isIPv6 ? 40 : 20) + 8 + (session.local.port == 4500 || session.remote.port == 4500 ? 4 : 0)
        let limit = settings.fragmentSize - ipAndUDP
        guard session.fragmentation, bytes.count > limit,
            let fragments = try? ProtectedMessage.sealFragments(
                header: header, payloads: payloads, protection: protection, random: random,
                maximumMessageSize: limit)
        else {
            return [makeDatagram(bytes, from: session.local, to: session.remote)]
        }
        count(.messagesFragmented)
        return fragments.map { makeDatagram($0, from: session.local, to: session.remote) }
    }

    /// Keeps an authenticated SKF fragment; returns the message's payloads once every fragment is in
    /// (RFC 7383 section 2.6), nil while some are missing. A fragment is discarded (counted, unanswered, the
    /// message ID not used up) when its number is not within 1 and its total, its total is below one already
    /// seen for the message (an older cut of it), the total is over 128, the message carries payloads beside
    /// the SKF payload, or keeping it would pass `maximumReassemblySize` for the SA or
    /// `maximumReassemblyMemory` for all; a larger total than seen starts the reassembly over (section 2.6.1).
    /// Returns the inner payloads' octets and the first one's type, which the caller decodes.
    func reassemble(_ bytes: [UInt8], message: IKEMessage, session: IKESession) throws(IKEDecodingError) -> (
        first: PayloadType, plaintext: ArraySlice<UInt8>
    )? {
        guard let protection = session.incomingProtection else { return nil }
        let (fragment, piece) = try ProtectedMessage.openFragment(bytes, message: message, protection: protection)
        let id = message.header.messageID
        guard message.payloads.count == 1, fragment.total >= 1, fragment.total <= 128, fragment.number >= 1,
            fragment.number <= fragment.total
        else {
            count(.fragmentsDiscarded)
            return nil
        }
        var assembly = session.incomingFragments[id] ?? (fragment.total, nil, [:])
        if fragment.total < assembly.total {
            count(.fragmentsDiscarded)
            return nil
        }
        // A larger total means the sender cut the message anew (smaller fragments): start over.
        if fragment.total > assembly.total { assembly = (fragment.total, nil, [:]) }
        let heldBefore = session.fragmentOctets
        let heldOtherwise = heldBefore - (session.incomingFragments[id].map(IKESession.octets) ?? 0)
        assembly.pieces[fragment.number] = piece
        let heldAfter = heldOtherwise + IKESession.octets(of: assembly)
        guard heldAfter <= settings.maximumReassemblySize, reassemblyOctets - heldBefore + heldAfter <= settings.maximumReassemblyMemory else {
            count(.fragmentsDiscarded)
            count(.reassemblyLimit)
            return nil
        }
        if fragment.number == 1 { assembly.first = fragment.firstInnerPayload }
        count(.fragmentsReceived)
        guard assembly.pieces.count == Int(assembly.total), let first = assembly.first else {
            session.incomingFragments[id] = assembly
            reassemblyOctets += heldAfter - heldBefore
            return nil
        }
        session.incomingFragments[id] = nil
        reassemblyOctets -= heldBefore
        let joined = (1...assembly.total).flatMap { assembly.pieces[$0] ?? [] }
        return (first, joined[...])
    }

    /// Forgets what an IKE SA that goes held for reassembly, in the engine's total too.
    func releaseFragments(of session: IKESession) {
        reassemblyOctets -= session.fragmentOctets
        session.incomingFragments = [:]
    }
}
