import CXFRM
import IKEv2

/// One XFRM selector (struct xfrm_selector): what the kernel matches a packet against, as prefixes and
/// port/mask pairs. IKEv2 traffic selectors are address and port *ranges* (RFC 7296 section 3.13.1), so
/// one IKE selector pair can need several kernel selectors: each range is cut into the fewest aligned
/// prefixes and port blocks that cover exactly it. For ICMP and ICMPv6 the kernel keeps the type where
/// a port would be and the code where the other port would be.
public struct KernelSelector: Hashable, Sendable, CustomStringConvertible {
    public var isIPv6: Bool
    public var source: [UInt8]
    public var sourcePrefixLength: UInt8
    public var destination: [UInt8]
    public var destinationPrefixLength: UInt8
    /// 0: any protocol.
    public var ipProtocol: UInt8
    public var sourcePort: UInt16
    public var sourcePortMask: UInt16
    public var destinationPort: UInt16
    public var destinationPortMask: UInt16

    public init(
        isIPv6: Bool, source: [UInt8], sourcePrefixLength: UInt8, destination: [UInt8], destinationPrefixLength: UInt8,
        ipProtocol: UInt8 = 0, sourcePort: UInt16 = 0, sourcePortMask: UInt16 = 0, destinationPort: UInt16 = 0, destinationPortMask: UInt16 = 0
    ) {
        self.isIPv6 = isIPv6
        self.source = source
        self.sourcePrefixLength = sourcePrefixLength
        self.destination = destination
        self.destinationPrefixLength = destinationPrefixLength
        self.ipProtocol = ipProtocol
        self.sourcePort = sourcePort
        self.sourcePortMask = sourcePortMask
        self.destinationPort = destinationPort
        self.destinationPortMask = destinationPortMask
    }

    public var description: String {
        func side(_ address: [UInt8], _ length: UInt8, _ port: UInt16, _ mask: UInt16) -> String {
            let text = "\(IPAddress(bytes: address)?.description ?? "?")/\(length)"
            return mask == 0 ? text : "\(text)[\(port)\(mask == 0xffff ? "" : "/\(String(mask, radix: 16))")]"
        }
        let proto = ipProtocol == 0 ? "" : " proto \(ipProtocol)"
        return side(source, sourcePrefixLength, sourcePort, sourcePortMask) + " -> "
            + side(destination, destinationPrefixLength, destinationPort, destinationPortMask) + proto
    }

    static let icmp: UInt8 = 1
    static let icmpv6: UInt8 = 58

    /// The kernel selectors that together cover exactly the traffic from any of `source` to any of
    /// `destination` (pairs of different families or of two different protocols cover nothing).
    public static func covering(source: [TrafficSelector], destination: [TrafficSelector]) throws(KernelSAError) -> [KernelSelector] {
        var result: [KernelSelector] = []
        for from in source {
            for to in destination where from.startAddress.isIPv6 == to.startAddress.isIPv6 {
                guard from.ipProtocol == 0 || to.ipProtocol == 0 || from.ipProtocol == to.ipProtocol else { continue }
                let ipProtocol = from.ipProtocol != 0 ? from.ipProtocol : to.ipProtocol
                let ports: [(UInt16, UInt16, UInt16, UInt16)]
                if ipProtocol == icmp || ipProtocol == icmpv6 {
                    // Type and code, from whichever side narrows them (RFC 7296 section 3.13.1 puts both in one port).
                    let range = (from.startPort, from.endPort) != (0, 65535) ? (from.startPort, from.endPort) : (to.startPort, to.endPort)
                    ports = icmpBlocks(range.0, range.1)
                } else {
                    let sourceBlocks = portBlocks(from.startPort, from.endPort)
                    let destinationBlocks = portBlocks(to.startPort, to.endPort)
                    ports = sourceBlocks.flatMap { s in destinationBlocks.map { d in (s.0, s.1, d.0, d.1) } }
                }
                for (sourceAddress, sourceLength) in try prefixes(from.startAddress, from.endAddress) {
                    for (destinationAddress, destinationLength) in try prefixes(to.startAddress, to.endAddress) {
                        for (sourcePort, sourceMask, destinationPort, destinationMask) in ports {
                            result.append(
                                KernelSelector(
                                    isIPv6: from.startAddress.isIPv6, source: sourceAddress, sourcePrefixLength: sourceLength,
                                    destination: destinationAddress, destinationPrefixLength: destinationLength, ipProtocol: ipProtocol,
                                    sourcePort: sourcePort, sourcePortMask: sourceMask, destinationPort: destinationPort,
                                    destinationPortMask: destinationMask))
                            if result.count > 64 { throw .tooManyPolicies(result.count) }
                        }
                    }
                }
            }
        }
        guard !result.isEmpty else { throw .selectorsUnusable("no pair of source and destination selectors of one family and protocol") }
        return result
    }

    /// The fewest aligned prefixes whose union is exactly the address range.
    static func prefixes(_ start: IPAddress, _ end: IPAddress) throws(KernelSAError) -> [([UInt8], UInt8)] {
        let width = start.bytes.count * 8
        guard start.bytes.count == end.bytes.count else { throw .selectorsUnusable("range \(start)-\(end) mixes families") }
        var low = number(start.bytes)
        let high = number(end.bytes)
        guard low <= high else { throw .selectorsUnusable("range \(start)-\(end) is empty") }
        var blocks: [([UInt8], UInt8)] = []
        func ones(_ bits: Int) -> UInt128 { bits >= 128 ? .max : (UInt128(1) << bits) - 1 }
        while true {
            // The largest block of 2^size addresses that starts at `low`, is aligned there and stays in the range.
            var size = 0
            while size < width, low & ones(size + 1) == 0, low | ones(size + 1) <= high { size += 1 }
            blocks.append((octets(low, count: start.bytes.count), UInt8(width - size)))
            if blocks.count > 64 { throw .tooManyPolicies(blocks.count) }
            let last = low | ones(size)
            if last >= high { break }
            low = last + 1
        }
        return blocks
    }

    /// The fewest port/mask pairs whose union is exactly the port range; (0, 0) is every port.
    static func portBlocks(_ start: UInt16, _ end: UInt16) -> [(UInt16, UInt16)] {
        if start == 0 && end == 65535 { return [(0, 0)] }
        var blocks: [(UInt16, UInt16)] = []
        var low = UInt32(start)
        let high = UInt32(end)
        while low <= high {
            var size: UInt32 = 0
            while size < 16, low & ((1 << (size + 1)) - 1) == 0, low + (1 << (size + 1)) - 1 <= high { size += 1 }
            blocks.append((UInt16(low), UInt16(truncatingIfNeeded: ~((UInt32(1) << size) - 1))))
            low += 1 << size
        }
        return blocks
    }

    /// ICMP type and code as the kernel keeps them: the type in the source port, the code in the
    /// destination port. A range of types with every code is cut into type blocks; a range of codes
    /// within one type into code blocks.
    static func icmpBlocks(_ start: UInt16, _ end: UInt16) -> [(UInt16, UInt16, UInt16, UInt16)] {
        if start == 0 && end == 65535 { return [(0, 0, 0, 0)] }
        let (firstType, lastType) = (start >> 8, end >> 8)
        if firstType == lastType {
            return portBlocks(start & 0xff, end & 0xff).map { code, mask in
                (firstType, 0xffff, code, (start & 0xff, end & 0xff) == (0, 0xff) ? 0 : mask)
            }
        }
        return portBlocks(firstType, lastType).map { type, mask in (type, mask, 0, 0) }
    }

    private static func number(_ octets: [UInt8]) -> UInt128 { octets.reduce(UInt128(0)) { $0 << 8 | UInt128($1) } }
    private static func octets(_ value: UInt128, count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * (count - 1 - $0))) }
    }

    /// The structure the kernel reads.
    var structure: xfrm_selector {
        var selector = xfrm_selector()
        withUnsafeMutableBytes(of: &selector.daddr) { $0.copyBytes(from: destination) }
        withUnsafeMutableBytes(of: &selector.saddr) { $0.copyBytes(from: source) }
        selector.dport = destinationPort.bigEndian
        selector.dport_mask = destinationPortMask.bigEndian
        selector.sport = sourcePort.bigEndian
        selector.sport_mask = sourcePortMask.bigEndian
        selector.family = UInt16(isIPv6 ? 10 : 2)
        selector.prefixlen_d = destinationPrefixLength
        selector.prefixlen_s = sourcePrefixLength
        selector.proto = ipProtocol
        return selector
    }

    /// A selector the kernel wrote (in an ACQUIRE, say).
    init(structure selector: xfrm_selector) {
        var copy = selector
        isIPv6 = selector.family == 10
        let count = isIPv6 ? 16 : 4
        destination = withUnsafeBytes(of: &copy.daddr) { Array($0.prefix(count)) }
        source = withUnsafeBytes(of: &copy.saddr) { Array($0.prefix(count)) }
        destinationPort = UInt16(bigEndian: selector.dport)
        destinationPortMask = UInt16(bigEndian: selector.dport_mask)
        sourcePort = UInt16(bigEndian: selector.sport)
        sourcePortMask = UInt16(bigEndian: selector.sport_mask)
        destinationPrefixLength = selector.prefixlen_d
        sourcePrefixLength = selector.prefixlen_s
        ipProtocol = selector.proto
    }
}
