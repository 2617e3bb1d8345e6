import Foundation
import Synchronization

/// The time stamp of log lines and events: ISO 8601 in UTC to the second, as `ISO8601DateFormatter` writes it
/// (`2026-12-02T21:01:09Z`). Made once a second and shared by every line of that second: a formatter made
/// per line cost a third of the endpoint's CPU in a burst of negotiations (issue 21).
public final class LogTimestamp: Sendable {
    public static let shared = LogTimestamp()

    private let last = Mutex<(second: Int, text: String)>((Int.min, ""))

    public init() {}

    /// The stamp for `time` (now by default).
    public func string(for time: Date = Date()) -> String {
        let second = Int(time.timeIntervalSince1970.rounded(.down))
        return last.withLock { cached in
            if cached.second != second { cached = (second, Self.format(second)) }
            return cached.text
        }
    }

    /// Seconds since 1970 as `yyyy-MM-ddTHH:mm:ssZ`, by the C library's calendar (gmtime_r).
    static func format(_ second: Int) -> String {
        var seconds = time_t(second)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let year = Int(parts.tm_year) + 1900
        let yearText = String(repeating: "0", count: max(0, 4 - String(year).count)) + String(year)
        return "\(yearText)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
