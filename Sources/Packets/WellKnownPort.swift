/// UDP ports the proxy judges packets by.
public enum WellKnownPort {
    /// IKE (RFC 7296 section 2).
    public static let ike: UInt16 = 500
    /// IKE and ESP in UDP after NAT detection (RFC 3948, RFC 7296 section 2.23).
    public static let ikeNATTraversal: UInt16 = 4500
    /// IKEProxy's key-delivery channel, on the proxy's side and by default on the terminal's (docs/key-delivery.md).
    public static let keyDelivery: UInt16 = 9500
}
