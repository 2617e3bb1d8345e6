import Foundation
import IKEv2

/// Renders SA events as one JSON object per line, the format `ikeproxy endpoint` prints on stdout.
public enum EventJSON {
    public static func render(_ event: SAEvent, showKeys: Bool, time: Date = Date()) -> String {
        var object: [String: JSONText] = [
            "event": .string(event.kind.rawValue),
            "connection": .string(event.connection),
            "ike_spi_i": .string(event.spiInitiator.description),
            "ike_spi_r": .string(event.spiResponder.description),
            "local": .string(event.local.description),
            "remote": .string(event.remote.description),
            "time": .string(LogTimestamp.shared.string(for: time))
        ]
        if let suite = event.ikeSuite {
            object["ike_proposal"] = .object([
                "encryption": .string(suite.encryption.name), "integrity": (suite.integrity?.name).json,
                "prf": .string(suite.prf.name), "dh_group": .string(suite.group.name), "name": .string(suite.name)
            ])
        }
        if let detail = event.detail { object[event.kind == .ikeRekeyed ? "replaces" : "reason"] = .string(detail) }
        if let child = event.child {
            var c: [String: JSONText] = [
                "name": .string(child.name), "spi_in": .string(child.spiInbound.description),
                "spi_out": .string(child.spiOutbound.description),
                "encryption": .string(child.suite.encryption.name), "integrity": (child.suite.integrity?.name).json,
                "dh_group": (child.suite.group?.name).json, "esn": .bool(child.suite.extendedSequenceNumbers),
                "mode": .string(child.mode.rawValue), "encapsulation": .string(child.encapsulated ? "udp" : "none"),
                "ts_local": .array(child.localTrafficSelectors.map { .string($0.description) }),
                "ts_remote": .array(child.remoteTrafficSelectors.map { .string($0.description) })
            ]
            if let replaces = child.replaces {
                c["replaces"] = .object(["spi_in": .string(replaces.inbound.description), "spi_out": .string(replaces.outbound.description)])
            }
            if showKeys {
                c["keys"] = .object([
                    "encryption_in": .string(child.keys.encryptionInbound.hexString),
                    "integrity_in": .string(child.keys.integrityInbound.hexString),
                    "encryption_out": .string(child.keys.encryptionOutbound.hexString),
                    "integrity_out": .string(child.keys.integrityOutbound.hexString)
                ])
            }
            object["child"] = .object(c)
        }
        return JSONText.object(object).rendered
    }
}
