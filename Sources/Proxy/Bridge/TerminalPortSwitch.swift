/// Where frames go when the proxy has several terminal-side ports: a learning switch (IEEE 802.1Q
/// filtering database) in front of the bridge's judgment. Each station's MAC address is learnt from the
/// source of the frames it sends, on the port they came in by (or on the Internet side); an entry ages
/// out after five minutes without a frame, and moves when the station shows up elsewhere.
///
/// A frame between two terminal-side segments is switched there unchanged, as a switch between them
/// would: the policy judges what crosses to the Internet, not what terminals send each other. A frame
/// for a station on no known port (broadcast, multicast, not yet learnt) is flooded to the other
/// terminal ports and judged for the Internet side too. With a single terminal port none of this runs.
public struct TerminalPortSwitch: Sendable {
    /// Where a station was last seen.
    public enum Location: Equatable, Sendable {
        case internet
        case terminal(Int)
    }

    /// What to do with a frame that came in on terminal port `ingress`.
    public enum TerminalFrame: Equatable, Sendable {
        /// Its destination sits behind this other terminal port: switch it there, unjudged.
        case switchTo(Int)
        /// Its destination sits on the segment it came from: nothing to do (a switch there delivered it).
        case sameSegment
        /// For the Internet side (judged), and flooded unchanged to these other terminal ports.
        case judgeAndFlood([Int])
    }

    public let portCount: Int
    public let agingTime: Double
    /// At most this many stations are learnt: a host sending from ever new source addresses (MAC
    /// flooding) fills the table, not the memory; stations beyond it are flooded to, as a full switch does.
    public let capacity: Int
    /// Stations not learnt because the table was full.
    public private(set) var refusedStations = 0
    private var lastAgedWhenFull = -Double.infinity
    /// The proxy's own terminal-side MAC addresses (key delivery): frames to them are judged, never flooded.
    public var ownAddresses: Set<UInt64> = []
    private var table: [UInt64: (location: Location, seen: Double)] = [:]

    public init(portCount: Int, agingTime: Double = 300, capacity: Int = 8192) {
        self.portCount = portCount
        self.agingTime = agingTime
        self.capacity = capacity
    }

    /// A MAC address as a number (six octets from `offset`), the table's key.
    public static func key<C: Collection>(_ octets: C, at offset: C.Index) -> UInt64 where C.Element == UInt8 {
        var value: UInt64 = 0
        var index = offset
        for _ in 0..<6 {
            value = value << 8 | UInt64(octets[index])
            index = octets.index(after: index)
        }
        return value
    }

    static func isMulticast(_ key: UInt64) -> Bool { key & (1 << 40) != 0 }

    public var stationCount: Int { table.count }

    /// Learns the source of a frame that came in at `location`; group addresses are never learnt.
    public mutating func learn(source: UInt64, at location: Location, now: Double) {
        guard !Self.isMulticast(source) else { return }
        if table[source] == nil && table.count >= capacity {
            // Full: make room from stations gone silent (at most once a second, the sweep costs the whole
            // table), else leave this one unlearnt.
            if now - lastAgedWhenFull >= 1 {
                age(now: now)
                lastAgedWhenFull = now
            }
            guard table.count < capacity else {
                refusedStations += 1
                return
            }
        }
        table[source] = (location, now)
    }

    public func location(of destination: UInt64, now: Double) -> Location? {
        guard !Self.isMulticast(destination), let entry = table[destination], now - entry.seen <= agingTime else { return nil }
        return entry.location
    }

    /// A frame received on terminal port `ingress`, its source already learnt.
    public func fromTerminal(ingress: Int, destination: UInt64, now: Double) -> TerminalFrame {
        if ownAddresses.contains(destination) { return .judgeAndFlood([]) }
        switch location(of: destination, now: now) {
        case .terminal(let port) where port == ingress: return .sameSegment
        case .terminal(let port): return .switchTo(port)
        case .internet: return .judgeAndFlood([])
        case nil: return .judgeAndFlood((0..<portCount).filter { $0 != ingress })
        }
    }

    /// The terminal ports a frame for `destination` leaves by, when the bridge sends it to the terminal
    /// side: the station's port, or all of them for a group address or a station not learnt. None for a
    /// station known to be on the Internet side.
    public func terminalPorts(for destination: UInt64, now: Double) -> [Int] {
        switch location(of: destination, now: now) {
        case .terminal(let port): return [port]
        case .internet: return []
        case nil: return Array(0..<portCount)
        }
    }

    /// Forgets stations not heard from for `agingTime`.
    public mutating func age(now: Double) {
        table = table.filter { now - $0.value.seen <= agingTime }
    }
}
