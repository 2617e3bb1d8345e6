import IKEv2

/// Authentic but arbitrary protected contents: the fuzz octets are sealed with the initiator's real SK
/// keys and handed to a responder holding the established IKE SA, so CREATE_CHILD_SA, INFORMATIONAL
/// and the rest of the state machine see them after integrity checks have passed. Answers must decode
/// and open with the responder's keys.
public final class IKEProtectedExchangeFuzzTarget: FuzzTarget {
    public static let name = "ike-protected"
    public init() {}

    private static let exchanges: [ExchangeType] = [.createChildSA, .informational, .ikeAuth, .ikeSAInit]

    /// Input: exchange (index into the list above, else the raw value), flags, message-ID offset from the
    /// expected one (128 = expected), first inner payload type, then the inner payload octets.
    public func seeds() -> [[UInt8]] {
        let recorded = RecordedIKEExchange.shared
        guard let snapshot = recorded.responderSnapshot else { return [] }
        return recorded.protectedRequests.map { request in
            let exchange = Self.exchanges.firstIndex(of: request.header.exchangeType).map(UInt8.init) ?? request.header.exchangeType.rawValue
            // Each input meets a freshly restored SA, so each seed carries the message ID it expects next.
            _ = snapshot
            return [exchange, request.header.flags.rawValue, 128, request.first.rawValue] + request.inner
        }
    }

    public func run(_ input: [UInt8]) -> [String] { exchange(input).broken }

    /// Runs one input; also returns the payload types of the protected answer the responder gave, if any.
    public func exchange(_ input: [UInt8]) -> (broken: [String], answer: [PayloadType]?) {
        let recorded = RecordedIKEExchange.shared
        guard let snapshot = recorded.responderSnapshot else { return (["the recorded exchange did not establish an IKE SA"], nil) }
        let keys = RecordedIKEExchange.protections(of: snapshot)
        let engine = RecordedIKEExchange.responderEngine(random: SeededRandom(seed: 13))
        do { try engine.restore(snapshot, now: 0) } catch { return (["snapshot does not restore: \(error)"], nil) }

        var reader = FuzzInput(input)
        let choice = reader.byte()
        let exchange = Int(choice) < Self.exchanges.count ? Self.exchanges[Int(choice)] : ExchangeType(rawValue: choice)
        let flags = IKEHeader.Flags(rawValue: reader.byte())
        let messageID = UInt32(truncatingIfNeeded: Int(snapshot.expectedRequestID) + Int(reader.byte()) - 128)
        let first = PayloadType(rawValue: reader.byte())
        let header = IKEHeader(
            spiInitiator: snapshot.ikeSPIs.initiator, spiResponder: snapshot.ikeSPIs.responder, nextPayload: .encrypted,
            exchangeType: exchange, flags: flags, messageID: messageID)
        guard
            let datagram = try? ProtectedMessage.seal(
                header: header, firstInnerPayload: first, innerOctets: reader.rest(),
                protection: keys.fromInitiator, random: SeededRandom(seed: 14))
        else {
            return (["sealing failed"], nil)
        }
        let from = Endpoint(RecordedIKEExchange.initiatorAddress, 500)
        let to = Endpoint(RecordedIKEExchange.responderAddress, 500)
        let actions = engine.receive(datagram, from: from, to: to, now: 1) + engine.tick(now: 120)
        var broken = IKEResponderFuzzTarget.check(actions)
        // The answer to this request is under the keys it came with; it must open.
        let answer = RecordedIKEExchange.protectedResponse(
            in: actions, matching: { $0.messageID == messageID }, protection: keys.fromResponder,
            named: "the response", broken: &broken)
        return (broken, answer)
    }
}
