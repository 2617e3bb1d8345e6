/// EtherType values the proxy looks at (IEEE 802.3, IANA).
public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
    public static let vlan: UInt16 = 0x8100
    public static let qinq: UInt16 = 0x88a8
    public static let ipv6: UInt16 = 0x86dd
}

/// A 48-bit MAC address.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public var octets: [UInt8]
    public init(_ octets: [UInt8]) {
        precondition(octets.count == 6)
        self.octets = octets
    }
    public static let broadcast = MACAddress([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    public var isMulticast: Bool { octets[0] & 1 == 1 }
    public var description: String { octets.map { String($0, radix: 16).leftPadded(2) }.joined(separator: ":") }
}

extension MACAddress {
    /// Parses the colon- or dash-separated hexadecimal form.
    public init?(text: String) {
        let parts = text.split(whereSeparator: { $0 == ":" || $0 == "-" })
        guard parts.count == 6 else { return nil }
        var octets: [UInt8] = []
        for part in parts {
            guard part.count <= 2, part.allSatisfy(\.isHexDigit), let value = UInt8(part, radix: 16) else { return nil }
            octets.append(value)
        }
        self.init(octets)
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}

/// Why a frame could not be parsed.
public enum FrameError: Error, Equatable, Sendable {
    case truncated(String)
    case tooManyVLANTags
}

/// A parsed view of an Ethernet II frame (IEEE 802.3) with up to two VLAN tags (802.1Q, 802.1ad):
/// offsets into the caller's buffer, no copies.
public struct EthernetFrameView: Sendable {
    public var destination: MACAddress
    public var source: MACAddress
    /// VLAN IDs, outermost first.
    public var vlanIDs: [UInt16]
    public var etherType: UInt16
    /// Offset of the payload (the IP or ARP packet).
    public var payloadOffset: Int

    public init(_ frame: [UInt8]) throws(FrameError) {
        guard frame.count >= 14 else { throw .truncated("ethernet header") }
        destination = MACAddress(Array(frame[0..<6]))
        source = MACAddress(Array(frame[6..<12]))
        var offset = 12
        var type = UInt16(frame[12]) << 8 | UInt16(frame[13])
        vlanIDs = []
        while type == EtherType.vlan || type == EtherType.qinq {
            guard vlanIDs.count < 2 else { throw .tooManyVLANTags }
            guard frame.count >= offset + 6 else { throw .truncated("vlan tag") }
            vlanIDs.append((UInt16(frame[offset + 2]) << 8 | UInt16(frame[offset + 3])) & 0x0fff)
            offset += 4
            type = UInt16(frame[offset]) << 8 | UInt16(frame[offset + 1])
        }
        etherType = type
        payloadOffset = offset + 2
    }

    /// Builds a frame header (with `vlanIDs` as 802.1Q tags, outermost first) followed by `payload`.
    public static func build(
        destination: MACAddress, source: MACAddress, vlanIDs: [UInt16] = [], etherType: UInt16,
        payload: [UInt8]
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(14 + 4 * vlanIDs.count + payload.count)
        out.append(contentsOf: destination.octets)
        out.append(contentsOf: source.octets)
        for (index, id) in vlanIDs.enumerated() {
            out.appendBigEndian(index == 0 && vlanIDs.count > 1 ? EtherType.qinq : EtherType.vlan)
            out.appendBigEndian(id & 0x0fff)
        }
        out.appendBigEndian(etherType)
        out.append(contentsOf: payload)
        return out
    }
}

/// An ARP packet for IPv4 over Ethernet (RFC 826).
public struct ARPPacket: Equatable, Sendable {
    public enum Operation: UInt16, Sendable {
        case request = 1
        case reply = 2
    }
    public var operation: Operation
    public var senderMAC: MACAddress
    public var senderIP: [UInt8]
    public var targetMAC: MACAddress
    public var targetIP: [UInt8]

    public init(operation: Operation, senderMAC: MACAddress, senderIP: [UInt8], targetMAC: MACAddress, targetIP: [UInt8]) {
        self.operation = operation
        self.senderMAC = senderMAC
        self.senderIP = senderIP
        self.targetMAC = targetMAC
        self.targetIP = targetIP
    }

    public init(_ bytes: ArraySlice<UInt8>) throws(FrameError) {
        let s = bytes.startIndex
        guard bytes.count >= 28 else { throw .truncated("arp") }
        guard bytes[s] == 0, bytes[s + 1] == 1, bytes[s + 2] == 0x08, bytes[s + 3] == 0, bytes[s + 4] == 6, bytes[s + 5] == 4,
            let op = Operation(rawValue: UInt16(bytes[s + 6]) << 8 | UInt16(bytes[s + 7]))
        else { throw .truncated("arp header") }
        operation = op
        senderMAC = MACAddress(Array(bytes[(s + 8)..<(s + 14)]))
        senderIP = Array(bytes[(s + 14)..<(s + 18)])
        targetMAC = MACAddress(Array(bytes[(s + 18)..<(s + 24)]))
        targetIP = Array(bytes[(s + 24)..<(s + 28)])
    }

    public func encode() -> [UInt8] {
        var out: [UInt8] = [0, 1, 0x08, 0, 6, 4]
        out.appendBigEndian(operation.rawValue)
        out += senderMAC.octets + senderIP + targetMAC.octets + targetIP
        return out
    }
}
