import IKEv2

/// Authentic but arbitrary IKE_AUTH contents: a fresh responder takes the recorded IKE_SA_INIT (seeded
/// randomness makes its keys the recorded ones), then the fuzz octets, sealed with the initiator's real
/// SK_ei, as the IKE_AUTH request: identities, AUTH, proposals, traffic selectors, notifies, CERT and CP
/// reach the handler after the integrity check has passed. Answers must decode and open with SK_er.
public final class IKEAuthFuzzTarget: FuzzTarget {
    public static let name = "ike-auth"
    public init() {}

    /// Input: flags, first inner payload type, then the inner payload octets.
    public func seeds() -> [[UInt8]] {
        let recorded = RecordedIKEExchange.shared
        guard let snapshot = recorded.responderSnapshot else { return [] }
        let keys = RecordedIKEExchange.protections(of: snapshot)
        return recorded.records.filter(\.fromInitiator).compactMap { record in
            var payload = record.datagram.payload
            if record.datagram.destination.port == 4500 { payload.removeFirst(4) }
            guard let message = try? IKEMessage.decode(payload), message.header.exchangeType == .ikeAuth,
                  message.header.spiInitiator == snapshot.ikeSPIs.initiator, case .encrypted(let sk)? = message.payloads.last,
                  let inner = try? ProtectedMessage.open(payload, message: message, protection: keys.fromInitiator) else { return nil }
            return [message.header.flags.rawValue, sk.firstInnerPayload.rawValue] + Payload.encodeChain(inner)
        }
    }

    public func run(_ input: [UInt8]) -> [String] { exchange(input).broken }

    /// Runs one input; also returns the payload types of the protected IKE_AUTH answer, if any.
    public func exchange(_ input: [UInt8]) -> (broken: [String], answer: [PayloadType]?) {
        let recorded = RecordedIKEExchange.shared
        guard let snapshot = recorded.responderSnapshot,
              let first = recorded.records.first(where: \.fromInitiator)?.datagram else { return (["the recorded exchange did not establish an IKE SA"], nil) }
        let keys = RecordedIKEExchange.protections(of: snapshot)
        let engine = RecordedIKEExchange.responderEngine(random: SeededRandom(seed: 12))
        let initActions = engine.receive(first.payload, from: first.source, to: first.destination, now: 0)
        var broken = IKEResponderFuzzTarget.check(initActions)
        var reader = FuzzInput(input)
        let flags = IKEHeader.Flags(rawValue: reader.byte())
        let firstPayload = PayloadType(rawValue: reader.byte())
        let header = IKEHeader(spiInitiator: snapshot.ikeSPIs.initiator, spiResponder: snapshot.ikeSPIs.responder, nextPayload: .encrypted,
                               exchangeType: .ikeAuth, flags: flags, messageID: 1)
        guard let datagram = try? ProtectedMessage.seal(header: header, firstInnerPayload: firstPayload, innerOctets: reader.rest(),
                                                        protection: keys.fromInitiator, random: SeededRandom(seed: 15)) else {
            return (broken + ["sealing failed"], nil)
        }
        let actions = engine.receive(datagram, from: first.source, to: first.destination, now: 0.1) + engine.tick(now: 120)
        broken += IKEResponderFuzzTarget.check(actions)
        var answer: [PayloadType]?
        for case .send(let sent) in actions {
            guard let message = try? IKEMessage.decode(sent.payload), message.header.flags.contains(.response),
                  message.header.exchangeType == .ikeAuth, message.payloads.encrypted != nil else { continue }
            do { answer = try ProtectedMessage.open(sent.payload, message: message, protection: keys.fromResponder).map(\.type) }
            catch { broken.append("the IKE_AUTH response does not open with the responder's keys: \(error)") }
        }
        return (broken, answer)
    }
}
