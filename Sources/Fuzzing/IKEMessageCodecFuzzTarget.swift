import IKEv2

/// The IKE wire codec on any octets: decoding fails with a typed error or yields a message that encodes
/// and decodes back to itself (encode and decode are inverses on everything decode accepts).
public final class IKEMessageCodecFuzzTarget: FuzzTarget {
    public static let name = "ike-message"
    public init() {}

    public func seeds() -> [[UInt8]] {
        RecordedIKEExchange.shared.records.map(\.datagram.ikeOctets)
    }

    public func run(_ input: [UInt8]) -> [String] {
        guard let message = try? IKEMessage.decode(input) else { return [] }
        let encoded = message.encode()
        do {
            let again = try IKEMessage.decode(encoded)
            return again == message ? [] : ["decode(encode(m)) differs from m"]
        } catch {
            return ["a decoded message re-encodes to octets that do not decode: \(error)"]
        }
    }
}
