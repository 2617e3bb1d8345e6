/// One traffic selector (RFC 7296 section 3.13.1): an address range, an IP protocol and a port range.
public struct TrafficSelector: Hashable, Sendable, CustomStringConvertible {
    public static let ipv4RangeType: UInt8 = 7
    public static let ipv6RangeType: UInt8 = 8

    public var ipProtocol: UInt8
    public var startPort: UInt16
    public var endPort: UInt16
    public var startAddress: IPAddress
    public var endAddress: IPAddress

    public init(
        ipProtocol: UInt8 = 0, startPort: UInt16 = 0, endPort: UInt16 = 65535,
        startAddress: IPAddress, endAddress: IPAddress
    ) {
        self.ipProtocol = ipProtocol
        self.startPort = startPort
        self.endPort = endPort
        self.startAddress = startAddress
        self.endAddress = endAddress
    }

    /// A selector for a whole prefix, e.g. "10.0.0.0/24" or "2001:db8::1/128"; a bare address means one host.
    public init?(cidr: String, ipProtocol: UInt8 = 0, startPort: UInt16 = 0, endPort: UInt16 = 65535) {
        let parts = cidr.split(separator: "/")
        guard let first = parts.first, let address = IPAddress(String(first)) else { return nil }
        let maxLength = address.bytes.count * 8
        let length = parts.count > 1 ? Int(parts[1]) : maxLength
        guard parts.count <= 2, let prefix = length, (0...maxLength).contains(prefix) else { return nil }
        let (low, high) = address.range(prefixLength: prefix)
        self.init(ipProtocol: ipProtocol, startPort: startPort, endPort: endPort, startAddress: low, endAddress: high)
    }

    public var isIPv6: Bool { startAddress.isIPv6 }

    /// The intersection with another selector, or nil when they do not overlap (used for narrowing).
    public func intersection(_ other: TrafficSelector) -> TrafficSelector? {
        guard isIPv6 == other.isIPv6 else { return nil }
        let proto: UInt8
        if ipProtocol == 0 {
            proto = other.ipProtocol
        } else if other.ipProtocol == 0 || other.ipProtocol == ipProtocol {
            proto = ipProtocol
        } else {
            return nil
        }
        let low = max(startAddress, other.startAddress)
        let high = min(endAddress, other.endAddress)
        let lowPort = max(startPort, other.startPort)
        let highPort = min(endPort, other.endPort)
        guard low <= high, lowPort <= highPort else { return nil }
        return TrafficSelector(ipProtocol: proto, startPort: lowPort, endPort: highPort, startAddress: low, endAddress: high)
    }

    public func contains(_ other: TrafficSelector) -> Bool { intersection(other) == other }

    /// Whether a packet with these addresses, protocol and ports falls under an SA with these source and
    /// destination selectors. For ICMP and ICMPv6, `ports` are the message type and code: selectors carry them
    /// as one 16-bit value, type high (RFC 7296 section 3.13.1), and the value must fall in both sides' ranges,
    /// since peers put it in either selector (strongSwan reads both).
    public static func cover(
        _ sourceSelectors: [TrafficSelector], _ destinationSelectors: [TrafficSelector], source: ArraySlice<UInt8>,
        destination: ArraySlice<UInt8>, ipProtocol: UInt8, ports: (UInt16, UInt16)?
    ) -> Bool {
        var ports = ports
        if let (type, code) = ports, protocolsWithMessageTypes.contains(ipProtocol) {
            ports = (type << 8 | code, type << 8 | code)
        }
        func inRange(_ address: ArraySlice<UInt8>, _ ts: TrafficSelector) -> Bool {
            let low = ts.startAddress.bytes
            let high = ts.endAddress.bytes
            guard low.count == address.count else { return false }
            return !address.lexicographicallyPrecedes(low) && !high.lexicographicallyPrecedes(address)
        }
        func matches(_ selectors: [TrafficSelector], _ address: ArraySlice<UInt8>, _ port: UInt16?) -> Bool {
            selectors.contains { ts in
                inRange(address, ts) && (ts.ipProtocol == 0 || ts.ipProtocol == ipProtocol)
                    && (port.map { ts.startPort <= $0 && $0 <= ts.endPort } ?? (ts.startPort == 0 && ts.endPort == 65535))
            }
        }
        return matches(sourceSelectors, source, ports?.0) && matches(destinationSelectors, destination, ports?.1)
    }

    /// `192.0.2.0/24`, `192.0.2.1/32[tcp/443]`: the text form of TrafficSelectorText.swift.
    public var description: String {
        (prefixLength.map { "\(startAddress)/\($0)" } ?? "\(startAddress)..\(endAddress)") + selectorSuffix
    }

    /// The length of the prefix the address range is, nil when it is none: the addresses agree on their
    /// first bits, then the start has only zeros and the end only ones.
    var prefixLength: Int? {
        let start = startAddress.bytes
        let end = endAddress.bytes
        guard start.count == end.count else { return nil }
        var length = 0
        var inHostPart = false
        for index in start.indices {
            let differing = start[index] ^ end[index]
            if inHostPart {
                guard start[index] == 0, end[index] == 0xff else { return nil }
            } else if differing != 0 {
                // The differing bits must be the octet's lowest ones, zero in the start and one in the end.
                guard differing & (differing &+ 1) == 0, start[index] & differing == 0, end[index] & differing == differing else { return nil }
                length += 8 - differing.nonzeroBitCount
                inHostPart = true
            } else {
                length += 8
            }
        }
        return length
    }

    static func decode(_ reader: inout ByteReader) throws(IKEDecodingError) -> TrafficSelector {
        let type = try reader.readUInt8("ts.type")
        let proto = try reader.readUInt8("ts.protocol")
        let length = Int(try reader.readUInt16("ts.length"))
        let addressLength: Int
        switch type {
        case ipv4RangeType: addressLength = 4
        case ipv6RangeType: addressLength = 16
        default: throw .invalidField(field: "ts.type", value: Int(type))
        }
        guard length == 8 + 2 * addressLength else {
            throw .invalidField(field: "ts.length", value: length)
        }
        var body = try reader.subReader(length - 4, "ts.length")
        let startPort = try body.readUInt16("ts.startPort")
        let endPort = try body.readUInt16("ts.endPort")
        let start = try body.readBytes(addressLength, "ts.startAddress")
        let end = try body.readBytes(addressLength, "ts.endAddress")
        return TrafficSelector(
            ipProtocol: proto, startPort: startPort, endPort: endPort,
            startAddress: IPAddress(bytes: start)!, endAddress: IPAddress(bytes: end)!)
    }

    func encode(into writer: inout ByteWriter) {
        writer.write(isIPv6 ? Self.ipv6RangeType : Self.ipv4RangeType)
        writer.write(ipProtocol)
        writer.write(UInt16(8 + 2 * startAddress.bytes.count))
        writer.write(startPort)
        writer.write(endPort)
        writer.write(bytes: startAddress.bytes)
        writer.write(bytes: endAddress.bytes)
    }
}

/// TSi / TSr payload (section 3.13).
public struct TrafficSelectorPayload: Equatable, Sendable {
    public var selectors: [TrafficSelector]
    public init(selectors: [TrafficSelector]) { self.selectors = selectors }

    static func decode(_ body: ByteReader) throws(IKEDecodingError) -> Self {
        var reader = body
        let count = try reader.readUInt8("ts.count")
        _ = try reader.readBytes(3, "ts.reserved")
        var selectors: [TrafficSelector] = []
        for _ in 0..<count { selectors.append(try TrafficSelector.decode(&reader)) }
        guard reader.isAtEnd else { throw .trailingBytes(field: "ts", count: reader.remaining) }
        return Self(selectors: selectors)
    }

    func encode(into writer: inout ByteWriter) {
        writer.write(UInt8(selectors.count))
        writer.write(bytes: [0, 0, 0])
        for selector in selectors { selector.encode(into: &writer) }
    }
}
