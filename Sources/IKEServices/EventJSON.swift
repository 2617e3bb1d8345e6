import Foundation
import IKEv2

/// Renders SA events as one JSON object per line, the format `ikeproxy endpoint` prints on stdout.
public enum EventJSON {
    /// Written member by member with the keys in sorted order (`JSONObjectWriter`): the bytes of the same
    /// event as a `JSONText.object`, without building and sorting its dictionaries (7% of the endpoint's CPU
    /// in a burst of negotiations went to that).
    public static func render(_ event: SAEvent, showKeys: Bool, time: Date = Date()) -> String {
        var text = ""
        text.reserveCapacity(showKeys ? 1024 : 640)
        var top = JSONObjectWriter(into: &text)
        if let child = event.child {
            top.object("child", into: &text) { c, text in
                // RFC 9370: the additional key exchanges of its CREATE_CHILD_SA (the key is left out without them).
                let additional = child.suite.keyExchangesToRun.map(\.name)
                if !additional.isEmpty { c.strings("additional_key_exchanges", additional, into: &text) }
                c.string("dh_group", child.suite.group?.name, into: &text)
                c.string("encapsulation", child.encapsulated ? "udp" : "none", into: &text)
                c.string("encryption", child.suite.encryption.name, into: &text)
                c.bool("esn", child.suite.extendedSequenceNumbers, into: &text)
                c.string("integrity", child.suite.integrity?.name, into: &text)
                if showKeys {
                    c.object("keys", into: &text) { k, text in
                        k.string("encryption_in", child.keys.encryptionInbound.hexString, into: &text)
                        k.string("encryption_out", child.keys.encryptionOutbound.hexString, into: &text)
                        k.string("integrity_in", child.keys.integrityInbound.hexString, into: &text)
                        k.string("integrity_out", child.keys.integrityOutbound.hexString, into: &text)
                    }
                }
                c.string("mode", child.mode.rawValue, into: &text)
                c.string("name", child.name, into: &text)
                if let replaces = child.replaces {
                    c.object("replaces", into: &text) { r, text in
                        r.string("spi_in", replaces.inbound.description, into: &text)
                        r.string("spi_out", replaces.outbound.description, into: &text)
                    }
                }
                c.string("spi_in", child.spiInbound.description, into: &text)
                c.string("spi_out", child.spiOutbound.description, into: &text)
                c.strings("ts_local", child.localTrafficSelectors.map(\.description), into: &text)
                c.strings("ts_remote", child.remoteTrafficSelectors.map(\.description), into: &text)
            }
        }
        top.string("connection", event.connection, into: &text)
        top.string("event", event.kind.rawValue, into: &text)
        if let suite = event.ikeSuite {
            top.object("ike_proposal", into: &text) { p, text in
                // RFC 9370: the additional key exchanges run, in order (the key is left out without them).
                let additional = suite.additionalKeyExchanges.compactMap(\.method?.name)
                if !additional.isEmpty { p.strings("additional_key_exchanges", additional, into: &text) }
                p.string("dh_group", suite.group.name, into: &text)
                p.string("encryption", suite.encryption.name, into: &text)
                p.string("integrity", suite.integrity?.name, into: &text)
                p.string("name", suite.name, into: &text)
                p.string("prf", suite.prf.name, into: &text)
            }
        }
        top.string("ike_spi_i", event.spiInitiator.description, into: &text)
        top.string("ike_spi_r", event.spiResponder.description, into: &text)
        top.string("local", event.local.description, into: &text)
        // RFC 8784: which post-quantum preshared key is in the IKE SA's keys (left out without one).
        if let ppk = event.ppkIdentity { top.string("ppk_id", ppk, into: &text) }
        // The detail's key sorts before "remote" ("reason") or after it ("replaces").
        let detailKey = event.kind == .ikeRekeyed ? "replaces" : "reason"
        if let detail = event.detail, detailKey < "remote" { top.string(detailKey, detail, into: &text) }
        top.string("remote", event.remote.description, into: &text)
        if let detail = event.detail, detailKey > "remote" { top.string(detailKey, detail, into: &text) }
        top.string("time", LogTimestamp.shared.string(for: time), into: &text)
        top.close(into: &text)
        return text
    }
}
