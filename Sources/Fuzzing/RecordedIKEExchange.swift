import IKEv2

/// Two engines on an in-memory link, run through a full life (IKE_SA_INIT, IKE_AUTH, CHILD_SA and IKE_SA
/// rekeys, a new CHILD_SA, liveness, deletes) with seeded randomness. The fuzz targets take their seeds from
/// the datagrams it records and their keys from the responder's snapshot.
final class RecordedIKEExchange {
    static let initiatorAddress = IPAddress("192.0.2.1")!
    static let responderAddress = IPAddress("192.0.2.2")!
    static let proposal = "aes256gcm16-prfsha256-x25519"

    struct Record {
        var fromInitiator: Bool
        var datagram: Datagram
    }

    let initiator: IKEEngine
    let responder: IKEEngine
    private(set) var records: [Record] = []
    /// The responder's established IKE SA right after IKE_AUTH, before anything else happened.
    private(set) var responderSnapshot: IKESASnapshot?
    /// Protected requests the initiator sent after IKE_AUTH: (header, first inner payload, inner octets).
    private(set) var protectedRequests: [(header: IKEHeader, first: PayloadType, inner: [UInt8])] = []
    private var now: Double = 0

    static func connection(local: IPAddress, remote: IPAddress) -> ConnectionConfiguration {
        let child = ChildConfiguration(
            name: "fuzz-child", localTrafficSelectors: [TrafficSelector(cidr: local.description + (local.isIPv6 ? "/128" : "/32"))!],
            remoteTrafficSelectors: [TrafficSelector(cidr: remote.description + (remote.isIPv6 ? "/128" : "/32"))!],
            mode: .tunnel, proposals: [try! ProposalSpec("aes256gcm16", forIKE: false)])
        return ConnectionConfiguration(
            name: "fuzz", localAddress: local, remoteAddress: remote, localIdentity: Identity(local.description),
            remoteIdentity: Identity(remote.description),
            preSharedKey: KeyMaterial(Array("fuzzing pre-shared key".utf8)),
            proposals: [try! ProposalSpec(proposal, forIKE: true)], children: [child])
    }

    static func responderEngine(random: RandomSource) -> IKEEngine {
        IKEEngine(connections: [connection(local: responderAddress, remote: initiatorAddress)], settings: EngineSettings(), random: random)
    }

    init() {
        initiator = IKEEngine(
            connections: [Self.connection(local: Self.initiatorAddress, remote: Self.responderAddress)],
            settings: EngineSettings(), random: SeededRandom(seed: 11))
        responder = Self.responderEngine(random: SeededRandom(seed: 12))
        run(initiator.initiate(connection: "fuzz", now: now))
        responderSnapshot = responder.snapshots(now: now).first
        let keysAfterAuth = responderSnapshot.map { Self.protections(of: $0) }
        // Everything below happens on the first IKE SA, so that its keys open each request.
        let steps: [() -> [EngineAction]] = [
            { self.initiator.checkLiveness(connection: "fuzz", now: self.now) },
            { self.initiator.rekeyChild(connection: "fuzz", now: self.now) },
            { self.initiator.deleteChild(connection: "fuzz", now: self.now) },
            { self.initiator.rekeyIKE(connection: "fuzz", now: self.now) }
        ]
        for step in steps {
            now += 1
            let before = records.count
            run(step())
            guard let keys = keysAfterAuth else { continue }
            for record in records[before...] where record.fromInitiator {
                guard let request = Self.openRequest(record.datagram, with: keys.fromInitiator) else { continue }
                protectedRequests.append((request.header, request.first, Payload.encodeChain(request.inner)))
            }
        }
        // A Delete of the IKE SA itself, which the steps above could only send under the rekeyed SA's keys.
        if let last = protectedRequests.last {
            var header = last.header
            header.exchangeType = .informational
            header.messageID += 1
            let delete = Payload.delete(DeletePayload(protocolID: .ike, spiSize: 0, spis: []))
            protectedRequests.append((header, .delete, Payload.encodeChain([delete])))
        }
        run(initiator.deleteIKE(connection: "fuzz", now: now + 1))
    }

    private func run(_ actions: [EngineAction]) {
        var queue = actions.map { (true, $0) }
        // Which engine produced an action decides where its datagrams go.
        while !queue.isEmpty {
            let (fromInitiator, action) = queue.removeFirst()
            guard case .send(let datagram) = action else { continue }
            records.append(Record(fromInitiator: fromInitiator, datagram: datagram))
            let target = fromInitiator ? responder : initiator
            queue += target.receive(datagram.payload, from: datagram.source, to: datagram.destination, now: now).map { (!fromInitiator, $0) }
        }
    }

    /// The SK keys of each direction of an established IKE SA snapshot.
    static func protections(of snapshot: IKESASnapshot) -> (fromInitiator: MessageProtection, fromResponder: MessageProtection) {
        let spec = try! ProposalSpec(snapshot.suite, forIKE: true)
        let encryption = spec.encryption[0]
        let integrity = encryption.isAEAD ? nil : spec.integrity.first
        let k = snapshot.keys.map(KeyMaterial.init)
        return (
            MessageProtection(encryption: encryption, integrity: integrity, encryptionKey: k[3], integrityKey: k[1]),
            MessageProtection(encryption: encryption, integrity: integrity, encryptionKey: k[4], integrityKey: k[2])
        )
    }

    nonisolated(unsafe) static let shared = RecordedIKEExchange()
}

extension RecordedIKEExchange {
    /// A protected request opened with the keys it was sealed under: header, first inner payload, inner payloads.
    static func openRequest(_ datagram: Datagram, with protection: MessageProtection) -> (header: IKEHeader, first: PayloadType, inner: [Payload])? {
        let octets = datagram.ikeOctets
        guard let message = try? IKEMessage.decode(octets), !message.header.flags.contains(.response),
            case .encrypted(let sk)? = message.payloads.last,
            let inner = try? ProtectedMessage.open(octets, message: message, protection: protection)
        else { return nil }
        return (message.header, sk.firstInnerPayload, inner)
    }

    /// The payload types of the protected response among `actions` whose header `matches`, opened with
    /// the responder's keys; one that does not open is a broken invariant, added to `broken`.
    static func protectedResponse(
        in actions: [EngineAction], matching matches: (IKEHeader) -> Bool, protection: MessageProtection,
        named name: String, broken: inout [String]
    ) -> [PayloadType]? {
        var answer: [PayloadType]?
        for case .send(let sent) in actions {
            let octets = sent.ikeOctets
            guard let message = try? IKEMessage.decode(octets), message.header.flags.contains(.response),
                matches(message.header), message.payloads.encrypted != nil
            else { continue }
            do { answer = try ProtectedMessage.open(octets, message: message, protection: protection).map(\.type) } catch {
                broken.append("\(name) does not open with the responder's keys: \(error)")
            }
        }
        return answer
    }
}

extension Datagram {
    /// The IKE message it carries: on port 4500, what follows the non-ESP marker.
    var ikeOctets: [UInt8] { destination.port == 4500 ? Array(payload.dropFirst(4)) : payload }
}
