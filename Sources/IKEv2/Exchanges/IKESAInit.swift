import Crypto

/// IKE_SA_INIT (RFC 7296 section 1.2): proposals, key exchange, nonces, NAT detection (2.23),
/// COOKIE (2.6) and INVALID_KE_PAYLOAD (1.2) in both roles.
extension IKEEngine {
    /// NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | IP | port), section 2.23.
    static func natDetectionHash(spiInitiator: IKESPI, spiResponder: IKESPI, endpoint: Endpoint) -> [UInt8] {
        var data = spiInitiator.bytes + spiResponder.bytes + endpoint.address.bytes
        data += [UInt8(endpoint.port >> 8), UInt8(endpoint.port & 0xff)]
        return Array(Insecure.SHA1.hash(data: data))
    }

    func natDetectionNotifies(session: IKESession) -> [Payload] {
        let spiR = session.isOriginalInitiator && session.state == .initiating ? IKESPI.zero : session.spiResponder
        var source = Self.natDetectionHash(spiInitiator: session.spiInitiator, spiResponder: spiR, endpoint: session.local)
        if session.connection.forceEncapsulation { source = random.bytes(20) }  // pretend to be behind a NAT
        let destination = Self.natDetectionHash(spiInitiator: session.spiInitiator, spiResponder: spiR, endpoint: session.remote)
        return [
            .notify(NotifyPayload(type: .natDetectionSourceIP, data: source)),
            .notify(NotifyPayload(type: .natDetectionDestinationIP, data: destination))
        ]
    }

    /// True when the peer's NAT_DETECTION hashes show an address translation on the path (or it faked one).
    func natDetected(payloads: [Payload], session: IKESession, spiResponder: IKESPI) -> Bool {
        let sources = payloads.notifies.filter { $0.type == .natDetectionSourceIP }.map(\.data)
        guard let destination = payloads.notify(.natDetectionDestinationIP)?.data, !sources.isEmpty else { return false }
        let expectedSource = Self.natDetectionHash(spiInitiator: session.spiInitiator, spiResponder: spiResponder, endpoint: session.remote)
        let expectedDestination = Self.natDetectionHash(spiInitiator: session.spiInitiator, spiResponder: spiResponder, endpoint: session.local)
        return !sources.contains(expectedSource) || destination != expectedDestination
    }

    // MARK: Initiator

    /// `children`: the CHILD SAs to make with the new IKE SA (default: all of the connection's).
    func startInitiator(connection: ConnectionConfiguration, remote: Endpoint, children: [ChildConfiguration]? = nil, now: Double) -> [EngineAction] {
        guard let group = connection.proposals.first?.groups.first else { return [.log("connection \(connection.name) has no key exchange group")] }
        let session = IKESession(
            connection: connection, isOriginalInitiator: true, spiInitiator: newIKESPI(), spiResponder: .zero,
            local: Endpoint(connection.localAddress, connection.localPort), remote: remote, now: now)
        session.nonceInitiator = newNonce()
        session.keyExchange = group.generatePrivateKey(random: random)
        session.pendingChildren = children ?? connection.children
        sessions[session.spiInitiator] = session
        return info("initiating IKE SA \(session.spiInitiator) for '\(connection.name)' to \(remote)") + sendInitRequest(session: session, now: now)
    }

    /// The connection's IKE proposals, each with the group of our KE moved first among its groups so that the
    /// responder can pick it without an INVALID_KE_PAYLOAD round trip.
    func ikeProposals(connection: ConnectionConfiguration, spi: [UInt8], preferring group: KeyExchangeGroup?) -> [Proposal] {
        connection.proposals.enumerated().map { index, spec in
            var proposal = spec.proposal(number: UInt8(index + 1), protocolID: .ike, spi: spi)
            if let group, let at = proposal.transforms.firstIndex(of: group.transform) {
                let transform = proposal.transforms.remove(at: at)
                let firstGroup = proposal.transforms.firstIndex { $0.type == .keyExchange } ?? proposal.transforms.endIndex
                proposal.transforms.insert(transform, at: firstGroup)
            }
            return proposal
        }
    }

    /// The hashes the peer's SIGNATURE_HASH_ALGORITHMS lists (RFC 7427 section 4); none without the notify.
    static func signatureHashes(_ payloads: [Payload]) -> SignatureHashAlgorithms {
        SignatureHashAlgorithms(notifyData: payloads.notify(.signatureHashAlgorithms)?.data ?? [])
    }

    func sendInitRequest(session: IKESession, now: Double) -> [EngineAction] {
        guard let keyExchange = session.keyExchange else { return [.log("IKE_SA_INIT for '\(session.connection.name)': no key exchange prepared")] }
        let proposals = ikeProposals(connection: session.connection, spi: [], preferring: keyExchange.group)
        var payloads: [Payload] = []
        if let cookie = session.cookie { payloads.append(.notify(NotifyPayload(type: .cookie, data: cookie))) }
        payloads += [
            .securityAssociation(SecurityAssociationPayload(proposals: proposals)),
            .keyExchange(KeyExchangePayload(group: keyExchange.group.rawValue, data: keyExchange.publicValue)),
            .nonce(NoncePayload(session.nonceInitiator))
        ]
        payloads += natDetectionNotifies(session: session)
        if session.connection.usesCertificates { payloads.append(.notify(SignatureAuthentication.hashAlgorithmsNotify)) }
        if settings.fragmentation { payloads.append(.notify(NotifyPayload(type: .ikev2FragmentationSupported))) }
        payloads.append(.notify(NotifyPayload(type: .childlessIKEv2Supported)))
        // RFC 9370 section 2.2.1: proposing additional key exchanges, the initiator announces IKE_INTERMEDIATE.
        if Self.offersAdditionalKeyExchanges(session.connection) {
            payloads.append(.notify(NotifyPayload(type: .intermediateExchangeSupported)))
        }
        // RFC 8784 section 3: with a PPK configured, required or not, the initiator offers it.
        if session.connection.postQuantumPresharedKey != nil { payloads.append(.notify(NotifyPayload(type: .usePPK))) }
        let message = IKEMessage(header: session.header(exchange: .ikeSAInit, messageID: 0, response: false), payloads: payloads)
        let bytes = message.encode()
        session.initiatorFirstMessage = bytes
        session.nextRequestID = 1
        let datagram = makeDatagram(bytes, from: session.local, to: session.remote)
        session.outstanding = OutstandingRequest(
            messageID: 0, datagrams: [datagram], context: .ikeSAInit, attempts: 1,
            nextRetransmitAt: now + settings.retransmitTimeout)
        return [.send(datagram)]
    }

    func handleInitResponse(session: IKESession, message: IKEMessage, raw: [UInt8], now: Double) -> [EngineAction] {
        let payloads = message.payloads
        if let cookie = payloads.notify(.cookie) {
            guard session.cookie == nil || session.cookie! != cookie.data else { return [.log("responder repeated the same COOKIE")] }
            session.cookie = cookie.data
            session.outstanding = nil
            return [.log("responder asked for a COOKIE, retrying IKE_SA_INIT with it")] + sendInitRequest(session: session, now: now)
        }
        if let invalidKE = payloads.notify(.invalidKEPayload) {
            guard let requested = invalidKE.requestedGroup, let group = KeyExchangeGroup(rawValue: requested),
                session.connection.proposals.contains(where: { $0.groups.contains(group) }), group != session.keyExchange?.group
            else {
                return closeSession(session, kind: .ikeFailed, reason: "INVALID_KE_PAYLOAD asks for a group we do not offer")
            }
            session.keyExchange = group.generatePrivateKey(random: random)
            session.outstanding = nil
            return [.log("responder wants key exchange group \(group.name), retrying")] + sendInitRequest(session: session, now: now)
        }
        if let error = payloads.notifies.first(where: { $0.type.isError }) {
            return closeSession(session, kind: .ikeFailed, reason: "IKE_SA_INIT refused: \(error.type)")
        }
        guard let sa = payloads.securityAssociation, sa.proposals.count == 1, let ke = payloads.keyExchange,
            let nonce = payloads.nonce, !message.header.spiResponder.isZero
        else {
            return closeSession(session, kind: .ikeFailed, reason: "IKE_SA_INIT response lacks SA, KE or Nonce")
        }
        // The responder's choice: one of each type, an additional key exchange answered NONE possibly left out
        // (RFC 9370 section 2.2.1).
        let answered = sa.proposals[0].transforms.filter {
            !($0.type.additionalKeyExchangeNumber != nil && $0.identifier == TransformType.noneIdentifier)
        }
        guard let suite = session.connection.proposals.lazy.compactMap({ $0.selectIKE(from: sa.proposals[0]) }).first,
            answered.count == suite.transforms.count
        else {
            return closeSession(session, kind: .ikeFailed, reason: "responder chose a proposal we did not offer")
        }
        let additional = suite.keyExchangesToRun
        guard additional.isEmpty || payloads.notify(.intermediateExchangeSupported) != nil else {
            return closeSession(
                session, kind: .ikeFailed,
                reason: "responder chose additional key exchanges but did not announce IKE_INTERMEDIATE (RFC 9370 section 2.2.1)")
        }
        guard let keyExchange = session.keyExchange, ke.group == keyExchange.group.rawValue, suite.group == keyExchange.group else {
            return closeSession(session, kind: .ikeFailed, reason: "responder's KE group does not match")
        }
        let sharedSecret: KeyMaterial
        do { sharedSecret = try keyExchange.sharedSecret(peerPublicValue: ke.data) } catch {
            return closeSession(session, kind: .ikeFailed, reason: "invalid KE public value from responder")
        }
        session.outstanding = nil
        session.spiResponder = message.header.spiResponder
        session.nonceResponder = nonce.nonce
        session.responderFirstMessage = raw
        session.peerSignatureHashes = Self.signatureHashes(payloads)
        session.fragmentation = settings.fragmentation && payloads.notify(.ikev2FragmentationSupported) != nil
        session.peerSupportsChildless = payloads.notify(.childlessIKEv2Supported) != nil
        session.peerAnnouncedPPK = session.connection.postQuantumPresharedKey != nil && payloads.notify(.usePPK) != nil
        agreeKeys(session: session, suite: suite, sharedSecret: sharedSecret)
        session.keyExchange = nil
        session.pendingKeyExchanges = additional
        var actions: [EngineAction] = []
        session.natDetected =
            session.connection.forceEncapsulation
            || natDetected(payloads: payloads, session: session, spiResponder: session.spiResponder)
        if session.natDetected {
            // Section 2.23: after a NAT is detected both sides move to port 4500.
            session.local.port = 4500
            session.remote.port = 4500
            actions += info("NAT detected (or encapsulation forced), switching to UDP 4500")
        }
        return actions + sendNextIntermediateOrAuth(session: session, now: now)
    }

    // MARK: Responder

    /// Positions in `connections` of those configured for this address pair, in file order. Positions, not
    /// copies: a configuration is a large value, and with a thousand connections on one address pair copying
    /// them all for every IKE_SA_INIT and IKE_AUTH took a third of the responder's CPU (issue 21).
    func matchingConnections(local: Endpoint, remote: Endpoint) -> [Int] { candidates(local: local, remote: remote).positions }

    func candidates(local: Endpoint, remote: Endpoint) -> ConnectionCandidates {
        let pair = AddressPair(local: local.address, remote: remote.address)
        if let known = candidatesByAddressPair[pair] { return known }
        let positions = (connectionsByLocalAddress[local.address] ?? []).filter {
            connections[$0].remoteAddress.map { $0 == remote.address } ?? true
        }
        let made = ConnectionCandidates(positions: positions, connections: connections)
        if candidatesByAddressPair.count >= Self.candidateTableLimit { candidatesByAddressPair.removeAll() }
        candidatesByAddressPair[pair] = made
        return made
    }

    /// The first candidate connection (by position) with an IKE proposal the peer's SA offers.
    func selectIKEProposal(sa: SecurityAssociationPayload, candidates: [Int])
        -> (connection: ConnectionConfiguration, suite: IKECipherSuite, proposalNumber: UInt8)?
    {
        for position in candidates {
            if let (suite, number) = selectIKEProposal(sa: sa, proposals: connections[position].proposals) {
                return (connections[position], suite, number)
            }
        }
        return nil
    }

    /// The peer's first proposal (in its order) that one of ours accepts, and the suite chosen from it.
    func selectIKEProposal(sa: SecurityAssociationPayload, proposals: [ProposalSpec]) -> (suite: IKECipherSuite, proposalNumber: UInt8)? {
        for proposal in sa.proposals {
            for spec in proposals {
                if let suite = spec.selectIKE(from: proposal) { return (suite, proposal.number) }
            }
        }
        return nil
    }

    func cookie(nonce: [UInt8], remote: Endpoint, spi: IKESPI) -> [UInt8] {
        [0] + Array(SHA256.hash(data: nonce + remote.address.bytes + spi.bytes + cookieSecret))
    }

    /// Whether two IKE_SA_INIT requests are one request sent in two versions, with and without a COOKIE (or with
    /// two COOKIEs): the same SPI, proposals, KE and nonce, so the same keys; the COOKIE notify is all that differs.
    static func sameRequest(_ a: IKEMessage, _ b: IKEMessage) -> Bool {
        func withoutCookie(_ payloads: [Payload]) -> [Payload] {
            payloads.filter { if case .notify(let n) = $0, n.type == .cookie { false } else { true } }
        }
        return a.header.spiInitiator == b.header.spiInitiator && withoutCookie(a.payloads) == withoutCookie(b.payloads)
    }

    /// A request that made this half-open IKE SA arrives again in another version. Under load the two cross: we
    /// asked for a COOKIE, the initiator's retransmission without it then came in below the threshold and made
    /// this SA, and its retry with the COOKIE arrives now. The initiator takes whichever answer comes first, and
    /// signs the latest version of its first message (RFC 7296 section 2.15), so the version with a COOKIE becomes
    /// the one its AUTH is checked against; our answer serves both (same keys). A late copy without the COOKIE
    /// changes nothing. Found by the daemon's burst benchmark: 8 of 1,000 negotiations failed AUTH this way.
    func answerAnotherVersion(of session: IKESession, message: IKEMessage, raw: [UInt8], cached: [Datagram]) -> [EngineAction] {
        count(.retransmittedRequest)
        var actions: [EngineAction] = []
        if message.payloads.notify(.cookie) != nil {
            session.initiatorFirstMessage = raw
            count(.requestRetriedWithCookie)
            actions.append(
                .log(
                    "IKE_SA_INIT from \(session.remote) for '\(session.connection.name)' retried with a COOKIE after it made IKE SA "
                        + "\(session.spiResponder): its answer sent again, the retry is the version AUTH covers"))
        }
        return actions + cached.map { .send($0) }
    }

    func handleInitRequest(message: IKEMessage, raw: [UInt8], from remote: Endpoint, to local: Endpoint, now: Double) -> [EngineAction] {
        let header = message.header
        let payloads = message.payloads
        func reply(_ notify: NotifyPayload) -> [EngineAction] {
            if notify.type != .cookie, !initErrorAnswers.allow(now: now) {
                count(.answerRateLimited)
                return initErrorLog.line(
                    "IKE_SA_INIT error answers over \(Int(settings.initErrorAnswerRate))/s: dropping requests unanswered (answer_rate_limited)",
                    now: now
                ).map { [.log($0)] } ?? []
            }
            let response = IKEMessage(
                header: IKEHeader(
                    spiInitiator: header.spiInitiator, spiResponder: .zero, nextPayload: .none,
                    exchangeType: .ikeSAInit, flags: [.response], messageID: header.messageID),
                payloads: [.notify(notify)])
            return [.send(makeDatagram(response.encode(), from: local, to: remote))]
        }
        guard header.isFromOriginalInitiator, header.spiResponder.isZero, header.messageID == 0 else {
            return drop(.invalidState("IKE_SA_INIT request with wrong flags, responder SPI or message ID"))
        }
        if let existing = responderSessions.session(initiatorSPI: header.spiInitiator, remote: remote.address, held: sessions) {
            if let cached = existing.lastResponse, cached.messageID == 0 {
                if existing.initiatorFirstMessage == raw {
                    count(.retransmittedRequest)
                    // Sampled: a flood of replayed IKE_SA_INIT requests is answered from the cache at full speed.
                    return (retransmittedInitLog.line("answering retransmitted IKE_SA_INIT from cache", now: now).map { [.log($0)] } ?? [])
                        + cached.datagrams.map { .send($0) }
                }
                if let earlier = try? IKEMessage.decode(existing.initiatorFirstMessage), Self.sameRequest(message, earlier) {
                    return answerAnotherVersion(of: existing, message: message, raw: raw, cached: cached.datagrams)
                }
            }
            return drop(.invalidState("second IKE_SA_INIT for an existing IKE SA"))
        }
        let candidates = matchingConnections(local: local, remote: remote)
        guard !candidates.isEmpty else {
            count(.noMatchingConnection)
            return (strangerLog.line("IKE_SA_INIT from \(remote) to \(local): no connection configured", now: now).map { [.log($0)] } ?? [])
                + reply(NotifyPayload(type: .noProposalChosen))
        }
        guard let sa = payloads.securityAssociation, let ke = payloads.keyExchange, let nonce = payloads.nonce else {
            count(.malformed)
            return reply(NotifyPayload(type: .invalidSyntax))
        }
        let halfOpen = responderSessions.halfOpenCount(held: sessions, threshold: settings.cookieThreshold)
        if halfOpen >= settings.cookieThreshold {
            let expected = cookie(nonce: nonce.data, remote: remote, spi: header.spiInitiator)
            guard let offered = payloads.notify(.cookie), offered.data == expected else {
                count(.cookieSent)
                return (cookieLog.line("\(halfOpen) half-open IKE SAs: asking \(remote) for a COOKIE", now: now).map { [.log($0)] } ?? [])
                    + reply(NotifyPayload(type: .cookie, data: expected))
            }
        }
        let selection: (connection: ConnectionConfiguration, suite: IKECipherSuite, proposalNumber: UInt8)? = self.selectIKEProposal(
            sa: sa, candidates: candidates)
        guard let selection else {
            count(.noProposalChosen)
            return [.log("IKE_SA_INIT from \(remote): no acceptable proposal")] + reply(NotifyPayload(type: .noProposalChosen))
        }
        let connection = selection.connection
        let suite = selection.suite
        let proposalNumber = selection.proposalNumber
        // RFC 9370 section 2.2.1: additional key exchanges only with an initiator that announced IKE_INTERMEDIATE.
        let additional = suite.keyExchangesToRun
        guard additional.isEmpty || payloads.notify(.intermediateExchangeSupported) != nil else {
            count(.noProposalChosen)
            return [.log("IKE_SA_INIT from \(remote): the proposal asks for additional key exchanges without INTERMEDIATE_EXCHANGE_SUPPORTED")]
                + reply(NotifyPayload(type: .noProposalChosen))
        }
        guard ke.group == suite.group.rawValue else {
            count(.invalidKESent)
            return [.log("IKE_SA_INIT from \(remote): KE uses group \(ke.group), asking for \(suite.group.name)")]
                + reply(.invalidKEPayload(group: suite.group.rawValue))
        }
        let keyExchange = suite.group.generatePrivateKey(random: random)
        let sharedSecret: KeyMaterial
        do { sharedSecret = try keyExchange.sharedSecret(peerPublicValue: ke.data) } catch {
            count(.invalidKEValue)
            return reply(NotifyPayload(type: .invalidSyntax))
        }
        let session = IKESession(
            connection: connection, isOriginalInitiator: false, spiInitiator: header.spiInitiator,
            spiResponder: newIKESPI(), local: local, remote: remote, now: now)
        session.nonceInitiator = nonce.nonce
        session.nonceResponder = newNonce()
        session.initiatorFirstMessage = raw
        session.natDetected = natDetected(payloads: payloads, session: session, spiResponder: .zero)
        agreeKeys(session: session, suite: suite, sharedSecret: sharedSecret)
        session.pendingKeyExchanges = additional
        var response: [Payload] = [
            .securityAssociation(SecurityAssociationPayload(proposals: [suite.proposal(number: proposalNumber, spi: [])])),
            .keyExchange(KeyExchangePayload(group: suite.group.rawValue, data: keyExchange.publicValue)),
            .nonce(NoncePayload(session.nonceResponder))
        ]
        // Ask for the peer's certificate when it must authenticate with one (section 3.7).
        if case .certificate(let anchors, _, _) = connection.remoteAuthentication, let request = SignatureAuthentication.certificateRequest(anchors) {
            response.append(request)
        }
        response += natDetectionNotifies(session: session)
        session.peerSignatureHashes = Self.signatureHashes(payloads)
        session.fragmentation = settings.fragmentation && payloads.notify(.ikev2FragmentationSupported) != nil
        if session.fragmentation { response.append(.notify(NotifyPayload(type: .ikev2FragmentationSupported))) }
        // An IKE_AUTH without a CHILD SA is accepted (RFC 6023) unless the connection refuses them.
        if connection.childless != .never { response.append(.notify(NotifyPayload(type: .childlessIKEv2Supported))) }
        if connection.usesCertificates && payloads.notify(.signatureHashAlgorithms) != nil {
            response.append(.notify(SignatureAuthentication.hashAlgorithmsNotify))
        }
        if !additional.isEmpty { response.append(.notify(NotifyPayload(type: .intermediateExchangeSupported))) }
        // RFC 8784 section 3: a responder with a PPK answers the initiator's USE_PPK with its own.
        if payloads.notify(.usePPK) != nil, connection.postQuantumPresharedKey != nil {
            session.peerAnnouncedPPK = true
            response.append(.notify(NotifyPayload(type: .usePPK)))
        }
        let bytes = IKEMessage(header: session.header(exchange: .ikeSAInit, messageID: 0, response: true), payloads: response).encode()
        session.responderFirstMessage = bytes
        session.expectedRequestID = 1
        let datagram = makeDatagram(bytes, from: local, to: remote)
        session.lastResponse = (0, [datagram])
        sessions[session.spiResponder] = session
        responderSessions.add(session)
        return info("IKE_SA_INIT from \(remote) for '\(connection.name)': \(suite.name)\(session.natDetected ? ", NAT detected" : "")")
            + [.send(datagram)]
    }

    /// SKEYSEED and SK_* from the key exchange and both nonces (RFC 7296 section 2.14): IKE_AUTH follows.
    func agreeKeys(session: IKESession, suite: IKECipherSuite, sharedSecret: KeyMaterial) {
        let skeyseed = KeyDerivation.skeyseed(
            prf: suite.prf, nonceInitiator: session.nonceInitiator, nonceResponder: session.nonceResponder, sharedSecret: sharedSecret)
        session.agreeKeys(
            suite: suite,
            keys: KeyDerivation.ikeKeys(
                suite: suite, skeyseed: skeyseed, nonceInitiator: session.nonceInitiator, nonceResponder: session.nonceResponder,
                spiInitiator: session.spiInitiator, spiResponder: session.spiResponder))
    }
}
