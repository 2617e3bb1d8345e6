import ConfigurationFiles
import ESP
import Foundation
import IKEv2
import Management
import Packets
import Proxy
import Store
import X509

extension DaemonConfiguration {
    /// One entry of `profiles`: proposals, the pre-shared key (or its sealed box), authentication, lifetimes.
    static func parseProfile(_ p: File.Profile, at: String, secrets: inout SecretsFound) throws -> ProtectionProfile {
        func fail(_ text: String) -> DaemonConfigurationError { DaemonConfigurationError(text) }
        var usesTerminalCertificates = false
        var rsaPSS = false
        var anchors: [Certificate]?
        var revocationLists: [CertificateRevocationList] = []
        var revocation = RevocationPolicy.relaxed
        if case .certificate(let pss) = try SharedConnectionText.localAuthentication(p.local_auth, at: at) {
            // The terminal's certificate: each terminal under the profile needs one.
            usesTerminalCertificates = true
            rsaPSS = pss
        }
        let remote = try SharedConnectionText.remoteAuthentication(
            p.remote_auth, caCertificates: p.ca_certificates, crls: p.crls, revocation: p.revocation, at: at)
        if case .certificate(let trusted, let lists, let policy) = remote {
            anchors = trusted
            revocationLists = lists
            revocation = policy
        }
        let needsPSK = !usesTerminalCertificates || anchors == nil
        let key: [UInt8]
        if let sealed = p.psk_sealed {
            secrets.sealed[.profilePreSharedKey(profile: p.name)] = try sealedBox(sealed, "\(at).psk_sealed")
            key = []
        } else {
            let given = try SharedConnectionText.preSharedKey(text: p.psk, hex: p.psk_hex, at: at)
            guard given != nil || !needsPSK else { throw fail("\(at): psk_sealed, psk or psk_hex is required") }
            key = given?.bytes ?? []
        }
        if p.psk_sealed == nil && !key.isEmpty { secrets.clear.append(.profilePreSharedKey(profile: p.name)) }
        let ike = try SharedConnectionText.ikeProposals(p.proposals, at: at)
        let esp = try SharedConnectionText.espProposals(p.esp_proposals, at: at)
        let mode = try SharedConnectionText.mode(p.mode, at: at)
        var profile = ProtectionProfile(
            name: p.name, ikeProposals: ike, espProposals: esp, preSharedKey: KeyMaterial(key),
            peerIdentity: p.peer_id.map(Identity.init), mode: mode,
            forceEncapsulation: p.force_encapsulation ?? true, hardLifetime: p.hard_lifetime,
            childRekeyTime: p.rekey_time)
        for (key, value) in [("rekey_time", p.rekey_time), ("ike_rekey_time", p.ike_rekey_time), ("liveness_interval", p.liveness_interval)] {
            if let value, !(value >= 1 && value <= 31_536_000) { throw fail("\(at): \(key) \(value) is not between 1 and 31536000 seconds") }
        }
        if let rekey = p.rekey_time, let hard = p.hard_lifetime, rekey >= Double(hard) {
            throw fail("\(at): rekey_time \(rekey) must be below hard_lifetime \(hard), or the SA is deleted before it is replaced")
        }
        profile.ikeRekeyTime = p.ike_rekey_time
        do {
            profile.childRekeyJitter = try RekeyJitter.configured(randTime: p.rand_time, rekeyTime: p.rekey_time)
            profile.ikeRekeyJitter = try RekeyJitter.configured(
                randTime: p.ike_rand_time, rekeyTime: p.ike_rekey_time,
                names: ("ike_rand_time", "ike_rekey_time"))
        } catch { throw fail("\(at): \(error)") }
        profile.livenessInterval = p.liveness_interval
        profile.authenticatesWithTerminalCertificate = usesTerminalCertificates
        profile.signsWithRSAPSS = rsaPSS
        profile.peerTrustAnchors = anchors
        profile.peerRevocationLists = revocationLists
        profile.peerRevocationPolicy = revocation
        do {
            profile.volumeLifetime = try ESPLifetime.volume(
                rekeyBytes: p.rekey_bytes, lifeBytes: p.life_bytes,
                rekeyPackets: p.rekey_packets, lifePackets: p.life_packets)
        } catch { throw fail("\(at): \(error)") }
        if let childless = try SharedConnectionText.childless(p.childless, at: at) { profile.childless = childless }
        if let sealed = p.ppk_sealed {
            // Opened with the store's sealer at start (`unsealSecrets`), as the PSK is; the ID and the choice are plain.
            guard p.ppk == nil, p.ppk_hex == nil else { throw fail("\(at): ppk_sealed goes without ppk or ppk_hex") }
            guard let id = p.ppk_id, !id.isEmpty else { throw fail("\(at): ppk_sealed needs ppk_id, the name both ends know the PPK by") }
            secrets.sealed[.profilePostQuantumPresharedKey(profile: p.name)] = try sealedBox(sealed, "\(at).ppk_sealed")
            profile.postQuantumPresharedKey = PostQuantumPresharedKey(
                identity: Array(id.utf8), key: KeyMaterial([]), required: p.ppk_required ?? false)
        } else {
            profile.postQuantumPresharedKey = try SharedConnectionText.postQuantumPresharedKey(
                id: p.ppk_id, text: p.ppk, hex: p.ppk_hex, required: p.ppk_required, at: at)
            if profile.postQuantumPresharedKey != nil { secrets.clear.append(.profilePostQuantumPresharedKey(profile: p.name)) }
        }
        return profile
    }
}
