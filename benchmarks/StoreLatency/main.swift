import Foundation
import Store

// Time to save one SA change (an IKE SA's sealed state and its CHILD SA, as the daemon writes after an exchange)
// in the SQLite file and in PostgreSQL, side by side in one run, rounds alternated. Usage:
//   store-latency-benchmark POSTGRESQL_URL [CHANGES_PER_ROUND] [ROUNDS]
// benchmarks/store_latency/run.py starts a PostgreSQL server of its own and runs it (release build).
let arguments = CommandLine.arguments
guard arguments.count > 1 else {
    print("usage: store-latency-benchmark POSTGRESQL_URL [CHANGES_PER_ROUND] [ROUNDS]")
    exit(2)
}
let changes = arguments.count > 2 ? Int(arguments[2]) ?? 500 : 500
let rounds = arguments.count > 3 ? Int(arguments[3]) ?? 5 : 5
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ikp-store-latency-\(getpid())")
try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: directory) }

let stores: [(name: String, store: any StateStore)] = [
    ("SQLite (WAL)", try StateDatabase(path: directory.appendingPathComponent("state.db").path)),
    ("PostgreSQL", try PostgreSQLStateStore(settings: .init(url: arguments[1])))
]
// A sealed IKE SA snapshot is about 1.6 kB (seal-benchmark's box).
let sealed = [UInt8](repeating: 0x5a, count: 1600)

/// Microseconds for each of `changes` saves: a new or changed IKE SA with its CHILD SA, in one transaction.
func round(_ store: any StateStore, offset: Int) throws -> [Double] {
    var latencies: [Double] = []
    for index in 0..<changes {
        let spi = String(format: "%016x", offset + index % 64)
        let row = StateDatabase.IKESARow(
            spiInitiator: spi, spiResponder: "00000000000000aa", connection: "terminal-\(index % 64)", terminal: "192.0.2.\(index % 64 + 2)",
            peer: "192.0.2.1", sealedState: sealed, savedAt: Double(index))
        let child = StateDatabase.ChildSARow(
            spiOutbound: String(format: "c%07x", index % 64), spiInbound: String(format: "d%07x", index % 64), terminal: row.terminal,
            peer: row.peer, ikeSPIInitiator: spi, ikeSPIResponder: row.spiResponder, suite: "aes256gcm16", mode: "tunnel",
            createdAt: Double(index))
        let start = DispatchTime.now().uptimeNanoseconds
        try store.saveIKESAs([(row, [child])], removed: [])
        latencies.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
    }
    return latencies
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

print("saving one SA change (IKE SA state of \(sealed.count) octets sealed, and its CHILD SA), \(changes) per round, rounds alternated; µs")
print("round  backend        median      p99      max")
var all: [String: [Double]] = [:]
for number in 1...rounds {
    for (name, store) in (number % 2 == 1 ? stores : stores.reversed()) {
        let latencies = try round(store, offset: number * 1000)
        all[name, default: []] += latencies
        print(
            String(
                format: "%5d  %-12@ %8.0f %8.0f %8.0f", number, name as NSString, percentile(latencies, 0.5), percentile(latencies, 0.99),
                latencies.max() ?? 0))
    }
}
print("all rounds:")
for (name, _) in stores {
    let values = all[name] ?? []
    print(String(format: "       %-12@ %8.0f %8.0f %8.0f", name as NSString, percentile(values, 0.5), percentile(values, 0.99), values.max() ?? 0))
}
let ratio = percentile(all["PostgreSQL"] ?? [1], 0.5) / percentile(all["SQLite (WAL)"] ?? [1], 0.5)
print(String(format: "median PostgreSQL / SQLite: %.2fx", ratio))
