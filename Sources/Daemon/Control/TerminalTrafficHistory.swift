/// Each terminal's traffic over the last hour, for the console's chart: octets each way, totalled from the
/// usage its agent reports for every CHILD SA (key-delivery STATUS), sampled at a fixed interval.
///
/// An SA's counters start at zero when it is made and vanish when it goes, so the totals grow only by what
/// each SA (by its inbound SPI) added since the last sample: a rekey neither drops the curve nor counts twice.
struct TerminalTrafficHistory {
    /// One reading of an SA's counters.
    struct Usage {
        var terminal: String
        var spi: UInt32
        var octetsIn: UInt64
        var octetsOut: UInt64
    }

    /// A terminal's running totals at one instant.
    struct Sample: Equatable {
        var at: Double
        var octetsIn: UInt64
        var octetsOut: UInt64
    }

    let interval: Double
    let span: Double
    private var lastSampleAt: Double?
    private var lastBySPI: [UInt32: (octetsIn: UInt64, octetsOut: UInt64)] = [:]
    private var totals: [String: (octetsIn: UInt64, octetsOut: UInt64)] = [:]
    private(set) var samples: [String: [Sample]] = [:]

    init(interval: Double = 10, span: Double = 3_600) {
        self.interval = interval
        self.span = span
    }

    /// The terminals that carried the most octets over the samples kept, most first (ties by address): a
    /// proxy with a thousand terminals shows its busiest, not a thousand charts.
    func busiest(_ limit: Int) -> [String] {
        let carried = samples.map { terminal, list -> (String, UInt64) in
            guard let first = list.first, let last = list.last else { return (terminal, 0) }
            return (terminal, (last.octetsIn &- first.octetsIn) &+ (last.octetsOut &- first.octetsOut))
        }
        return carried.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }.prefix(limit).map(\.0)
    }

    /// Takes a sample when `interval` has passed since the last; `usage` is read only then.
    mutating func record(now: Double, usage: () -> [Usage]) {
        if let lastSampleAt, now - lastSampleAt < interval { return }
        lastSampleAt = now
        var seen: [UInt32: (octetsIn: UInt64, octetsOut: UInt64)] = [:]
        for reading in usage() {
            let before = lastBySPI[reading.spi] ?? (0, 0)
            // A counter that went down belongs to a new SA that reused the SPI: all it counted is new.
            let addedIn = reading.octetsIn >= before.octetsIn ? reading.octetsIn - before.octetsIn : reading.octetsIn
            let addedOut = reading.octetsOut >= before.octetsOut ? reading.octetsOut - before.octetsOut : reading.octetsOut
            let total = totals[reading.terminal] ?? (0, 0)
            totals[reading.terminal] = (total.octetsIn &+ addedIn, total.octetsOut &+ addedOut)
            seen[reading.spi] = (reading.octetsIn, reading.octetsOut)
        }
        lastBySPI = seen
        for (terminal, total) in totals {
            var list = samples[terminal, default: []]
            list.append(Sample(at: now, octetsIn: total.octetsIn, octetsOut: total.octetsOut))
            list.removeAll { now - $0.at > span }
            samples[terminal] = list
        }
    }
}
