import IKEv2

/// Which way an ESP SA carries traffic, seen from the host that holds it.
public enum ESPDirection: String, Sendable, Codable { case inbound, outbound }

/// UDP encapsulation of ESP (RFC 3948): the ports of the outer UDP header.
public struct UDPEncapsulation: Equatable, Sendable, Codable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public init(sourcePort: UInt16 = 4500, destinationPort: UInt16 = 4500) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }
}

/// Soft and hard limits of an SA (RFC 4301 section 4.4.2.1); nil means no limit of that kind.
public struct ESPLifetime: Equatable, Sendable, Codable {
    public var softBytes: UInt64?
    public var hardBytes: UInt64?
    public var softPackets: UInt64?
    public var hardPackets: UInt64?
    public var softSeconds: UInt32?
    public var hardSeconds: UInt32?
    public init(
        softBytes: UInt64? = nil, hardBytes: UInt64? = nil, softPackets: UInt64? = nil, hardPackets: UInt64? = nil,
        softSeconds: UInt32? = nil, hardSeconds: UInt32? = nil
    ) {
        self.softBytes = softBytes
        self.hardBytes = hardBytes
        self.softPackets = softPackets
        self.hardPackets = hardPackets
        self.softSeconds = softSeconds
        self.hardSeconds = hardSeconds
    }

    /// Why volume limits from a configuration file are not usable.
    public struct VolumeError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Volume lifetimes as configuration files name them (strongSwan's rekey_bytes, life_bytes,
    /// rekey_packets, life_packets): a limit of zero, or a rekey limit not below its life limit, is refused.
    public static func volume(rekeyBytes: UInt64?, lifeBytes: UInt64?, rekeyPackets: UInt64?, lifePackets: UInt64?) throws(VolumeError) -> ESPLifetime
    {
        for (soft, hard, unit) in [(rekeyBytes, lifeBytes, "bytes"), (rekeyPackets, lifePackets, "packets")] {
            if soft == 0 || hard == 0 { throw VolumeError(description: "rekey_\(unit) and life_\(unit) must be above 0") }
            if let soft, let hard, soft >= hard { throw VolumeError(description: "rekey_\(unit) \(soft) must be below life_\(unit) \(hard)") }
        }
        return ESPLifetime(softBytes: rekeyBytes, hardBytes: lifeBytes, softPackets: rekeyPackets, hardPackets: lifePackets)
    }
}

/// Everything a host needs to run one direction of an ESP SA: the SAD entry of RFC 4301 section 4.4.2,
/// as the proxy hands it to a terminal.
public struct SecurityAssociationParameters: Equatable, Sendable {
    public var spi: ChildSPI
    public var direction: ESPDirection
    public var suite: ChildCipherSuite
    public var encryptionKey: KeyMaterial
    public var integrityKey: KeyMaterial
    public var mode: ChildMode
    /// Outer addresses as they appear on the wire for this direction (source, destination).
    public var tunnelSource: IPAddress
    public var tunnelDestination: IPAddress
    public var encapsulation: UDPEncapsulation?
    /// Inner traffic this SA carries: source and destination selectors as seen in this direction.
    public var sourceSelectors: [TrafficSelector]
    public var destinationSelectors: [TrafficSelector]
    public var lifetime: ESPLifetime
    /// Outbound only: the last sequence number already used with these keys. A sender must never reuse
    /// one (RFC 4303 section 3.3.3; with a counter IV a reuse would also repeat an AEAD nonce), so an SA
    /// handed again to a terminal that lost it continues above what was seen.
    public var sequenceStart: UInt64 = 0

    public init(
        spi: ChildSPI, direction: ESPDirection, suite: ChildCipherSuite, encryptionKey: KeyMaterial,
        integrityKey: KeyMaterial, mode: ChildMode, tunnelSource: IPAddress, tunnelDestination: IPAddress,
        encapsulation: UDPEncapsulation?, sourceSelectors: [TrafficSelector], destinationSelectors: [TrafficSelector],
        lifetime: ESPLifetime = ESPLifetime()
    ) {
        self.spi = spi
        self.direction = direction
        self.suite = suite
        self.encryptionKey = encryptionKey
        self.integrityKey = integrityKey
        self.mode = mode
        self.tunnelSource = tunnelSource
        self.tunnelDestination = tunnelDestination
        self.encapsulation = encapsulation
        self.sourceSelectors = sourceSelectors
        self.destinationSelectors = destinationSelectors
        self.lifetime = lifetime
    }

    /// Whether an inner packet with these addresses (still inside the packet, not copied out), protocol and
    /// ports falls under this SA's selectors (`TrafficSelector.cover`).
    public func covers(source: ArraySlice<UInt8>, destination: ArraySlice<UInt8>, ipProtocol: UInt8, ports: (UInt16, UInt16)?) -> Bool {
        TrafficSelector.cover(sourceSelectors, destinationSelectors, source: source, destination: destination, ipProtocol: ipProtocol, ports: ports)
    }

}

/// Packet and byte counts of one SA, which its lifetimes are measured against.
public struct ESPCounters: Equatable, Sendable {
    public var packets: UInt64 = 0
    public var bytes: UInt64 = 0
    public init() {}
}

/// Where an SA stands against its lifetime.
public enum LifetimeState: String, Sendable, Comparable {
    case valid, soft, hard
    public static func < (a: Self, b: Self) -> Bool {
        let order: [Self] = [.valid, .soft, .hard]
        return order.firstIndex(of: a)! < order.firstIndex(of: b)!
    }
}

extension ESPLifetime {
    /// The state after `counters` traffic and `age` seconds.
    public func state(counters: ESPCounters, age: Double) -> LifetimeState {
        if let hardBytes, counters.bytes >= hardBytes { return .hard }
        if let hardPackets, counters.packets >= hardPackets { return .hard }
        if let hardSeconds, age >= Double(hardSeconds) { return .hard }
        if let softBytes, counters.bytes >= softBytes { return .soft }
        if let softPackets, counters.packets >= softPackets { return .soft }
        if let softSeconds, age >= Double(softSeconds) { return .soft }
        return .valid
    }
}
