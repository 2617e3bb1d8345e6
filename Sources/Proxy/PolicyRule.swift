import IKEv2
import Packets

/// What the policy decides for a packet (RFC 4301 section 4.4.1: BYPASS, DISCARD, PROTECT).
public enum PolicyAction: Equatable, Sendable, CustomStringConvertible {
    case bypass
    case discard
    /// Protect with the named protection profile (IKE/ESP proposals and credential).
    case protect(profile: String)

    public var description: String {
        switch self {
        case .bypass: return "bypass"
        case .discard: return "discard"
        case .protect(let profile): return "protect(\(profile))"
        }
    }
}

/// An address prefix of either family, as an inclusive range of 128-bit keys (IPv4 in the low 32 bits).
public struct AddressPrefix: Equatable, Sendable, CustomStringConvertible {
    public var isIPv6: Bool
    public var low: AddressKey
    public var high: AddressKey
    public var text: String

    /// "10.0.0.0/24", "2001:db8::1/128", a bare address (one host), or nil for text that is none of these.
    public init?(_ text: String, isIPv6Default: Bool = false) {
        guard let selector = TrafficSelector(cidr: text) else { return nil }
        isIPv6 = selector.isIPv6
        low = AddressKey(selector.startAddress.bytes)
        high = AddressKey(selector.endAddress.bytes)
        self.text = text.contains("/") ? text : text + (selector.isIPv6 ? "/128" : "/32")
    }

    public static func any(ipv6: Bool) -> AddressPrefix { AddressPrefix(ipv6 ? "::/0" : "0.0.0.0/0")! }

    public func contains(_ key: AddressKey) -> Bool { low <= key && key <= high }
    /// Whether `address`, of this prefix's family, lies inside it.
    public func contains(_ address: IPAddress) -> Bool { isIPv6 == address.isIPv6 && contains(AddressKey(address.bytes)) }
    public var description: String { text }
}

/// An address as a 128-bit number for range comparisons (IPv4 addresses occupy the low 32 bits).
public struct AddressKey: Comparable, Hashable, Sendable {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public init<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        var h: UInt64 = 0
        var l: UInt64 = 0
        for (index, byte) in bytes.enumerated() {
            if bytes.count == 16 && index < 8 { h = h << 8 | UInt64(byte) } else { l = l << 8 | UInt64(byte) }
        }
        high = h
        low = l
    }

    @inlinable
    public static func < (a: AddressKey, b: AddressKey) -> Bool { a.high != b.high ? a.high < b.high : a.low < b.low }

    /// The next key, saturating at the maximum.
    public var successor: AddressKey {
        if low == .max { return high == .max ? self : AddressKey(high: high + 1, low: 0) }
        return AddressKey(high: high, low: low + 1)
    }
}

/// An inclusive range of ports (or, for ICMP, of message types or codes).
public struct PortRange: Equatable, Sendable, CustomStringConvertible {
    public var low: UInt16
    public var high: UInt16
    public init(_ low: UInt16, _ high: UInt16) {
        self.low = low
        self.high = high
    }
    public static let any = PortRange(0, 65535)
    public var isAny: Bool { self == .any }
    @inlinable public func contains(_ port: UInt16) -> Bool { low <= port && port <= high }

    /// "any", "80", "1000-2000".
    public init?(_ text: String) {
        if text == "any" {
            self = .any
            return
        }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let low = UInt16(parts[0]), let high = UInt16(parts.last!), low <= high else { return nil }
        self.init(low, high)
    }
    public var description: String { isAny ? "any" : low == high ? "\(low)" : "\(low)-\(high)" }
}

/// One ordered entry of the policy table (the SPD of RFC 4301 section 4.4.1): selectors and an action.
/// For ICMP and ICMPv6, `sourcePorts` matches the message type and `destinationPorts` the code, as
/// RFC 4301 section 4.4.1.1 places them.
public struct PolicyRule: Equatable, Sendable, CustomStringConvertible {
    public var source: AddressPrefix
    public var destination: AddressPrefix
    /// IP protocol number, nil for any.
    public var ipProtocol: UInt8?
    public var sourcePorts: PortRange
    public var destinationPorts: PortRange
    public var action: PolicyAction

    public init(
        source: AddressPrefix, destination: AddressPrefix, ipProtocol: UInt8? = nil, sourcePorts: PortRange = .any,
        destinationPorts: PortRange = .any, action: PolicyAction
    ) {
        self.source = source
        self.destination = destination
        self.ipProtocol = ipProtocol
        self.sourcePorts = sourcePorts
        self.destinationPorts = destinationPorts
        self.action = action
    }

    public func matches(_ key: FlowKey) -> Bool {
        source.isIPv6 == key.isIPv6 && destination.contains(key.destination) && source.contains(key.source)
            && (ipProtocol == nil || ipProtocol == key.ipProtocol)
            && sourcePorts.contains(key.sourcePort) && destinationPorts.contains(key.destinationPort)
    }

    public var description: String {
        let proto = ipProtocol.map { String($0) } ?? "any"
        return "\(source) -> \(destination) proto \(proto) ports \(sourcePorts) -> \(destinationPorts): \(action)"
    }
}

/// The selector fields of one packet, as the policy looks them up.
public struct FlowKey: Equatable, Hashable, Sendable {
    public var isIPv6: Bool
    public var source: AddressKey
    public var destination: AddressKey
    public var ipProtocol: UInt8
    public var sourcePort: UInt16
    public var destinationPort: UInt16

    public init(isIPv6: Bool, source: AddressKey, destination: AddressKey, ipProtocol: UInt8, sourcePort: UInt16 = 0, destinationPort: UInt16 = 0) {
        self.isIPv6 = isIPv6
        self.source = source
        self.destination = destination
        self.ipProtocol = ipProtocol
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    /// The key of an IP packet; ports are zero when the packet has none (later fragments, other protocols).
    public init(packet: [UInt8], view: IPPacketView) {
        let ports = view.ports(in: packet)
        self.init(
            isIPv6: view.version == 6, source: AddressKey(packet[view.sourceRange]),
            destination: AddressKey(packet[view.destinationRange]), ipProtocol: view.upperProtocol,
            sourcePort: ports?.source ?? 0, destinationPort: ports?.destination ?? 0)
    }
}
