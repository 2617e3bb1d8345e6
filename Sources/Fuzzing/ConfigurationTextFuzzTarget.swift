import IKEv2
import Packets
import Proxy

/// The hand-written parsers of configuration and management text: addresses, prefixes and traffic
/// selectors, MAC addresses, proposals, identities. Garbage must be refused, never trap; what is
/// accepted must be made only of the characters of its notation and print back to text that parses to
/// the same value.
public final class ConfigurationTextFuzzTarget: FuzzTarget {
    public static let name = "configuration-text"
    public init() {}

    /// Input: lines of text, each tried with every parser.
    public func seeds() -> [[UInt8]] {
        [
            ["192.0.2.1", "2001:db8::1", "::", "::ffff:192.0.2.1", "fe80::1:2:3:4", "1:2:3:4:5:6:7:8"],
            ["10.0.0.0/24", "2001:db8::/64", "0.0.0.0/0", "::/0", "192.0.2.7/32"],
            [
                "192.0.2.1[tcp/443]", "10.0.0.0/24[udp/1000-2000]", "2001:db8::1[icmpv6]", "192.0.2.1[47]", "192.0.2.1[%any]",
                "192.0.2.1[icmp/8]", "192.0.2.1[icmp/3(4)]", "192.0.2.1[icmp/0-8(255)]", "2001:db8::1[ipv6-icmp/128]"
            ],
            ["02:00:00:00:d0:01", "02-00-00-00-d0-02"],
            ["aes256gcm16-prfsha256-x25519", "aes256-sha256-modp2048", "chacha20poly1305-prfsha512-ecp384", "aes128gcm16-esn"],
            ["peer.example.com", "admin@example.com", "192.0.2.1", "2001:db8::2"]
        ].map { Array($0.joined(separator: "\n").utf8) }
    }

    public func run(_ input: [UInt8]) -> [String] {
        var broken: [String] = []
        for line in input.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            let text = String(decoding: line, as: UTF8.self)
            if let address = IPAddress(text) {
                if !text.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) {
                    broken.append("IPAddress accepted '\(text)', which holds characters no address has")
                }
                if IPAddress(address.description) != address { broken.append("IPAddress '\(text)' prints as '\(address)', which parses to another") }
            }
            if let prefix = AddressPrefix(text) {
                guard let again = AddressPrefix(prefix.text) else {
                    broken.append("AddressPrefix '\(text)' prints as '\(prefix.text)', which is refused")
                    continue
                }
                if again.low != prefix.low || again.high != prefix.high || again.isIPv6 != prefix.isIPv6 {
                    broken.append("AddressPrefix '\(text)' prints as '\(prefix.text)', which parses to another range")
                }
                if prefix.low > prefix.high { broken.append("AddressPrefix '\(text)' has its low end above its high end") }
            }
            if let selector = TrafficSelector(cidr: text), selector.startAddress.isIPv6 != selector.endAddress.isIPv6 {
                broken.append("TrafficSelector '\(text)' mixes address families")
            }
            if let selector = try? TrafficSelector(text: text) {
                if (try? TrafficSelector(text: selector.description)) != selector {
                    broken.append("TrafficSelector '\(text)' prints as '\(selector)', which does not parse to the same selector")
                }
                if selector.startPort > selector.endPort || selector.startAddress > selector.endAddress {
                    broken.append("TrafficSelector '\(text)' has a range whose low end is above its high end")
                }
            }
            if let mac = MACAddress(text: text) {
                if MACAddress(text: mac.description) != mac { broken.append("MACAddress '\(text)' prints as '\(mac)', which parses to another") }
                if !text.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "-" }) {
                    broken.append("MACAddress accepted '\(text)', which holds characters no MAC address has")
                }
            }
            for forIKE in [true, false] { _ = try? ProposalSpec(text, forIKE: forIKE) }
            let identity = Identity(text)
            _ = identity.description
        }
        return broken
    }
}
