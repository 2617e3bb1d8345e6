import IKEv2
import XCTest

@testable import Daemon

/// The scrape rendered by swift-prometheus has exactly the metric names, labels, types and values the daemon's
/// hand-written exposition had (kept here as the reference), and counters follow the loop's totals.
final class MetricsExpositionTests: XCTestCase {
    let proxy = [
        "negotiations_started": 4, "ike_answered_for_terminal": 12, "ike_drop_malformed": 2, "drop_policy_discard": 7,
        "drop_esp_of_unknown_sa": 1, "child_sa_established": 3, "ike_sa_rekeyed": 1, "bypassed": 9, "forwarded_esp": 40
    ]
    let engine = ["retransmissions": 5, "revocation_good": 2]
    let ports = ["frames_in_internet": 100, "frames_forwarded_to_terminal": 90]
    let pair = HighAvailabilityRow(node: "a", role: "active", leaseHolder: "a", leaseAgeSeconds: 12.5, fencing: 3, takeovers: 2)

    func families(proxy: [String: Int]) -> [MetricFamily] {
        DaemonRunner.metricFamilies(
            proxy: proxy, engine: engine, portCounters: ports, childSAs: 3, ikeSAs: 2, storeWrites: (10, 12_000, 3_000), highAvailability: pair)
    }

    /// The exposition as the daemon wrote it by hand before swift-prometheus (the reference).
    func handWritten(proxy: [String: Int]) -> String {
        var lines: [String] = []
        func family(_ name: String, _ type: String, _ samples: [(String, Int)]) {
            lines.append("# TYPE \(name) \(type)")
            for (labels, value) in samples { lines.append("\(name)\(labels) \(value)") }
        }
        family("ikeproxy_negotiations_started_total", "counter", [("", proxy["negotiations_started", default: 0])])
        family("ikeproxy_ike_answered_total", "counter", [("", proxy["ike_answered_for_terminal", default: 0])])
        family(
            "ikeproxy_negotiation_failures_total", "counter",
            proxy.filter { $0.key.hasPrefix("ike_drop_") }.map { ("{reason=\"\($0.key.dropFirst(9))\"}", $0.value) }
                + engine.map { ("{reason=\"engine_\($0.key)\"}", $0.value) })
        family(
            "ikeproxy_drops_total", "counter", proxy.filter { $0.key.hasPrefix("drop_") }.map { ("{reason=\"\($0.key.dropFirst(5))\"}", $0.value) })
        family(
            "ikeproxy_revocation_checks_total", "counter",
            ["good", "revoked", "unavailable"].map { ("{outcome=\"\($0)\"}", engine["revocation_\($0)", default: 0]) })
        family("ikeproxy_sa_events_total", "counter", SAEvent.Kind.allCases.map { ("{event=\"\($0.rawValue)\"}", proxy[$0.rawValue, default: 0]) })
        family("ikeproxy_child_sas", "gauge", [("", 3)])
        family("ikeproxy_ike_sas", "gauge", [("", 2)])
        family("ikeproxy_frames_total", "counter", ports.map { ("{kind=\"\($0.key)\"}", $0.value) })
        family(
            "ikeproxy_packets_total", "counter",
            ["bypassed", "forwarded_to_terminal", "forwarded_esp", "forwarded_keepalive"].map { ("{outcome=\"\($0)\"}", proxy[$0, default: 0]) })
        family("ikeproxy_store_writes_total", "counter", [("", 10)])
        family("ikeproxy_store_write_microseconds_total", "counter", [("", 12_000)])
        family("ikeproxy_store_write_microseconds_max", "gauge", [("", 3_000)])
        family("ikeproxy_ha_active", "gauge", [("{node=\"a\"}", 1)])
        family("ikeproxy_ha_lease_age_milliseconds", "gauge", [("{node=\"a\"}", 12_500)])
        family("ikeproxy_ha_takeovers_total", "counter", [("{node=\"a\"}", 2)])
        return lines.joined(separator: "\n")
    }

    /// Each sample as "name{labels}" with its value, and each name's type, read from exposition text.
    func parse(_ text: String) -> (samples: [String: Double], types: [String: String]) {
        var samples: [String: Double] = [:]
        var types: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if line.hasPrefix("# TYPE "), fields.count == 4 {
                types[String(fields[2])] = String(fields[3])
            } else if !line.hasPrefix("#"), fields.count == 2 {
                // Labels in a fixed order, whatever order the renderer writes them in.
                let sample = String(fields[0])
                let name = sample.prefix { $0 != "{" }
                let labels = sample.dropFirst(name.count).trimmingCharacters(in: CharacterSet(charactersIn: "{}")).split(separator: ",").sorted()
                samples[name + (labels.isEmpty ? "" : "{" + labels.joined(separator: ",") + "}")] = Double(fields[1])
            }
        }
        return (samples, types)
    }

    func testTheScrapeHasTheNamesLabelsTypesAndValuesOfTheHandWrittenOne() {
        let rendered = PrometheusExposition().render(families(proxy: proxy))
        let before = parse(handWritten(proxy: proxy))
        var after = parse(rendered)
        // New with swift-prometheus: the two histograms, which the hand-written exposition did not have.
        let histograms = ["ikeproxy_negotiation_seconds", "ikeproxy_key_delivery_round_trip_seconds"]
        for name in histograms { XCTAssertEqual(after.types.removeValue(forKey: name), "histogram") }
        after.samples = after.samples.filter { sample, _ in !histograms.contains { sample.hasPrefix($0 + "_") } }
        XCTAssertEqual(after.samples, before.samples)
        XCTAssertEqual(
            after.types, before.types.filter { name, _ in before.samples.keys.contains { $0 == name || $0.hasPrefix(name + "{") } },
            "every name with samples keeps its type (a family with none has no lines at all now)")
        XCTAssertTrue(rendered.contains("# HELP ikeproxy_drops_total Packets not passed on, by reason."), "help texts come from the registry")
        XCTAssertGreaterThan(after.samples.count, 30)
    }

    func testCountersFollowTheLoopsTotalsAcrossScrapesAndARestart() {
        let exposition = PrometheusExposition()
        _ = exposition.render(families(proxy: proxy))
        var more = proxy
        more["negotiations_started"] = 9
        XCTAssertEqual(parse(exposition.render(families(proxy: more))).samples["ikeproxy_negotiations_started_total"], 9)
        more["negotiations_started"] = 2  // the loop's state made anew (a pair's takeover)
        XCTAssertEqual(parse(exposition.render(families(proxy: more))).samples["ikeproxy_negotiations_started_total"], 2)
    }

    func testNegotiationTimesAndKeyDeliveryRoundTripsAreHistograms() {
        let exposition = PrometheusExposition()
        exposition.record(negotiations: [0.03, 0.2, 3], keyDeliveryRoundTrips: [0.002])
        let samples = parse(exposition.render([])).samples
        XCTAssertEqual(samples["ikeproxy_negotiation_seconds_count"], 3)
        XCTAssertEqual(samples["ikeproxy_negotiation_seconds_sum"] ?? 0, 3.23, accuracy: 1e-6)
        XCTAssertEqual(samples["ikeproxy_negotiation_seconds_bucket{le=\"0.05\"}"], 1, "\(samples.keys.sorted())")
        XCTAssertEqual(samples["ikeproxy_negotiation_seconds_bucket{le=\"0.25\"}"], 2)
        XCTAssertEqual(samples["ikeproxy_negotiation_seconds_bucket{le=\"+Inf\"}"], 3)
        XCTAssertEqual(samples["ikeproxy_key_delivery_round_trip_seconds_bucket{le=\"0.0025\"}"], 1)
    }
}
