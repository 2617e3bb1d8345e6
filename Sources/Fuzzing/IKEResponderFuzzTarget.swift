import IKEv2

/// Cleartext datagrams from the network into an engine that knows a peer but has no SA yet: on port 500,
/// or on 4500 behind the non-ESP marker. Whatever comes in, the engine answers or counts a drop, and
/// everything it sends is a well-formed IKE message.
public final class IKEResponderFuzzTarget: FuzzTarget {
    public static let name = "ike-responder"
    public init() {}

    /// Input: one octet choosing the port (even 500, odd 4500), then datagrams as records; the
    /// recorded exchange's first two requests are the seeds, so mutations reach IKE_AUTH too.
    public func seeds() -> [[UInt8]] {
        let requests = RecordedIKEExchange.shared.records.filter { $0.fromInitiator }.prefix(2).map(\.datagram.payload)
        return [[0] + requests.flatMap(FuzzInput.record), [0] + FuzzInput.record(requests.first ?? [])]
    }

    public func run(_ input: [UInt8]) -> [String] { exchange(input).broken }

    /// Runs one input; also returns the exchange types the engine answered.
    public func exchange(_ input: [UInt8]) -> (broken: [String], answered: [ExchangeType]) {
        var reader = FuzzInput(input)
        let port: UInt16 = reader.byte() & 1 == 0 ? 500 : 4500
        let engine = RecordedIKEExchange.responderEngine(random: SeededRandom(seed: 12))
        let from = Endpoint(RecordedIKEExchange.initiatorAddress, port)
        let to = Endpoint(RecordedIKEExchange.responderAddress, port)
        var broken: [String] = []
        var answered: [ExchangeType] = []
        var now = 0.0
        repeat {
            var datagram = reader.record()
            if port == 4500 { datagram = [0, 0, 0, 0] + datagram }
            let actions = engine.receive(datagram, from: from, to: to, now: now)
            broken += Self.check(actions)
            for case .send(let sent) in actions {
                if let message = try? IKEMessage.decode(sent.ikeOctets) { answered.append(message.header.exchangeType) }
            }
            now += 0.5
        } while !reader.isAtEnd
        broken += Self.check(engine.tick(now: now + 60))
        return (broken, answered)
    }

    /// Every datagram an engine sends decodes as an IKE message.
    static func check(_ actions: [EngineAction]) -> [String] {
        actions.compactMap { action in
            guard case .send(let datagram) = action else { return nil }
            var payload = datagram.payload
            if datagram.source.port == 4500 {
                guard payload.starts(with: [0, 0, 0, 0]) else { return "sent on port 4500 without the non-ESP marker" }
                payload.removeFirst(4)
            }
            do { _ = try IKEMessage.decode(payload) } catch { return "the engine sent a message that does not decode: \(error)" }
            return nil
        }
    }
}
