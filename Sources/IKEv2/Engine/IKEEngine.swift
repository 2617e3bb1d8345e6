import Crypto

/// The IKEv2 protocol engine (RFC 7296) as a pure state machine: datagrams, commands and clock ticks go in,
/// datagrams to send, SA events and counted drops come out. It owns no socket and reads no clock; time is
/// passed in (seconds, monotonic) and randomness comes from the injected `RandomSource`.
public final class IKEEngine {
    public let settings: EngineSettings
    public internal(set) var connections: [ConnectionConfiguration] = [] {
        didSet { candidatesByAddressPair.removeAll() }
    }
    /// Connection candidates per address pair, made on first use; forgotten whenever a connection changes,
    /// and when a flood of distinct addresses would make the table large.
    var candidatesByAddressPair: [AddressPair: ConnectionCandidates] = [:]
    static let candidateTableLimit = 4_096
    /// Connections by name and by local address, so that lookups stay cheap with thousands of them
    /// (the proxy adds one per terminal and peer). Connections are appended; a reload may remove some.
    var connectionsByName: [String: Int] = [:]
    var connectionsByLocalAddress: [IPAddress: [Int]] = [:]

    public func connection(named name: String) -> ConnectionConfiguration? { connectionsByName[name].map { connections[$0] } }
    let random: RandomSource
    var sessions: [IKESPI: IKESession] = [:]
    var responderSessions = ResponderSessionIndex()
    var lastResponderIndexPrune = -Double.infinity
    /// Drops and failures by reason, for operators and tests.
    public private(set) var counters: [String: Int] = [:]
    /// Identifies each online revocation check handed to the I/O layer; ≡ the shard's index + 1 (mod the
    /// shard count), so that the answer finds its engine among several (`IKEShard.owner(ofRevocationCheck:)`).
    var nextRevocationCheckID: UInt64
    let cookieSecret: [UInt8]
    /// Octets of fragments held for reassembly by all IKE SAs (`EngineSettings.maximumReassemblyMemory`).
    var reassemblyOctets = 0 {
        didSet { reassemblyOctetsPeak = max(reassemblyOctetsPeak, reassemblyOctets) }
    }
    /// The most octets of fragments ever held at once: what a fragment flood reached of the bound.
    public private(set) var reassemblyOctetsPeak = 0
    /// Error answers to IKE_SA_INIT, and the log lines a flood of requests would repeat.
    var initErrorAnswers: TokenBucket
    var cookieLog = LogSampler()
    var strangerLog = LogSampler()
    var initErrorLog = LogSampler()
    var retransmittedInitLog = LogSampler()
    /// prf(PSK, "Key Pad for IKEv2") by PRF and key (`sharedKeyPad`).
    var sharedKeyPads: [SharedKeyPadEntry: KeyMaterial] = [:]

    public init(
        connections: [ConnectionConfiguration], settings: EngineSettings = EngineSettings(),
        random: RandomSource = SystemRandom()
    ) {
        self.settings = settings
        self.random = random
        self.cookieSecret = random.bytes(32)
        self.nextRevocationCheckID = UInt64(settings.shard.index + 1)
        self.initErrorAnswers = TokenBucket(rate: settings.initErrorAnswerRate)
        for connection in connections { addConnection(connection) }
    }

    // MARK: Inspection

    /// A summary of an IKE SA for listings and tests.
    public struct SessionSummary: Equatable, Sendable {
        public var connection: String
        public var spiInitiator: IKESPI
        public var spiResponder: IKESPI
        public var isOriginalInitiator: Bool
        public var established: Bool
        public var local: Endpoint
        public var remote: Endpoint
        public var children: [(name: String, inbound: ChildSPI, outbound: ChildSPI)]
        /// The algorithms negotiated (nil before IKE_SA_INIT's answer), additional key exchanges included.
        public var suite: IKECipherSuite?
        /// The PPK_ID of the post-quantum preshared key in its keys (RFC 8784); nil without one.
        public var ppkIdentity: String?
        public static func == (a: Self, b: Self) -> Bool {
            a.spiInitiator == b.spiInitiator && a.spiResponder == b.spiResponder && a.established == b.established
                && a.children.map(\.inbound) == b.children.map(\.inbound)
        }
    }

    public var sessionSummaries: [SessionSummary] { sessions.values.sorted { $0.createdAt < $1.createdAt }.map(summary(of:)) }

    func summary(of s: IKESession) -> SessionSummary {
        SessionSummary(
            connection: s.connection.name, spiInitiator: s.spiInitiator, spiResponder: s.spiResponder,
            isOriginalInitiator: s.isOriginalInitiator, established: s.state == .established,
            local: s.local, remote: s.remote,
            children: s.children.filter { !$0.rekeyed }.map { ($0.configuration.name, $0.spiInbound, $0.spiOutbound) },
            suite: s.suite, ppkIdentity: s.ppkUsed?.identityDescription)
    }

    /// The keys protecting an IKE SA's messages as this side uses them (nil when it has none yet), by our SPI:
    /// for harnesses that speak for the peer at any stage (the IKE_INTERMEDIATE fuzz target), where a
    /// snapshot only covers established IKE SAs.
    public func messageProtections(ourSPI spi: IKESPI) -> (outgoing: MessageProtection, incoming: MessageProtection)? {
        guard let session = sessions[spi], let outgoing = session.outgoingProtection, let incoming = session.incomingProtection else { return nil }
        return (outgoing, incoming)
    }

    /// Summaries of the IKE SAs still being negotiated (`sessionSummaries` without the established ones,
    /// which a store asks for after every batch).
    public var negotiationSummaries: [SessionSummary] {
        sessions.values.filter { $0.state != .established }.sorted { $0.createdAt < $1.createdAt }.map(summary(of:))
    }

    /// Both ends' addresses of every established IKE SA, unordered: what the daemon keeps link addresses for.
    public var establishedAddresses: [IPAddress] {
        var addresses: [IPAddress] = []
        for session in sessions.values where session.state == .established {
            addresses.append(session.local.address)
            addresses.append(session.remote.address)
        }
        return addresses
    }

    /// A line about a negotiation going as it should (`LogLevel.info`): made only when the configured level
    /// shows it, so that a quieter level costs none of its formatting.
    func info(_ line: @autoclosure () -> String) -> [EngineAction] { settings.logLevel <= .info ? [.log(LogLine(line()))] : [] }

    func count(_ counter: EngineCounter) { counters[counter.rawValue, default: 0] += 1 }

    // MARK: Timers

    /// Retransmits, gives up on silent peers, expires half-open SAs and starts scheduled rekeys.
    public func tick(now: Double) -> [EngineAction] {
        var actions: [EngineAction] = expireRevocationChecks(now: now)
        // Pruning is memory hygiene only (every lookup checks the IKE SA is still held): once a second, not at
        // every tick, as it hashes every entry.
        if now - lastResponderIndexPrune >= 1 {
            responderSessions.prune(held: sessions)
            lastResponderIndexPrune = now
        }
        // The dictionary's own snapshot: a tick that removes an IKE SA copies it then, one that removes none
        // (nearly every tick) retains no IKE SA to visit it.
        for session in sessions.values {
            if var outstanding = session.outstanding, now >= outstanding.nextRetransmitAt {
                // A peer removes the IKE SA as it answers our Delete (RFC 7296 section 1.4.1), so once that answer
                // is lost no retransmission is ever answered: the Delete gets fewer tries than other requests.
                var limit = settings.retransmitLimit
                if case .deleteIKE = outstanding.context { limit = min(limit, settings.ikeDeleteRetransmitLimit) }
                if outstanding.attempts > limit {
                    actions.append(
                        .log(
                            "IKE SA \(session.spiInitiator)_\(session.spiResponder): no answer after \(outstanding.attempts) transmissions, giving up"
                        ))
                    count(.retransmitTimeout)
                    if session.replacedByRekey {
                        actions += removeReplacedSession(session)
                        continue
                    }
                    actions += closeSession(
                        session, kind: session.state == .established || session.state == .deleting ? .ikeDeleted : .ikeFailed,
                        reason: "peer did not answer (retransmission limit)")
                    continue
                }
                outstanding.attempts += 1
                outstanding.nextRetransmitAt = now + settings.retransmitTimeout * Double(1 << min(outstanding.attempts - 1, 16))
                session.outstanding = outstanding
                actions.append(.log("retransmitting \(outstanding.context) request \(outstanding.messageID) (attempt \(outstanding.attempts))"))
                actions += outstanding.datagrams.map { .send($0) }
            }
            if !session.isOriginalInitiator, session.state != .established, session.state != .deleting,
                now - session.createdAt > settings.halfOpenTimeout
            {
                actions.append(.log("half-open IKE SA \(session.spiInitiator)_\(session.spiResponder) timed out"))
                releaseFragments(of: session)
                sessions[session.localSPI] = nil
                continue
            }
            actions += retireStaleReplaced(session, now: now)
            guard session.state == .established else { continue }
            actions += expireFollowUps(session: session, now: now)
            // Not while a CHILD SA of the peer's is half made here (its IKE_FOLLOWUP_KE exchanges run on this IKE SA).
            if let rekeyAt = session.rekeyAt, now >= rekeyAt, !session.rekey.oursPending, session.followUps.isEmpty {
                session.rekeyAt = nil
                actions += requestRekeyIKE(session: session, now: now)
            }
            for child in session.children where !child.rekeyed {
                if let lifetime = child.configuration.lifetime, now - child.createdAt >= lifetime {
                    guard !isDeleting(session: session, spi: child.spiInbound) else { continue }
                    actions.append(.log("CHILD SA \(child.spiInbound) reached its hard lifetime, deleting"))
                    actions += sendRequest(
                        session: session, exchange: .informational, payloads: [.delete(.child([child.spiInbound]))],
                        context: .deleteChildren([child.spiInbound]), now: now)
                } else if let rekeyAge = RekeySchedule.childRekeyAge(child.configuration, spiInbound: child.spiInbound),
                    now - child.createdAt >= rekeyAge,
                    now >= child.rekeyNotBefore, !isRekeying(session: session, spi: child.spiInbound)
                {
                    actions += requestRekeyChild(session: session, child: child, now: now)
                }
            }
            if let interval = session.connection.livenessInterval, now - session.lastReceivedAt >= interval,
                session.outstanding == nil, session.queued.isEmpty
            {
                actions += sendRequest(session: session, exchange: .informational, payloads: [], context: .liveness, now: now)
            }
        }
        return actions
    }

    func isRekeying(session: IKESession, spi: ChildSPI) -> Bool {
        let contexts = [session.outstanding?.context].compactMap { $0 } + session.queued.map(\.context)
        // The peer's rekey of it whose IKE_FOLLOWUP_KE exchanges are still to come counts too.
        return contexts.contains { $0.childRekeyed == spi }
            || session.followUps.contains { if case .child(_, let rekeying) = $0.target { rekeying == spi } else { false } }
    }

    func isDeleting(session: IKESession, spi: ChildSPI) -> Bool {
        let contexts = [session.outstanding?.context].compactMap { $0 } + session.queued.map(\.context)
        return contexts.contains { if case .deleteChildren(let spis) = $0 { return spis.contains(spi) } else { return false } }
    }

    /// Deletes, from this side, SAs replaced by a rekey whose Delete from the peer never came (as after a
    /// simultaneous rekey whose loser dropped its exchange), so that nothing lingers on either side.
    func retireStaleReplaced(_ session: IKESession, now: Double) -> [EngineAction] {
        let timeout = settings.replacedSATimeout
        if case .replaced(_, let at, deleteSent: false) = session.lifecycle, now - at > timeout, let keying = session.keying {
            session.lifecycle = .replaced(keying, since: at, deleteSent: true)
            // The answer, or the retransmission limit, removes it quietly.
            return [
                .log(
                    "IKE SA \(session.spiInitiator)_\(session.spiResponder) was replaced \(Int(now - at)) s ago and the peer has not deleted it; deleting it"
                )
            ]
                + sendRequest(session: session, exchange: .informational, payloads: [.delete(.ikeSA)], context: .deleteIKE, now: now)
        }
        // Visited for every IKE SA at every tick: nearly all have no replaced CHILD SA.
        guard session.children.contains(where: \.rekeyed), session.state == .established else { return [] }
        var actions: [EngineAction] = []
        for child in session.children
        where child.rekeyed && now - (child.rekeyedAt ?? now) > timeout
            && !isDeleting(session: session, spi: child.spiInbound)
        {
            actions.append(
                .log(
                    "CHILD SA \(child.spiInbound)/\(child.spiOutbound) was replaced \(Int(timeout)) s ago and the peer has not deleted it; deleting it"
                ))
            actions += sendRequest(
                session: session, exchange: .informational, payloads: [.delete(.child([child.spiInbound]))],
                context: .deleteChildren([child.spiInbound]), now: now)
        }
        return actions
    }

    // MARK: Receiving

    /// Handles one UDP payload that arrived on `local` from `remote` (ports 500 or 4500).
    public func receive(_ udpPayload: [UInt8], from remote: Endpoint, to local: Endpoint, now: Double) -> [EngineAction] {
        let actions = handle(udpPayload, from: remote, to: local, now: now)
        // The lines about this datagram name its peer, our address and its IKE SA for the JSON log.
        guard actions.contains(where: { if case .log = $0 { true } else { false } }) else { return actions }
        let facts = LogFacts(datagram: udpPayload, from: remote, to: local)
        return actions.map { action in
            if case .log(let line) = action { return .log(line.adding(facts)) }
            return action
        }
    }

    func handle(_ udpPayload: [UInt8], from remote: Endpoint, to local: Endpoint, now: Double) -> [EngineAction] {
        var bytes = udpPayload
        if local.port == 4500 || remote.port == 4500 {
            if bytes.count == 1 && bytes[0] == 0xff {
                count(.natKeepalive)
                return []
            }
            guard bytes.count >= 4, bytes[0..<4].allSatisfy({ $0 == 0 }) else { return drop(.espOnIKEPort) }
            bytes.removeFirst(4)
        }
        let message: IKEMessage
        do {
            message = try IKEMessage.decode(bytes)
        } catch {
            return handleUndecodable(bytes, error: error, from: remote, to: local)
        }
        let header = message.header
        if header.exchangeType == .ikeSAInit {
            if header.isResponse {
                guard let session = sessions[header.spiInitiator], session.isOriginalInitiator, session.state == .initiating else {
                    return drop(.unknownSPI(header.spiInitiator))
                }
                guard let outstanding = session.outstanding, outstanding.messageID == header.messageID else {
                    return drop(.unexpectedResponse(messageID: header.messageID))
                }
                session.lastReceivedAt = now
                return handleInitResponse(session: session, message: message, raw: bytes, now: now)
            }
            return handleInitRequest(message: message, raw: bytes, from: remote, to: local, now: now)
        }
        // The I flag says whether the sender is the original initiator, hence which SPI is ours.
        let ourSPI = header.isFromOriginalInitiator ? header.spiResponder : header.spiInitiator
        guard let session = sessions[ourSPI], session.keys != nil,
            session.isOriginalInitiator != header.isFromOriginalInitiator
        else {
            return drop(.unknownSPI(ourSPI))
        }
        if header.isResponse {
            guard let outstanding = session.outstanding, outstanding.messageID == header.messageID else {
                return drop(.unexpectedResponse(messageID: header.messageID))
            }
        } else {
            if header.messageID &+ 1 == session.expectedRequestID, session.pendingRevocation?.requestHeader?.messageID == header.messageID {
                // The peer retransmits its IKE_AUTH while we ask OCSP: the answer will go when we have one.
                count(.retransmissionWhileCheckingRevocation)
                return []
            }
            if header.messageID &+ 1 == session.expectedRequestID, let cached = session.lastResponse,
                cached.messageID == header.messageID
            {
                // A fragmented request retransmitted: answer once, on its first fragment (RFC 7383 section 2.6.1).
                if case .encryptedFragment(let fragment)? = message.payloads.last, fragment.number != 1 { return [] }
                count(.retransmittedRequest)
                return [.log("answering retransmitted request \(header.messageID) from cache")] + cached.datagrams.map { .send($0) }
            }
            guard header.messageID == session.expectedRequestID else {
                return drop(.messageIDOutOfWindow(received: header.messageID, expected: session.expectedRequestID))
            }
        }
        let payloads: [Payload]
        let plain: (first: PayloadType, plaintext: ArraySlice<UInt8>)
        do {
            if case .encryptedFragment? = message.payloads.last {
                guard let whole = try reassemble(bytes, message: message, session: session) else { return [] }
                plain = whole
            } else {
                plain = try ProtectedMessage.openPlaintext(bytes, message: message, protection: session.incomingProtection!)
            }
            payloads = try Payload.decodeChain(plain.plaintext, first: plain.first)
        } catch .integrityCheckFailed {
            return drop(.integrityCheckFailed)
        } catch {
            guard !header.isResponse else { return drop(.malformed(error)) }
            session.lastReceivedAt = now
            return answerMalformedRequest(session: session, header: header, error: error)
        }
        session.lastReceivedAt = now
        // NAT traversal (section 2.23): follow the peer to the address and port it now uses.
        if session.natDetected, remote != session.remote || local != session.local {
            session.remote = remote
            session.local = local
        } else if remote.port == 4500, session.remote.port != 4500 {
            session.remote = remote
            session.local = local
        }
        if header.exchangeType == .ikeIntermediate {
            // RFC 9242 section 3.3.2: every IKE_INTERMEDIATE message is chained into its sender's IntAuth as it
            // came (reassembled if fragmented), with the keys that protected it.
            linkIntAuth(session: session, header: header, firstInner: plain.first, inner: plain.plaintext)
        }
        if header.isResponse {
            guard let outstanding = session.outstanding else { return drop(.unexpectedResponse(messageID: header.messageID)) }
            session.outstanding = nil
            if header.exchangeType != .ikeAuth, !(header.exchangeType == .ikeIntermediate && session.state == .authenticating),
                payloads.notify(.invalidSyntax) != nil
            {
                // Section 2.21.3: the peer found our request on the authenticated SA malformed; INVALID_SYNTAX ends the
                // IKE SA on both sides without a Delete exchange. (In IKE_AUTH and IKE_INTERMEDIATE, before the IKE SA
                // is authenticated, it is the refusal those exchanges report: the negotiation failed.)
                count(.invalidSyntaxReceived)
                return [
                    .log(
                        "peer answered request \(header.messageID) with INVALID_SYNTAX: IKE SA \(session.spiInitiator)_\(session.spiResponder) closed"
                    )
                ]
                    + closeSession(session, kind: .ikeDeleted, reason: "the peer answered INVALID_SYNTAX")
            }
            var actions = handleResponse(session: session, context: outstanding.context, header: header, payloads: payloads, now: now)
            actions += sendNextQueued(session: session, now: now)
            return actions
        }
        session.expectedRequestID = header.messageID &+ 1
        return handleRequest(session: session, header: header, payloads: payloads, now: now)
    }

    func drop(_ reason: DropReason) -> [EngineAction] {
        counters[reason.key, default: 0] += 1
        return [.drop(reason)]
    }

    /// An undecodable IKE_SA_INIT request gets the notify section 3.10.1 asks for; anything else is dropped.
    private func handleUndecodable(_ bytes: [UInt8], error: IKEDecodingError, from remote: Endpoint, to local: Endpoint) -> [EngineAction] {
        var actions = drop(.malformed(error))
        guard bytes.count >= IKEHeader.size, let notifyType = error.notify else { return actions }
        var reader = ByteReader(bytes)
        guard let spiI = try? reader.readUInt64("spi"), let spiR = try? reader.readUInt64("spi"),
            spiR == 0, bytes[18] == ExchangeType.ikeSAInit.rawValue, bytes[19] & 0x20 == 0
        else { return actions }
        let messageID = UInt32(bytes[20]) << 24 | UInt32(bytes[21]) << 16 | UInt32(bytes[22]) << 8 | UInt32(bytes[23])
        var data: [UInt8] = []
        if case .unsupportedCriticalPayload = error { data = [error.unsupportedType] }
        if case .invalidMajorVersion = error { data = [] }
        let reply = IKEMessage(
            header: IKEHeader(
                spiInitiator: IKESPI(spiI), spiResponder: .zero, nextPayload: .none,
                exchangeType: .ikeSAInit, flags: [.response], messageID: messageID),
            payloads: [.notify(NotifyPayload(type: notifyType, data: data))])
        actions.append(.send(makeDatagram(reply.encode(), from: local, to: remote)))
        return actions
    }
}

extension IKEDecodingError {
    var unsupportedType: UInt8 {
        if case .unsupportedCriticalPayload(let type) = self { return type.rawValue }
        return 0
    }
}
