import Foundation
import IKEv2

/// Renders SA events as one JSON object per line, the format `ikeproxy endpoint` prints on stdout.
public enum EventJSON {
    public static func render(_ event: SAEvent, showKeys: Bool, time: Date = Date()) -> String {
        var object: [String: Any] = [
            "event": event.kind.rawValue,
            "connection": event.connection,
            "ike_spi_i": event.spiInitiator.description,
            "ike_spi_r": event.spiResponder.description,
            "local": event.local.description,
            "remote": event.remote.description,
            "time": ISO8601DateFormatter().string(from: time)
        ]
        if let suite = event.ikeSuite {
            object["ike_proposal"] =
                [
                    "encryption": suite.encryption.name, "integrity": suite.integrity?.name ?? NSNull(),
                    "prf": suite.prf.name, "dh_group": suite.group.name, "name": suite.name
                ] as [String: Any]
        }
        if let detail = event.detail { object[event.kind == .ikeRekeyed ? "replaces" : "reason"] = detail }
        if let child = event.child {
            var c: [String: Any] = [
                "name": child.name, "spi_in": child.spiInbound.description, "spi_out": child.spiOutbound.description,
                "encryption": child.suite.encryption.name, "integrity": child.suite.integrity?.name ?? NSNull(),
                "dh_group": child.suite.group?.name ?? NSNull(), "esn": child.suite.extendedSequenceNumbers,
                "mode": child.mode.rawValue, "encapsulation": child.encapsulated ? "udp" : "none",
                "ts_local": child.localTrafficSelectors.map(\.description), "ts_remote": child.remoteTrafficSelectors.map(\.description)
            ]
            if let replaces = child.replaces {
                c["replaces"] = ["spi_in": replaces.inbound.description, "spi_out": replaces.outbound.description]
            }
            if showKeys {
                c["keys"] = [
                    "encryption_in": child.keys.encryptionInbound.hexString, "integrity_in": child.keys.integrityInbound.hexString,
                    "encryption_out": child.keys.encryptionOutbound.hexString, "integrity_out": child.keys.integrityOutbound.hexString
                ]
            }
            object["child"] = c
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
