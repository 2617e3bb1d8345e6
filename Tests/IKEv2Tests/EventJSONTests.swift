import Foundation
import IKEServices
import XCTest

@testable import IKEv2

/// Events and log stamps are written by hand for speed (issue 21): the same bytes as Foundation's
/// JSONSerialization and ISO8601DateFormatter, which wrote them before.
final class EventJSONTests: XCTestCase {
    /// The former renderer, through `[String: Any]` and JSONSerialization: the reference the fast one must match.
    static func reference(_ event: SAEvent, showKeys: Bool, time: Date) -> String {
        var object: [String: Any] = [
            "event": event.kind.rawValue, "connection": event.connection, "ike_spi_i": event.spiInitiator.description,
            "ike_spi_r": event.spiResponder.description, "local": event.local.description, "remote": event.remote.description,
            "time": ISO8601DateFormatter().string(from: time)
        ]
        if let suite = event.ikeSuite {
            var proposal: [String: Any] = [
                "encryption": suite.encryption.name, "integrity": suite.integrity?.name ?? NSNull(), "prf": suite.prf.name,
                "dh_group": suite.group.name, "name": suite.name
            ]
            let additional = suite.additionalKeyExchanges.compactMap(\.method?.name)
            if !additional.isEmpty { proposal["additional_key_exchanges"] = additional }
            object["ike_proposal"] = proposal
        }
        if let detail = event.detail { object[event.kind == .ikeRekeyed ? "replaces" : "reason"] = detail }
        if let ppk = event.ppkIdentity { object["ppk_id"] = ppk }
        if let child = event.child {
            var c: [String: Any] = [
                "name": child.name, "spi_in": child.spiInbound.description, "spi_out": child.spiOutbound.description,
                "encryption": child.suite.encryption.name, "integrity": child.suite.integrity?.name ?? NSNull(),
                "dh_group": child.suite.group?.name ?? NSNull(), "esn": child.suite.extendedSequenceNumbers,
                "mode": child.mode.rawValue, "encapsulation": child.encapsulated ? "udp" : "none",
                "ts_local": child.localTrafficSelectors.map(\.description), "ts_remote": child.remoteTrafficSelectors.map(\.description)
            ]
            let additional = child.suite.keyExchangesToRun.map(\.name)
            if !additional.isEmpty { c["additional_key_exchanges"] = additional }
            if let replaces = child.replaces { c["replaces"] = ["spi_in": replaces.inbound.description, "spi_out": replaces.outbound.description] }
            if showKeys {
                c["keys"] = [
                    "encryption_in": child.keys.encryptionInbound.hexString, "integrity_in": child.keys.integrityInbound.hexString,
                    "encryption_out": child.keys.encryptionOutbound.hexString, "integrity_out": child.keys.integrityOutbound.hexString
                ]
            }
            object["child"] = c
        }
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    /// Every event of real negotiations (established, rekeyed, deleted; AEAD and CBC+HMAC suites, PFS or not), with
    /// keys and without, and with reasons full of characters JSON escapes.
    func testEventsAreTheBytesJSONSerializationWrote() throws {
        var events: [SAEvent] = []
        for (ike, esp) in [("aes256gcm16-prfsha256-x25519", "aes256gcm16"), ("aes256-sha256-modp2048", "aes128-sha256-ecp256")] {
            let pair = try Fixtures.pair(proposal: ike, esp: esp)
            pair.run(pair.initiator.initiate(connection: "c", now: 0), from: "initiator")
            pair.run(pair.initiator.rekeyChild(connection: "c", spi: nil, now: 1), from: "initiator")
            pair.run(pair.initiator.rekeyIKE(connection: "c", now: 2), from: "initiator")
            pair.run(pair.initiator.deleteIKE(connection: "c", now: 3), from: "initiator")
            events += pair.events.map(\.event)
        }
        XCTAssertGreaterThanOrEqual(Set(events.map(\.kind)).count, 5)
        // An IKE SA with two additional key exchanges (RFC 9370) names them.
        var hybrid = events[0]
        hybrid.ikeSuite?.additionalKeyExchanges = [
            AdditionalKeyExchange(number: 1, method: .mlkem768), AdditionalKeyExchange(number: 2, method: nil),
            AdditionalKeyExchange(number: 3, method: .mlkem1024)
        ]
        events.append(hybrid)
        XCTAssertTrue(EventJSON.render(hybrid, showKeys: false).contains(#""additional_key_exchanges":["ML-KEM-768","ML-KEM-1024"]"#))
        // A CHILD SA whose PFS was hybrid (IKE_FOLLOWUP_KE), of an IKE SA with a post-quantum preshared key (RFC 8784).
        var quantumSafe = try XCTUnwrap(events.first { $0.child?.suite.group != nil })
        quantumSafe.child?.suite.additionalKeyExchanges = [AdditionalKeyExchange(number: 1, method: .mlkem768)]
        quantumSafe.ppkIdentity = "site-ppk"
        events.append(quantumSafe)
        let rendered = EventJSON.render(quantumSafe, showKeys: false)
        XCTAssertTrue(rendered.contains(#""child":{"additional_key_exchanges":["ML-KEM-768"],"dh_group":"#), rendered)
        XCTAssertTrue(rendered.contains(#""ppk_id":"site-ppk""#), rendered)
        var odd = events[0]
        odd.connection = "tab\there \"quoted\" back\\slash /slash é ✓ \u{01}\u{1f}\u{7f}\r\n\u{08}\u{0c}"
        odd.detail = "reason: \u{00}\u{10} \\u0041"
        events.append(odd)
        for (index, event) in events.enumerated() {
            for showKeys in [false, true] {
                let time = Date(timeIntervalSince1970: 1_800_000_000 + Double(index) * 3_601.7)
                XCTAssertEqual(
                    EventJSON.render(event, showKeys: showKeys, time: time), Self.reference(event, showKeys: showKeys, time: time),
                    "event \(index) (\(event.kind.rawValue)), keys \(showKeys)")
            }
        }
    }

    func testLogStampIsWhatISO8601DateFormatterWrote() {
        let formatter = ISO8601DateFormatter()
        let random = SeededRandom(seed: 9)
        let stamp = LogTimestamp()
        var times: [Double] = [0, 0.999, 59.5, 951_782_400, 1_800_000_000.25, 4_102_444_799.9, 253_402_300_799]
        for _ in 0..<2_000 { times.append(Double(random.uint64() % 8_000_000_000) / 3.0) }
        for time in times {
            let date = Date(timeIntervalSince1970: time)
            XCTAssertEqual(stamp.string(for: date), formatter.string(from: date), "\(time)")
        }
    }
}
