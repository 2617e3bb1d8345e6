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
            guard let request = RecordedIKEExchange.openRequest(record.datagram, with: keys.fromInitiator),
                request.header.exchangeType == .ikeAuth, request.header.spiInitiator == snapshot.ikeSPIs.initiator
            else { return nil }
            return [request.header.flags.rawValue, request.first.rawValue] + Payload.encodeChain(request.inner)
        }
    }

    public func run(_ input: [UInt8]) -> [String] { exchange(input).broken }

    /// Runs one input; also returns the payload types of the protected IKE_AUTH answer, if any.
    public func exchange(_ input: [UInt8]) -> (broken: [String], answer: [PayloadType]?) {
        let recorded = RecordedIKEExchange.shared
        guard let snapshot = recorded.responderSnapshot,
            let first = recorded.records.first(where: \.fromInitiator)?.datagram
        else { return (["the recorded exchange did not establish an IKE SA"], nil) }
        let keys = RecordedIKEExchange.protections(of: snapshot)
        let engine = RecordedIKEExchange.responderEngine(random: SeededRandom(seed: 12))
        let initActions = engine.receive(first.payload, from: first.source, to: first.destination, now: 0)
        var broken = IKEResponderFuzzTarget.check(initActions)
        var reader = FuzzInput(input)
        let flags = IKEHeader.Flags(rawValue: reader.byte())
        let firstPayload = PayloadType(rawValue: reader.byte())
        let header = IKEHeader(
            spiInitiator: snapshot.ikeSPIs.initiator, spiResponder: snapshot.ikeSPIs.responder, nextPayload: .encrypted,
            exchangeType: .ikeAuth, flags: flags, messageID: 1)
        guard
            let datagram = try? ProtectedMessage.seal(
                header: header, firstInnerPayload: firstPayload, innerOctets: reader.rest(),
                protection: keys.fromInitiator, random: SeededRandom(seed: 15))
        else {
            return (broken + ["sealing failed"], nil)
        }
        let actions = engine.receive(datagram, from: first.source, to: first.destination, now: 0.1) + engine.tick(now: 120)
        broken += IKEResponderFuzzTarget.check(actions)
        let answer = RecordedIKEExchange.protectedResponse(
            in: actions, matching: { $0.exchangeType == .ikeAuth }, protection: keys.fromResponder,
            named: "the IKE_AUTH response", broken: &broken)
        return (broken, answer)
    }
}
