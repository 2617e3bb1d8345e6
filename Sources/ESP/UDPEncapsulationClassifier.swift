/// What arrived on UDP port 4500 (RFC 3948 section 2): IKE behind the non-ESP marker, a NAT keepalive
/// (one 0xFF octet), or ESP (a non-zero SPI first).
public enum UDPEncapsulatedKind: Equatable, Sendable {
    case ike
    case keepalive
    case esp
    case malformed

    public init(payload: ArraySlice<UInt8>) {
        let s = payload.startIndex
        if payload.count == 1 && payload[s] == 0xff {
            self = .keepalive
            return
        }
        guard payload.count >= 8 else {
            self = .malformed
            return
        }
        let zeroMarker = payload[s] == 0 && payload[s + 1] == 0 && payload[s + 2] == 0 && payload[s + 3] == 0
        self = zeroMarker ? .ike : .esp
    }

    /// The NAT keepalive payload (RFC 3948 section 2.3).
    public static let keepalivePayload: [UInt8] = [0xff]
}
