import IKEv2
import Prometheus

/// One metric family of the scrape: its samples as the loop's counters give them.
struct MetricFamily {
    enum Kind: String { case counter, gauge }
    var name: String
    var kind: Kind
    var help: String
    var samples: [(labels: [(String, String)], value: Int)]
}

extension DaemonRunner {
    /// What operators watch, from the counters the loop keeps (pure: the test checks every name and label).
    static func metricFamilies(
        proxy: [String: Int], engine: [String: Int], portCounters: [String: Int], childSAs: Int, ikeSAs: Int,
        storeWrites: (count: Int, microseconds: Int, longest: Int)?, highAvailability: HighAvailabilityRow?
    ) -> [MetricFamily] {
        func one(_ value: Int) -> [(labels: [(String, String)], value: Int)] { [([], value)] }
        var families = [
            MetricFamily(
                name: "ikeproxy_negotiations_started_total", kind: .counter, help: "IKE negotiations the proxy started in a terminal's name.",
                samples: one(proxy["negotiations_started", default: 0])),
            MetricFamily(
                name: "ikeproxy_ike_answered_total", kind: .counter, help: "IKE messages answered in a terminal's name.",
                samples: one(proxy["ike_answered_for_terminal", default: 0])),
            MetricFamily(
                name: "ikeproxy_negotiation_failures_total", kind: .counter, help: "IKE messages dropped or negotiations failed, by reason.",
                samples: (proxy.filter { $0.key.hasPrefix("ike_drop_") }.map { ([("reason", String($0.key.dropFirst(9)))], $0.value) }
                    + engine.map { ([("reason", "engine_\($0.key)")], $0.value) }).sorted { $0.0[0].1 < $1.0[0].1 }),
            MetricFamily(
                name: "ikeproxy_drops_total", kind: .counter, help: "Packets not passed on, by reason.",
                samples: proxy.filter { $0.key.hasPrefix("drop_") }.map { ([("reason", String($0.key.dropFirst(5)))], $0.value) }
                    .sorted { $0.0[0].1 < $1.0[0].1 }),
            MetricFamily(
                name: "ikeproxy_revocation_checks_total", kind: .counter,
                help: "Online revocation checks of peers' certificates (OCSP, fetched CRLs), by outcome.",
                samples: ["good", "revoked", "unavailable"].map { ([("outcome", $0)], engine["revocation_\($0)", default: 0]) }),
            MetricFamily(
                name: "ikeproxy_sa_events_total", kind: .counter,
                help: "IKE and CHILD SAs made, rekeyed, deleted and failed in terminals' names, by event.",
                samples: SAEvent.Kind.allCases.map { ([("event", $0.rawValue)], proxy[$0.rawValue, default: 0]) }),
            MetricFamily(name: "ikeproxy_child_sas", kind: .gauge, help: "CHILD SAs stored for terminals.", samples: one(childSAs)),
            MetricFamily(name: "ikeproxy_ike_sas", kind: .gauge, help: "Established IKE SAs held in terminals' names.", samples: one(ikeSAs)),
            MetricFamily(
                name: "ikeproxy_frames_total", kind: .counter, help: "Frames through the data path, by direction and fate.",
                samples: portCounters.sorted { $0.key < $1.key }.map { ([("kind", $0.key)], $0.value) }),
            MetricFamily(
                name: "ikeproxy_packets_total", kind: .counter, help: "Packets the proxy judged, by outcome.",
                samples: ["bypassed", "forwarded_to_terminal", "forwarded_esp", "forwarded_keepalive"].map {
                    ([("outcome", $0)], proxy[$0, default: 0])
                })
        ]
        if let storeWrites {
            families += [
                MetricFamily(
                    name: "ikeproxy_store_writes_total", kind: .counter,
                    help: "Saves of IKE and CHILD SA changes to the store (one per batch of changes).", samples: one(storeWrites.count)),
                MetricFamily(
                    name: "ikeproxy_store_write_microseconds_total", kind: .counter,
                    help: "Time spent saving SA changes to the store; divided by ikeproxy_store_writes_total, the mean latency.",
                    samples: one(storeWrites.microseconds)),
                MetricFamily(
                    name: "ikeproxy_store_write_microseconds_max", kind: .gauge, help: "The longest save of SA changes since the start.",
                    samples: one(storeWrites.longest))
            ]
        }
        if let row = highAvailability {
            let node = [("node", row.node)]
            families += [
                MetricFamily(
                    name: "ikeproxy_ha_active", kind: .gauge, help: "1 when this daemon of a pair is the active one, 0 when it is the standby.",
                    samples: [(node, row.role == "active" ? 1 : 0)]),
                MetricFamily(
                    name: "ikeproxy_ha_lease_age_milliseconds", kind: .gauge, help: "How long the current holder has held the pair's lease.",
                    samples: [(node, Int((row.leaseAgeSeconds ?? 0) * 1000))]),
                MetricFamily(
                    name: "ikeproxy_ha_takeovers_total", kind: .counter, help: "Times this daemon became the active one.",
                    samples: [(node, row.takeovers)])
            ]
        }
        return families
    }
}

/// The metric families in a swift-prometheus registry, which writes the exposition format: the loop keeps its own
/// totals (plain integers, no locks on the data path), and each scrape brings the registry's counters up to them
/// and sets its gauges.
final class PrometheusExposition {
    let registry = PrometheusCollectorRegistry()
    private var counters: [String: (counter: Counter, reported: Int)] = [:]
    private var gauges: [String: Gauge] = [:]
    /// Distributions an operator wants whole, not as a total: how long the negotiations the proxy started took
    /// (start request to the terminal's CHILD SA), and key delivery's round trip (a message to its acknowledgement).
    let negotiationTime: DurationHistogram
    let keyDeliveryRoundTrip: DurationHistogram

    init() {
        negotiationTime = registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(
                metricName: "ikeproxy_negotiation_seconds", unitName: "",
                helpText: "Time from a start request to the terminal's CHILD SA, of the negotiations the proxy started."),
            labels: [], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10].map { .milliseconds(Int64($0 * 1000)) })
        keyDeliveryRoundTrip = registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(
                metricName: "ikeproxy_key_delivery_round_trip_seconds", unitName: "",
                helpText: "Time from a key-delivery message to the terminal's acknowledgement (retransmissions included)."),
            labels: [], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5].map { .microseconds(Int64($0 * 1_000_000)) })
    }

    /// Seconds measured since the last call, into the histograms.
    func record(negotiations: [Double], keyDeliveryRoundTrips: [Double]) {
        for seconds in negotiations { negotiationTime.record(.nanoseconds(Int64(seconds * 1e9))) }
        for seconds in keyDeliveryRoundTrips { keyDeliveryRoundTrip.record(.nanoseconds(Int64(seconds * 1e9))) }
    }

    private static func descriptor(_ family: MetricFamily) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: family.name, unitName: "", helpText: family.help)
    }

    func render(_ families: [MetricFamily]) -> String {
        for family in families {
            for (labels, value) in family.samples {
                let key = family.name + labels.map { "\u{0}\($0.0)=\($0.1)" }.joined()
                switch family.kind {
                case .counter:
                    let entry = counters[key] ?? (registry.makeCounter(descriptor: Self.descriptor(family), labels: labels), 0)
                    if value < entry.reported {
                        // The loop's total started again (a pair's node made its state anew): so does the counter.
                        entry.counter.reset()
                        entry.counter.increment(by: Int64(value))
                    } else if value > entry.reported {
                        entry.counter.increment(by: Int64(value - entry.reported))
                    }
                    counters[key] = (entry.counter, value)
                case .gauge:
                    let gauge = gauges[key] ?? registry.makeGauge(descriptor: Self.descriptor(family), labels: labels)
                    gauge.set(Double(value))
                    gauges[key] = gauge
                }
            }
        }
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
