/// An established IKE SA with its CHILD SAs, as plain values: what a restarted engine needs to go on
/// with it (keys, message IDs, SPIs, selectors, ages). Times are ages relative to the moment the
/// snapshot was taken, so the embedding program can carry them across a restart of the monotonic clock.
/// The keys are secrets: whoever stores a snapshot seals it first.
public struct IKESASnapshot: Codable, Equatable, Sendable {
    public struct Child: Codable, Equatable, Sendable {
        public var configuration: String
        public var spiInbound: UInt32
        public var spiOutbound: UInt32
        public var suite: String
        public var encryptionInbound: [UInt8]
        public var integrityInbound: [UInt8]
        public var encryptionOutbound: [UInt8]
        public var integrityOutbound: [UInt8]
        public var localTrafficSelectors: [Selector]
        public var remoteTrafficSelectors: [Selector]
        public var mode: ChildMode
        public var ageSeconds: Double
        public var rekeyed: Bool
    }

    public struct Selector: Codable, Equatable, Sendable {
        public var ipProtocol: UInt8
        public var startPort: UInt16
        public var endPort: UInt16
        public var startAddress: String
        public var endAddress: String
    }

    public var connection: String
    public var isOriginalInitiator: Bool
    public var spiInitiator: UInt64
    public var spiResponder: UInt64
    public var localAddress: String
    public var localPort: UInt16
    public var remoteAddress: String
    public var remotePort: UInt16
    public var suite: String
    /// SK_d, SK_ai, SK_ar, SK_ei, SK_er, SK_pi, SK_pr in that order.
    public var keys: [[UInt8]]
    public var natDetected: Bool
    public var nextRequestID: UInt32
    public var expectedRequestID: UInt32
    public var ageSeconds: Double
    public var rekeyInSeconds: Double?
    public var children: [Child]
    /// The PPK_ID of the post-quantum preshared key in the keys (RFC 8784); absent without one (and in snapshots
    /// saved before it was kept).
    public var ppkIdentity: [UInt8]?
    /// The answer to the peer's last request, as sent (each datagram's octets), and that request's message ID: the
    /// peer retransmits a request whose answer it lost, and must get the same answer again (RFC 7296 section
    /// 2.1), also from the daemon that took over after the one that answered died. Absent in older snapshots.
    public var lastResponseID: UInt32?
    public var lastResponse: [[UInt8]]?

    public var ikeSPIs: (initiator: IKESPI, responder: IKESPI) { (IKESPI(spiInitiator), IKESPI(spiResponder)) }
}

/// Why a snapshot could not be restored.
public enum SnapshotRestoreError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownConnection(String)
    case unknownChildConfiguration(String)
    case malformed(String)
    case alreadyPresent

    public var description: String {
        switch self {
        case .unknownConnection(let name): return "no connection named '\(name)'"
        case .unknownChildConfiguration(let name): return "no CHILD SA configuration named '\(name)'"
        case .malformed(let what): return "malformed snapshot: \(what)"
        case .alreadyPresent: return "an IKE SA with these SPIs exists already"
        }
    }
}

extension TrafficSelector {
    init?(_ selector: IKESASnapshot.Selector) {
        guard let start = IPAddress(selector.startAddress), let end = IPAddress(selector.endAddress) else { return nil }
        self.init(ipProtocol: selector.ipProtocol, startPort: selector.startPort, endPort: selector.endPort, startAddress: start, endAddress: end)
    }

    var snapshot: IKESASnapshot.Selector {
        IKESASnapshot.Selector(
            ipProtocol: ipProtocol, startPort: startPort, endPort: endPort,
            startAddress: startAddress.description, endAddress: endAddress.description)
    }
}

extension IKEEngine {
    /// Snapshots of every established IKE SA (half-open ones are not worth keeping: a restart drops them).
    public func snapshots(now: Double) -> [IKESASnapshot] {
        sessions.values.filter { $0.state == .established }.sorted { $0.createdAt < $1.createdAt }.compactMap { snapshot(of: $0, now: now) }
    }

    func snapshot(of session: IKESession, now: Double) -> IKESASnapshot? {
        guard let suite = session.suite, let keys = session.keys else { return nil }
        let children = session.children.map { child in
            IKESASnapshot.Child(
                configuration: child.configuration.name, spiInbound: child.spiInbound.rawValue,
                spiOutbound: child.spiOutbound.rawValue, suite: child.suite.name,
                encryptionInbound: child.keys.encryptionInbound.bytes, integrityInbound: child.keys.integrityInbound.bytes,
                encryptionOutbound: child.keys.encryptionOutbound.bytes, integrityOutbound: child.keys.integrityOutbound.bytes,
                localTrafficSelectors: child.localTrafficSelectors.map(\.snapshot),
                remoteTrafficSelectors: child.remoteTrafficSelectors.map(\.snapshot),
                mode: child.mode, ageSeconds: now - child.createdAt, rekeyed: child.rekeyed)
        }
        // A request still in flight will be sent again with the same message ID after a restart.
        let nextRequestID = session.outstanding.map { $0.messageID } ?? session.nextRequestID
        return IKESASnapshot(
            connection: session.connection.name, isOriginalInitiator: session.isOriginalInitiator,
            spiInitiator: session.spiInitiator.rawValue, spiResponder: session.spiResponder.rawValue,
            localAddress: session.local.address.description, localPort: session.local.port,
            remoteAddress: session.remote.address.description, remotePort: session.remote.port,
            suite: suite.name,
            keys: [
                keys.deriving, keys.integrityInitiator, keys.integrityResponder, keys.encryptionInitiator,
                keys.encryptionResponder, keys.authenticationInitiator, keys.authenticationResponder
            ].map(\.bytes),
            natDetected: session.natDetected, nextRequestID: nextRequestID,
            expectedRequestID: session.expectedRequestID, ageSeconds: now - session.createdAt,
            rekeyInSeconds: session.rekeyAt.map { $0 - now }, children: children, ppkIdentity: session.ppkUsed?.identity,
            lastResponseID: session.lastResponse?.messageID, lastResponse: session.lastResponse?.datagrams.map(\.payload))
    }

    /// Puts an established IKE SA back after a restart. Its connection must be configured (added) first.
    /// Returns a `childEstablished` event per live CHILD SA it brought back, so the embedding program can
    /// rebuild its own tables (they are not new SAs: nothing needs to be negotiated or handed out).
    @discardableResult
    public func restore(_ snapshot: IKESASnapshot, now: Double) throws(SnapshotRestoreError) -> [SAEvent] {
        guard let connection = connection(named: snapshot.connection) else { throw .unknownConnection(snapshot.connection) }
        guard let local = IPAddress(snapshot.localAddress), let remote = IPAddress(snapshot.remoteAddress) else { throw .malformed("addresses") }
        guard let spec = try? ProposalSpec(snapshot.suite, forIKE: true), let encryption = spec.encryption.first,
            let prf = spec.prf.first, let group = spec.groups.first
        else { throw .malformed("IKE suite '\(snapshot.suite)'") }
        guard snapshot.keys.count == 7 else { throw .malformed("IKE keys") }
        let k = snapshot.keys.map(KeyMaterial.init)
        let session = IKESession(
            connection: connection, isOriginalInitiator: snapshot.isOriginalInitiator,
            spiInitiator: IKESPI(snapshot.spiInitiator), spiResponder: IKESPI(snapshot.spiResponder),
            local: Endpoint(local, snapshot.localPort), remote: Endpoint(remote, snapshot.remotePort),
            now: now - snapshot.ageSeconds)
        guard sessions[session.localSPI] == nil else { throw .alreadyPresent }
        session.lifecycle = .established(
            IKESAKeying(
                suite: IKECipherSuite(
                    encryption: encryption, integrity: encryption.isAEAD ? nil : spec.integrity.first, prf: prf, group: group,
                    additionalKeyExchanges: spec.namedAdditionalKeyExchanges),
                keys: IKESAKeys(
                    deriving: k[0], integrityInitiator: k[1], integrityResponder: k[2], encryptionInitiator: k[3],
                    encryptionResponder: k[4], authenticationInitiator: k[5], authenticationResponder: k[6])))
        session.natDetected = snapshot.natDetected
        session.nextRequestID = snapshot.nextRequestID
        session.expectedRequestID = snapshot.expectedRequestID
        if let id = snapshot.lastResponseID, let payloads = snapshot.lastResponse {
            session.lastResponse = (id, payloads.map { Datagram(payload: $0, source: session.local, destination: session.remote) })
        }
        session.lastReceivedAt = now
        session.rekeyAt = snapshot.rekeyInSeconds.map { now + $0 }
        // Only its name is used once the keys are made (events, listings); the key itself is in SK_d already.
        session.ppkUsed = snapshot.ppkIdentity.map { PostQuantumPresharedKey(identity: $0, key: KeyMaterial([]), required: false) }
        for child in snapshot.children {
            guard let configuration = connection.children.first(where: { $0.name == child.configuration }) else {
                throw .unknownChildConfiguration(child.configuration)
            }
            guard let childSpec = try? ProposalSpec(child.suite, forIKE: false), let childEncryption = childSpec.encryption.first else {
                throw .malformed("CHILD suite '\(child.suite)'")
            }
            let selectors = (
                child.localTrafficSelectors.compactMap(TrafficSelector.init), child.remoteTrafficSelectors.compactMap(TrafficSelector.init)
            )
            guard selectors.0.count == child.localTrafficSelectors.count, selectors.1.count == child.remoteTrafficSelectors.count else {
                throw .malformed("traffic selectors")
            }
            session.children.append(
                ChildSA(
                    configuration: configuration, spiInbound: ChildSPI(child.spiInbound), spiOutbound: ChildSPI(child.spiOutbound),
                    suite: ChildCipherSuite(
                        encryption: childEncryption, integrity: childEncryption.isAEAD ? nil : childSpec.integrity.first,
                        group: childSpec.groups.first, extendedSequenceNumbers: childSpec.extendedSequenceNumbers.first ?? false,
                        additionalKeyExchanges: childSpec.namedAdditionalKeyExchanges),
                    keys: DirectionalChildKeys(
                        encryptionInbound: KeyMaterial(child.encryptionInbound), integrityInbound: KeyMaterial(child.integrityInbound),
                        encryptionOutbound: KeyMaterial(child.encryptionOutbound), integrityOutbound: KeyMaterial(child.integrityOutbound)),
                    localTrafficSelectors: selectors.0, remoteTrafficSelectors: selectors.1, mode: child.mode,
                    createdAt: now - child.ageSeconds, lifecycle: child.rekeyed ? .replaced(at: nil) : .active))
        }
        sessions[session.localSPI] = session
        return session.children.filter { !$0.rekeyed }.map { childEvent(.childEstablished, session: session, child: $0) }
    }
}
