import IKEv2

/// IKE_INTERMEDIATE (RFC 9242) at a responder with two additional key exchanges of RFC 9370 due
/// (`ke1_mlkem768-ke2_mlkem768`): IKE_SA_INIT is run between two engines, optionally the first
/// IKE_INTERMEDIATE too, and then the fuzz octets are sealed with the initiator's real keys of that moment
/// as the contents of an IKE_INTERMEDIATE request (or of another exchange), so the key exchange, IntAuth
/// and the key update see them after the integrity check has passed.
public final class IKEIntermediateFuzzTarget: FuzzTarget {
    public static let name = "ike-intermediate"
    public init() {}

    static let proposal = "aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke2_mlkem768"
    private static let exchanges: [ExchangeType] = [.ikeIntermediate, .ikeAuth, .createChildSA, .informational]

    /// Input: bit 0 of the first octet runs the first IKE_INTERMEDIATE for real before the fuzzed message;
    /// the rest of it picks the exchange (index into the list above, else the raw value); then flags, the
    /// message-ID offset from the expected one (128 = expected), the first inner payload type, the inner octets.
    public func seeds() -> [[UInt8]] {
        let encapsulationKey = KeyExchangeMethod.mlkem768.initiate(random: SeededRandom(seed: 21)).share
        let ke = Payload.encodeChain([.keyExchange(KeyExchangePayload(group: 36, data: encapsulationKey))])
        let wrongMethod = Payload.encodeChain([.keyExchange(KeyExchangePayload(group: 37, data: encapsulationKey))])
        let short = Payload.encodeChain([.keyExchange(KeyExchangePayload(group: 36, data: Array(encapsulationKey.prefix(100))))])
        let notify = Payload.encodeChain([.notify(NotifyPayload(type: .additionalKeyExchange, data: [1, 2, 3, 4]))])
        return [
            [0, 0x08, 128, PayloadType.keyExchange.rawValue] + ke,
            [1, 0x08, 128, PayloadType.keyExchange.rawValue] + ke,
            [0, 0x08, 128, PayloadType.keyExchange.rawValue] + wrongMethod,
            [1, 0x08, 128, PayloadType.keyExchange.rawValue] + short,
            [0, 0x08, 128, PayloadType.notify.rawValue] + notify,
            [2, 0x08, 128, PayloadType.notify.rawValue] + notify,
            [1, 0x08, 127, PayloadType.keyExchange.rawValue] + ke
        ]
    }

    public func run(_ input: [UInt8]) -> [String] { exchange(input).broken }

    /// Runs one input; also returns the payload types of the protected answer, if any.
    public func exchange(_ input: [UInt8]) -> (broken: [String], answer: [PayloadType]?) {
        var reader = FuzzInput(input)
        let first = reader.byte()
        let choice = Int(first >> 1)
        let exchange = choice < Self.exchanges.count ? Self.exchanges[choice] : ExchangeType(rawValue: UInt8(truncatingIfNeeded: choice))
        let flags = IKEHeader.Flags(rawValue: reader.byte())
        let offset = Int(reader.byte()) - 128
        let firstInner = PayloadType(rawValue: reader.byte())

        let initiatorAddress = RecordedIKEExchange.initiatorAddress
        let responderAddress = RecordedIKEExchange.responderAddress
        func connection(_ local: IPAddress, _ remote: IPAddress) -> ConnectionConfiguration {
            var made = RecordedIKEExchange.connection(local: local, remote: remote)
            made.proposals = [try! ProposalSpec(Self.proposal, forIKE: true)]
            return made
        }
        let initiator = IKEEngine(connections: [connection(initiatorAddress, responderAddress)], random: SeededRandom(seed: 22))
        let responder = IKEEngine(connections: [connection(responderAddress, initiatorAddress)], random: SeededRandom(seed: 23))
        var broken: [String] = []
        func sent(_ actions: [EngineAction]) -> [Datagram] {
            broken += IKEResponderFuzzTarget.check(actions)
            return actions.compactMap { if case .send(let datagram) = $0 { datagram } else { nil } }
        }
        func deliver(_ datagrams: [Datagram], to engine: IKEEngine) -> [Datagram] {
            datagrams.flatMap { sent(engine.receive($0.payload, from: $0.source, to: $0.destination, now: 0)) }
        }
        // IKE_SA_INIT, then (bit 0) the first IKE_INTERMEDIATE; the initiator's next request is dropped.
        var toResponder = sent(initiator.initiate(connection: "fuzz", now: 0))
        var toInitiator = deliver(toResponder, to: responder)
        toResponder = deliver(toInitiator, to: initiator)
        if first & 1 == 1 {
            toInitiator = deliver(toResponder, to: responder)
            toResponder = deliver(toInitiator, to: initiator)
        }
        guard let request = toResponder.first.flatMap({ try? IKEMessage.decode($0.ikeOctets) }) else {
            return (broken + ["the initiator sent no request after IKE_SA_INIT"], nil)
        }
        let header = request.header
        guard let keys = initiator.messageProtections(ourSPI: header.spiInitiator) else {
            return (broken + ["the initiator holds no keys after IKE_SA_INIT"], nil)
        }
        let messageID = UInt32(truncatingIfNeeded: Int(header.messageID) + offset)
        let fuzzed = IKEHeader(
            spiInitiator: header.spiInitiator, spiResponder: header.spiResponder, nextPayload: .encrypted, exchangeType: exchange,
            flags: flags, messageID: messageID)
        guard
            let bytes = try? ProtectedMessage.seal(
                header: fuzzed, firstInnerPayload: firstInner, innerOctets: reader.rest(), protection: keys.outgoing,
                random: SeededRandom(seed: 24))
        else { return (broken + ["sealing failed"], nil) }
        let target = toResponder[0]
        let actions =
            responder.receive(
                (target.destination.port == 4500 ? [0, 0, 0, 0] : []) + bytes, from: target.source, to: target.destination, now: 1)
            + responder.tick(now: 120)
        broken += IKEResponderFuzzTarget.check(actions)
        // The answer to this request is under the keys it came with (RFC 9370: the update follows the exchange).
        // An earlier message ID is a retransmission, answered from the cache under the keys of its time.
        let answer = RecordedIKEExchange.protectedResponse(
            in: actions, matching: { $0.messageID == messageID && offset >= 0 }, protection: keys.incoming,
            named: "the response", broken: &broken)
        return (broken, answer)
    }
}
