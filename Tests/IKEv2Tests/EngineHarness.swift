import IKEv2

/// Two engines joined by an in-memory link: datagrams addressed to one are handed to it, no sockets.
final class EnginePair {
    let initiator: IKEEngine
    var responder: IKEEngine
    let initiatorAddress: IPAddress
    let responderAddress: IPAddress
    var now: Double = 0
    var events: [(side: String, event: SAEvent)] = []
    var drops: [(side: String, reason: DropReason)] = []
    var logs: [(side: String, line: String)] = []
    var wire: [Datagram] = []
    /// Return false to lose a datagram on the link.
    var deliver: (Datagram) -> Bool = { _ in true }
    /// While set, datagrams stay on the link in `held` until `release` hands them over, in any order.
    var holding = false
    var held: [Datagram] = []
    /// Online revocation checks asked for, by side; `answerRevocation` answers at once when set.
    var revocationRequests: [(side: String, request: RevocationCheckRequest)] = []
    var answerRevocation: ((RevocationCheckRequest) -> RevocationStatus)?

    init(
        initiator: [ConnectionConfiguration], responder: [ConnectionConfiguration], initiatorAddress: IPAddress,
        responderAddress: IPAddress, responderSettings: EngineSettings = EngineSettings(), initiatorSettings: EngineSettings = EngineSettings(),
        seeds: (UInt64, UInt64) = (1, 2)
    ) {
        self.initiator = IKEEngine(connections: initiator, settings: initiatorSettings, random: SeededRandom(seed: seeds.0))
        self.responder = IKEEngine(connections: responder, settings: responderSettings, random: SeededRandom(seed: seeds.1))
        self.initiatorAddress = initiatorAddress
        self.responderAddress = responderAddress
    }

    func run(_ actions: [EngineAction], from side: String) {
        var queue = actions.map { (side, $0) }
        while !queue.isEmpty {
            let (origin, action) = queue.removeFirst()
            switch action {
            case .send(let datagram):
                wire.append(datagram)
                if holding {
                    held.append(datagram)
                    continue
                }
                queue += hand(datagram)
            case .event(let event): events.append((origin, event))
            case .drop(let reason): drops.append((origin, reason))
            case .log(let line): logs.append((origin, line.text))
            case .initialContact: break
            case .checkRevocation(let request):
                revocationRequests.append((origin, request))
                if let status = answerRevocation?(request) {
                    let engine = origin == "responder" ? responder : initiator
                    queue += engine.revocationChecked(request.id, status, now: now).map { (origin, $0) }
                }
            }
        }
    }

    private func hand(_ datagram: Datagram) -> [(String, EngineAction)] {
        guard deliver(datagram) else { return [] }
        let target = datagram.destination.address == responderAddress ? responder : initiator
        let name = target === responder ? "responder" : "initiator"
        return target.receive(datagram.payload, from: datagram.source, to: datagram.destination, now: now).map { (name, $0) }
    }

    /// Delivers the held datagram at `index`; what the receiver sends back is held too while `holding`.
    func release(_ index: Int = 0) {
        let datagram = held.remove(at: index)
        for (side, action) in hand(datagram) { run([action], from: side) }
    }

    /// The one request the initiator sends for `actions`, taken off the link (held, not delivered): the test hands it
    /// to the responder itself and decides what becomes of the answer. Nil if it sent none. The link keeps holding
    /// what is sent afterwards (`holding`).
    func takeRequest(_ actions: [EngineAction]) -> Datagram? {
        holding = true
        run(actions, from: "initiator")
        defer { held = [] }
        return held.first
    }

    /// The datagrams among `actions`, as their octets.
    static func sent(_ actions: [EngineAction]) -> [[UInt8]] {
        actions.compactMap { action in
            guard case .send(let datagram) = action else { return nil }
            return datagram.payload
        }
    }

    /// Delivers held datagrams in order until none is left.
    func releaseAll() {
        while !held.isEmpty { release() }
    }

    func advance(to time: Double) {
        now = time
        run(initiator.tick(now: now), from: "initiator")
        run(responder.tick(now: now), from: "responder")
    }

    func events(_ side: String, _ kind: SAEvent.Kind) -> [SAEvent] {
        events.filter { $0.side == side && $0.event.kind == kind }.map(\.event)
    }
}

enum Fixtures {
    static let psk = KeyMaterial(Array("correct horse battery staple".utf8))

    static func connection(
        name: String = "c", local: String, remote: String?, proposal: String, esp: String,
        mode: ChildMode = .tunnel, localTS: String? = nil, remoteTS: String? = nil,
        psk: KeyMaterial = Fixtures.psk, localID: String? = nil, remoteID: String? = nil,
        extraProposals: [String] = []
    ) throws -> ConnectionConfiguration {
        let child = ChildConfiguration(
            name: name + "-child",
            localTrafficSelectors: [TrafficSelector(cidr: localTS ?? local)!],
            remoteTrafficSelectors: [TrafficSelector(cidr: remoteTS ?? remote ?? "0.0.0.0/0")!],
            mode: mode, proposals: [try ProposalSpec(esp, forIKE: false)])
        return ConnectionConfiguration(
            name: name, localAddress: IPAddress(local)!, remoteAddress: remote.flatMap(IPAddress.init),
            localIdentity: Identity(localID ?? local), remoteIdentity: (remoteID ?? remote).map(Identity.init),
            preSharedKey: psk,
            proposals: try ([proposal] + extraProposals).map { try ProposalSpec($0, forIKE: true) },
            children: [child])
    }

    static func pair(
        proposal: String = "aes256gcm16-prfsha256-x25519", esp: String = "aes256gcm16",
        a: String = "192.0.2.1", b: String = "192.0.2.2", mode: ChildMode = .tunnel,
        responderSettings: EngineSettings = EngineSettings()
    ) throws -> EnginePair {
        EnginePair(
            initiator: [try connection(local: a, remote: b, proposal: proposal, esp: esp, mode: mode)],
            responder: [try connection(local: b, remote: a, proposal: proposal, esp: esp, mode: mode)],
            initiatorAddress: IPAddress(a)!, responderAddress: IPAddress(b)!, responderSettings: responderSettings)
    }
}
