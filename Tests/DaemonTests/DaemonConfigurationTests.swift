import Crypto
import Foundation
import IKEv2
import Packets
import Proxy
import Store
import X509
import XCTest
import _CryptoExtras

@testable import Daemon

/// The daemon's configuration: the documented example loads, and every kind of garbage is refused with
/// a message that names the key.
final class DaemonConfigurationTests: XCTestCase {
    static let examplePath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/examples/daemon.json").path

    func testTheDocumentedExampleLoads() throws {
        let configuration = try DaemonConfiguration.load(path: Self.examplePath)
        XCTAssertEqual(configuration.internetInterface, "eth0")
        XCTAssertEqual(configuration.terminalInterface, "eth1")
        XCTAssertEqual(configuration.policy.rules.count, 5)
        XCTAssertEqual(configuration.policy.rules[0].ipProtocol, IPProtocolNumber.icmpv6)
        XCTAssertEqual(configuration.policy.rules[0].sourcePorts, PortRange(133, 137))
        XCTAssertEqual(configuration.policy.rules[3].action, .protect(profile: "peer"))
        XCTAssertEqual(configuration.enrollments[MACAddress(text: "02:00:00:00:d0:02")!]?.terminalID, 1)
        // Terminal 2 is enrolled at both addresses, one channel reached on its IPv4 address.
        XCTAssertEqual(configuration.terminals.map(\.address), [IPAddress("192.0.2.3")!, IPAddress("2001:db8::3")!])
        XCTAssertEqual(Set(configuration.terminals.map(\.keyDeliveryAddress)), [IPAddress("192.0.2.3")!])
        XCTAssertEqual(configuration.proxySettings.keyDeliveryPort, 9500)
        XCTAssertEqual(configuration.profiles[0].ikeRekeyTime, 14400)
        XCTAssertEqual(configuration.profiles[0].livenessInterval, 30)
    }

    /// The documented example, edited.
    func example(_ edit: (inout [String: Any]) -> Void) throws -> Data {
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.examplePath))) as! [String: Any]
        edit(&object)
        return try JSONSerialization.data(withJSONObject: object)
    }

    func refusal(_ edit: (inout [String: Any]) -> Void) throws -> String {
        let data = try example(edit)
        do {
            _ = try DaemonConfiguration.parse(data)
            return "accepted"
        } catch let error as DaemonConfigurationError {
            return error.description
        }
    }

    /// Sets `key` of terminal `index`.
    func terminal(_ index: Int, _ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
        return { object in
            var terminals = object["terminals"] as! [[String: Any]]
            terminals[index][key] = value
            object["terminals"] = terminals
        }
    }

    /// Sets `key` of the first profile.
    func profile(_ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
        return { object in
            var profiles = object["profiles"] as! [[String: Any]]
            profiles[0][key] = value
            object["profiles"] = profiles
        }
    }

    func testAProfileCarriesItsRevocationPolicyIntoTheConnections() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ikp-daemon-revocation-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let ca = directory.appendingPathComponent("ca.pem")
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("profile CA") }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: Date(),
            notValidAfter: Date(timeIntervalSinceNow: 3600), issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256, extensions: Certificate.Extensions(), issuerPrivateKey: .init(key))
        try certificate.serializeAsPEM().pemString.write(to: ca, atomically: true, encoding: .utf8)
        for (value, expected) in [(nil, RevocationPolicy.relaxed), ("ifuri", .ifURI), ("strict", .strict)] {
            let configuration = try DaemonConfiguration.parse(
                try example { object in
                    profile("remote_auth", "pubkey")(&object)
                    profile("ca_certificates", [ca.path])(&object)
                    if let value { profile("revocation", value)(&object) }
                })
            XCTAssertEqual(configuration.profiles[0].peerRevocationPolicy, expected)
            guard
                case .certificate(_, _, let policy) = configuration.profiles[0].connection(
                    terminal: IPAddress("10.2.0.2")!,
                    peer: IPAddress("192.0.2.1")!
                ).remoteAuthentication
            else {
                return XCTFail("the profile's connections do not authenticate the peer by certificate")
            }
            XCTAssertEqual(policy, expected)
        }
    }

    func testVolumeLifetimesReachTheTerminalsSAs() throws {
        let configuration = try DaemonConfiguration.parse(
            try example { object in
                profile("rekey_bytes", 1_000_000_000)(&object)
                profile("life_bytes", 1_100_000_000)(&object)
                profile("rekey_packets", 900_000)(&object)
                profile("life_packets", 1_000_000)(&object)
            })
        let lifetime = configuration.profiles[0].espLifetime
        XCTAssertEqual(
            [lifetime.softBytes, lifetime.hardBytes, lifetime.softPackets, lifetime.hardPackets], [1_000_000_000, 1_100_000_000, 900_000, 1_000_000])
        XCTAssertTrue(
            try refusal { object in
                profile("rekey_bytes", 100)(&object)
                profile("life_bytes", 50)(&object)
            }
            .contains("rekey_bytes 100 must be below life_bytes 50"))
        XCTAssertTrue(try refusal(profile("life_packets", 0)).contains("rekey_packets and life_packets must be above 0"))
    }

    /// A profile's rekeys get a random part (rand_time, ike_rand_time): a tenth of the rekey time by default,
    /// carried into the connections the proxy makes for its terminals.
    func testAProfilesRekeyJitterReachesItsConnections() throws {
        let terminal = IPAddress("10.2.0.2")!
        let peer = IPAddress("192.0.2.1")!
        let defaults = try DaemonConfiguration.parse(
            try example { object in
                profile("rekey_time", 3600)(&object)
                profile("ike_rekey_time", 14400)(&object)
            })
        let connection = defaults.profiles[0].connection(terminal: terminal, peer: peer)
        XCTAssertEqual(connection.rekeyJitter, 1440)
        XCTAssertEqual(connection.children[0].rekeyJitter, 360)
        let given = try DaemonConfiguration.parse(
            try example { object in
                profile("rekey_time", 3600)(&object)
                profile("rand_time", 900)(&object)
                profile("ike_rekey_time", 14400)(&object)
                profile("ike_rand_time", 0)(&object)
            })
        XCTAssertEqual(given.profiles[0].connection(terminal: terminal, peer: peer).rekeyJitter, 0)
        XCTAssertEqual(given.profiles[0].connection(terminal: terminal, peer: peer).children[0].rekeyJitter, 900)
        XCTAssertTrue(
            try refusal { object in
                profile("rekey_time", 60)(&object)
                profile("rand_time", 90)(&object)
            }
            .contains("profiles[0] (peer): rand_time 90.0 is not below rekey_time 60.0"))
        XCTAssertTrue(try refusal(profile("ike_rand_time", -5)).contains("profiles[0] (peer): ike_rand_time -5.0 is negative"))
        XCTAssertTrue(
            try refusal { object in
                profile("rekey_time", 3600)(&object)
                profile("hard_lifetime", 3600)(&object)
            }
            .contains("profiles[0] (peer): rekey_time 3600.0 must be below hard_lifetime 3600, or the SA is deleted before it is replaced"))
    }

    /// `ikeproxy daemon --check` says what the daemon would run with, never a secret.
    func testTheSummarySaysWhatTheDaemonWouldRunWith() throws {
        let configuration = try DaemonConfiguration.load(path: Self.examplePath)
        let summary = configuration.summary
        XCTAssertEqual(summary.first, "interfaces: eth0 (Internet side), eth1 (terminal side)")
        XCTAssertTrue(summary.contains("terminals: 2 (1 by address, 1 by MAC)"), "\(summary)")
        XCTAssertTrue(summary.contains("policy: \(configuration.policy.rules.count) rule(s), default bypass"))
        XCTAssertTrue(summary.contains { $0.hasPrefix("profiles: peer (aes256gcm16-prfsha256-x25519; aes256gcm16 tunnel") }, "\(summary)")
        XCTAssertTrue(summary.contains { $0.hasPrefix("note: secrets in the clear in the file: profile:peer") })
        let psk = String(decoding: configuration.profiles[0].preSharedKey.bytes, as: UTF8.self)
        XCTAssertFalse(summary.joined().contains(psk), "no secret")
    }

    func testSeveralTerminalPortsAreRead() throws {
        let one = try DaemonConfiguration.parse(try example { _ in })
        XCTAssertEqual(one.terminalInterfaces, ["eth1"])
        let three = try DaemonConfiguration.parse(try example { $0["interfaces"] = ["internet": "eth0", "terminal": ["eth1", "eth2", "eth3"]] })
        XCTAssertEqual(three.terminalInterfaces, ["eth1", "eth2", "eth3"])
        XCTAssertEqual(three.terminalInterface, "eth1")
        XCTAssertTrue(try refusal { $0["interfaces"] = ["internet": "eth0", "terminal": ["eth1", "eth1"]] }.contains("'eth1' is named twice"))
        XCTAssertTrue(
            try refusal { $0["interfaces"] = ["internet": "eth0", "terminal": ["eth2", "eth0"]] }
                .contains("interfaces.internet and interfaces.terminal must be two different interfaces"))
        XCTAssertTrue(
            try refusal { $0["interfaces"] = ["internet": "eth0", "terminal": [String]()] }.contains("at least one terminal-side interface"))
    }

    func testTheWaitAfterAFailedNegotiationIsRead() throws {
        XCTAssertEqual(try DaemonConfiguration.parse(try example { _ in }).proxySettings.retryAfterFailure, 10)
        let set = try DaemonConfiguration.parse(try example { $0["settings"] = ["retry_after_failure": 30, "retransmit_limit": 3] })
        XCTAssertEqual(set.proxySettings.retryAfterFailure, 30)
        XCTAssertEqual(set.engineSettings.retransmitLimit, 3)
        XCTAssertEqual(set.proxySettings.maxNegotiationsPerTerminal, 16, "the default")
        let limited = try DaemonConfiguration.parse(try example { $0["settings"] = ["max_negotiations_per_terminal": 4, "max_negotiations": 100] })
        XCTAssertEqual(limited.proxySettings.maxNegotiationsPerTerminal, 4)
        XCTAssertEqual(limited.proxySettings.maxNegotiations, 100)
        XCTAssertTrue(
            try refusal { $0["settings"] = ["max_negotiations_per_terminal": 0] }
                .contains("settings.max_negotiations_per_terminal: 0 is not between 1 and 100000"))
    }

    func testThePortReceiveBufferIsReadAndChecked() throws {
        XCTAssertEqual(try DaemonConfiguration.parse(try example { _ in }).portReceiveBuffer, 8 << 20, "the default")
        XCTAssertEqual(try DaemonConfiguration.parse(try example { $0["settings"] = ["port_receive_buffer": 1 << 24] }).portReceiveBuffer, 1 << 24)
        XCTAssertTrue(
            try refusal { $0["settings"] = ["port_receive_buffer": 1000] }
                .contains("settings.port_receive_buffer: 1000 is not between 65536 and 1073741824 octets"))
    }

    func testTheNumberOfIKEEnginesIsReadAndChecked() throws {
        XCTAssertEqual(try DaemonConfiguration.parse(try example { _ in }).workers, 1, "the default")
        XCTAssertEqual(try DaemonConfiguration.parse(try example { $0["settings"] = ["workers": 2] }).workers, 2)
        for wrong in [0, 65] {
            XCTAssertTrue(
                try refusal { $0["settings"] = ["workers": wrong] }.contains("settings.workers: \(wrong) is not between 1 and 64"))
        }
    }

    func testAChildlessProfileMakesChildlessConnections() throws {
        let plain = try DaemonConfiguration.parse(try example { _ in })
        XCTAssertEqual(plain.profiles[0].connection(terminal: IPAddress("10.2.0.2")!, peer: IPAddress("192.0.2.1")!).childless, .allow)
        let childless = try DaemonConfiguration.parse(try example(profile("childless", "force")))
        XCTAssertEqual(childless.profiles[0].connection(terminal: IPAddress("10.2.0.2")!, peer: IPAddress("192.0.2.1")!).childless, .force)
    }

    func testAReloadTakesTheProfilesCAsAndCRLs() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ikp-daemon-reload-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let ca = directory.appendingPathComponent("ca.pem")
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("reload CA") }
        try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: Date(),
            notValidAfter: Date(timeIntervalSinceNow: 3600), issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: Certificate.Extensions(), issuerPrivateKey: .init(key)
        ).serializeAsPEM().pemString
            .write(to: ca, atomically: true, encoding: .utf8)
        let running = try DaemonConfiguration.parse(try example { _ in })
        let fresh = try DaemonConfiguration.parse(
            try example { object in
                profile("remote_auth", "pubkey")(&object)
                profile("ca_certificates", [ca.path])(&object)
                profile("revocation", "ifuri")(&object)
            })
        let current = Dictionary(uniqueKeysWithValues: running.profiles.map { ($0.name, $0) })
        let (updated, lines) = ProfileReload.apply(fresh: fresh.profiles, to: current)
        let name0 = running.profiles[0].name
        XCTAssertEqual(updated[name0]?.peerTrustAnchors?.count, 1)
        XCTAssertEqual(updated[name0]?.peerRevocationPolicy, .ifURI)
        XCTAssertEqual(updated[name0]?.preSharedKey, running.profiles[0].preSharedKey, "only the certificate material changes")
        XCTAssertEqual(lines.first, "reload: profile '\(name0)': 1 CA certificate(s), 0 CRL(s) revoking 0 certificate(s), revocation ifuri")
        XCTAssertFalse(lines.contains { $0.contains("changed; used from the next negotiation") }, "\(lines)")
        // The next connection made from the profile authenticates the peer by certificate.
        guard case .certificate = updated[name0]!.connection(terminal: IPAddress("10.2.0.2")!, peer: IPAddress("192.0.2.1")!).remoteAuthentication
        else {
            return XCTFail("the reloaded profile does not ask for a certificate")
        }
    }

    /// A reload takes each profile as the file now has it: changed settings are named (never a secret's value),
    /// a new profile is there for the policy, and one gone from the file goes once no rule names it.
    func testAReloadTakesChangedNewAndGoneProfiles() throws {
        func named(_ name: String, psk: String = "k1", ike: String = "aes256gcm16-prfsha256-x25519") -> ProtectionProfile {
            var profile = ProtectionProfile(
                name: name, ikeProposals: [try! ProposalSpec(ike, forIKE: true)],
                espProposals: [try! ProposalSpec("aes256gcm16", forIKE: false)], preSharedKey: KeyMaterial(Array(psk.utf8)))
            profile.childRekeyTime = 3600
            return profile
        }
        var changed = named("peer", psk: "a new pre-shared key", ike: "aes128gcm16-prfsha384-ecp256")
        changed.childRekeyTime = 600
        let current = ["peer": named("peer"), "old": named("old"), "kept": named("kept")]
        let (updated, lines) = ProfileReload.apply(fresh: [changed, named("extra")], to: current)
        XCTAssertEqual(updated["peer"]?.preSharedKey, changed.preSharedKey)
        XCTAssertEqual(updated["peer"]?.childRekeyTime, 600)
        XCTAssertNotNil(updated["extra"], "a new profile the policy may name at once")
        XCTAssertNotNil(updated["old"], "kept until the policy in force is known")
        XCTAssertEqual(
            lines,
            [
                "reload: profile 'extra' is new: the peer proves itself with the pre-shared key; the policy may name it",
                "reload: profile 'peer': the peer proves itself with the pre-shared key",
                "reload: profile 'peer': IKE proposals, pre-shared key, rekey times changed; used from the next negotiation (SAs already made keep what they agreed)"
            ])
        XCTAssertFalse(lines.joined().contains("a new pre-shared key"), "no secret in the log")
        let (kept, goneLines) = ProfileReload.removeUnused(updated, inFile: ["peer", "extra"], namedByPolicy: ["peer", "kept"])
        XCTAssertEqual(Set(kept.keys), ["peer", "extra", "kept"])
        XCTAssertEqual(
            goneLines,
            [
                "reload: profile 'kept' is gone from the file, but the policy in force names it: kept",
                "reload: profile 'old' is gone from the file and no rule names it: removed"
            ])
    }

    /// A terminal certificate renewed in the file replaces the one in use; an unchanged one stays; one gone from
    /// the file is kept until a restart.
    func testAReloadTakesTerminalsRenewedCertificates() throws {
        func credential(_ name: String) throws -> CertificateCredential {
            let key = P256.Signing.PrivateKey()
            let subject = try DistinguishedName { CommonName(name) }
            let pem = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: Date(),
                notValidAfter: Date(timeIntervalSinceNow: 3600), issuer: subject, subject: subject,
                signatureAlgorithm: .ecdsaWithSHA256, extensions: Certificate.Extensions(), issuerPrivateKey: .init(key)
            )
            .serializeAsPEM().pemString
            return try CertificateCredential(certificatePEM: pem, privateKeyPEM: key.pemRepresentation)
        }
        let first = try credential("t1")
        let renewed = try credential("t1 renewed")
        let second = try credential("t2")
        let third = try credential("t3")
        let (updated, lines) = TerminalCredentialReload.apply(fresh: [1: renewed, 2: second, 4: third], to: [1: first, 2: second, 3: third])
        XCTAssertEqual(updated[1]?.chain, renewed.chain, "the renewed certificate signs from now on")
        XCTAssertEqual(updated[2]?.chain, second.chain)
        XCTAssertEqual(updated[3]?.chain, third.chain, "gone from the file: kept until a restart")
        XCTAssertEqual(updated[4]?.chain, third.chain, "a certificate for a terminal that had none")
        XCTAssertEqual(lines.count, 4)
        XCTAssertTrue(
            lines[0].hasPrefix("reload: terminal 1: certificate CN=t1 renewed (serial ")
                && lines[0].hasSuffix("replaces CN=t1 (serial \(first.chain[0].serialNumber)) from the next negotiation"), lines[0])
        XCTAssertTrue(lines[1].hasSuffix(", unchanged"), lines[1])
        XCTAssertTrue(lines[2].hasSuffix(", new"), lines[2])
        XCTAssertEqual(lines[3], "reload: terminal 3's certificate is gone from the file; it keeps the one in use until a restart")
    }

    func rule(_ index: Int, _ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
        return { object in
            var policy = object["policy"] as! [String: Any]
            var rules = policy["rules"] as! [[String: Any]]
            rules[index][key] = value
            policy["rules"] = rules
            object["policy"] = policy
        }
    }

    /// `store.postgresql` instead of `path`: the database a pair of daemons shares, its password in a file of its own.
    func testAPostgreSQLStoreIsReadWithItsPasswordFromAFile() throws {
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.examplePath))) as! [String: Any]
        let passwordFile = NSTemporaryDirectory() + "pg-password-\(UUID().uuidString)"
        try "pa55word\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: passwordFile) }
        object["store"] = [
            "postgresql": ["url": "postgresql://ikeproxy@10.0.9.5/ikeproxy", "password_file": passwordFile], "key_file": "/tmp/unused.key"
        ]
        let configuration = try DaemonConfiguration.parse(try JSONSerialization.data(withJSONObject: object))
        XCTAssertEqual(
            configuration.store?.backend,
            .postgresql(.init(host: "10.0.9.5", port: 5432, username: "ikeproxy", password: "pa55word", database: "ikeproxy")))
        XCTAssertEqual(configuration.store?.location, "postgresql://ikeproxy@10.0.9.5:5432/ikeproxy")
        XCTAssertNil(configuration.highAvailability)
        object["high_availability"] = ["node": "a", "lease_duration": 3]
        let pair = try DaemonConfiguration.parse(try JSONSerialization.data(withJSONObject: object))
        XCTAssertEqual(pair.highAvailability?.node, "a")
        XCTAssertEqual(pair.highAvailability?.timing.leaseDuration, 3)
        XCTAssertEqual(pair.highAvailability?.timing.claimInterval, 0.4, "the default")
        for (section, expected) in [
            (["node": "a b"], "high_availability.node: 'a b' is not a name of 1 to 64 letters"),
            (["node": "a", "lease_duration": 0.1], "high_availability.lease_duration: 0.1 is not between 0.5 and 60 seconds"),
            (["node": "a", "lease_duration": 1, "claim_interval": 0.4, "margin": 0.3], "must fit in lease_duration 1.0 s")
        ] as [([String: Any], String)] {
            object["high_availability"] = section
            XCTAssertThrowsError(try DaemonConfiguration.parse(try JSONSerialization.data(withJSONObject: object))) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
            }
        }
        object["high_availability"] = ["node": "a"]
        object["store"] = ["path": "/tmp/x.db", "key_file": "/k"]
        XCTAssertThrowsError(try DaemonConfiguration.parse(try JSONSerialization.data(withJSONObject: object))) { error in
            XCTAssertTrue(
                "\(error)".contains("high_availability: the pair shares its state and lease in PostgreSQL: it needs store.postgresql"), "\(error)")
        }
    }

    func testSealedSecretsAreOpenedWithTheSealerAndReplaceThePlaceholders() throws {
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.examplePath))) as! [String: Any]
        var profiles = object["profiles"] as! [[String: Any]]
        profiles[0]["psk"] = nil
        profiles[0]["psk_sealed"] = Data("box-of-the-psk-padded-to-thirty-octets".utf8).base64EncodedString()
        object["profiles"] = profiles
        object["store"] = ["path": "/tmp/unused.db", "key_file": "/tmp/unused.key"]
        var configuration = try DaemonConfiguration.parse(try JSONSerialization.data(withJSONObject: object))
        XCTAssertEqual(Array(configuration.sealedSecrets.keys), [.profilePreSharedKey(profile: "peer")])
        XCTAssertEqual(Set(configuration.clearSecrets), [.terminalEnrollmentKey(terminalID: 1), .terminalEnrollmentKey(terminalID: 2)])
        try configuration.unsealSecrets { box, context in
            XCTAssertEqual(context, .profilePreSharedKey(profile: "peer"))
            return Array("the real psk".utf8)
        }
        XCTAssertEqual(configuration.profiles[0].preSharedKey.bytes, Array("the real psk".utf8))
        XCTAssertTrue(configuration.sealedSecrets.isEmpty)
    }

    /// Issue 22: a profile's post-quantum preshared key (RFC 8784), in the clear (said at start) or sealed like the
    /// PSK and opened with the store's sealer; every terminal's connection under the profile carries it.
    func testAProfilesPostQuantumPresharedKeyInTheClearOrSealed() throws {
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.examplePath))) as! [String: Any]
        var profiles = object["profiles"] as! [[String: Any]]
        profiles[0]["ppk_id"] = "site-ppk"
        profiles[0]["ppk_hex"] = String(repeating: "5a", count: 32)
        profiles[0]["ppk_required"] = true
        object["profiles"] = profiles
        let clear = try DaemonConfiguration.parse(try JSONSerialization.data(withJSONObject: object))
        let expected = PostQuantumPresharedKey(
            identity: Array("site-ppk".utf8), key: KeyMaterial([UInt8](repeating: 0x5a, count: 32)), required: true)
        XCTAssertEqual(clear.profiles[0].postQuantumPresharedKey, expected)
        XCTAssertTrue(clear.clearSecrets.contains(.profilePostQuantumPresharedKey(profile: "peer")), "a clear PPK is said at start")
        let connection = clear.profiles[0].connection(terminal: IPAddress("10.0.0.11")!, peer: IPAddress("198.51.100.1")!)
        XCTAssertEqual(connection.postQuantumPresharedKey, expected)

        profiles[0]["ppk_hex"] = nil
        profiles[0]["ppk_sealed"] = Data("box-of-the-ppk-padded-to-thirty-octets".utf8).base64EncodedString()
        object["profiles"] = profiles
        object["store"] = ["path": "/tmp/unused.db", "key_file": "/tmp/unused.key"]
        var sealed = try DaemonConfiguration.parse(try JSONSerialization.data(withJSONObject: object))
        XCTAssertTrue(sealed.sealedSecrets.keys.contains(.profilePostQuantumPresharedKey(profile: "peer")))
        XCTAssertFalse(sealed.clearSecrets.contains(.profilePostQuantumPresharedKey(profile: "peer")))
        XCTAssertEqual(SealingContext(operatorText: "profile-ppk:peer"), .profilePostQuantumPresharedKey(profile: "peer"))
        XCTAssertEqual(SealingContext.profilePostQuantumPresharedKey(profile: "peer").description, "profile-ppk:peer")
        try sealed.unsealSecrets { _, context in
            context == .profilePostQuantumPresharedKey(profile: "peer") ? [UInt8](repeating: 0x5a, count: 32) : Array("the real psk".utf8)
        }
        XCTAssertEqual(sealed.profiles[0].postQuantumPresharedKey, expected)
        // Refused with the reason: a sealed PPK without its ID, or beside a clear one.
        for (edit, message) in [
            ({ (p: inout [String: Any]) in p["ppk_id"] = nil }, "ppk_sealed needs ppk_id"),
            ({ (p: inout [String: Any]) in p["ppk"] = String(repeating: "x", count: 32) }, "ppk_sealed goes without ppk or ppk_hex")
        ] {
            var changed = profiles
            edit(&changed[0])
            object["profiles"] = changed
            XCTAssertThrowsError(try DaemonConfiguration.parse(try JSONSerialization.data(withJSONObject: object))) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }

    func testAnRSAPSSProfileMakesTerminalsRSAKeysSignWithPSS() throws {
        let configuration = try DaemonConfiguration.parse(try example(profile("local_auth", "rsa/pss")))
        let profile = configuration.profiles[0]
        XCTAssertTrue(profile.authenticatesWithTerminalCertificate)
        XCTAssertTrue(profile.signsWithRSAPSS)
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let name = try DistinguishedName { CommonName("terminal") }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: Date(),
            notValidAfter: Date(timeIntervalSinceNow: 3600), issuer: name, subject: name,
            signatureAlgorithm: .sha256WithRSAEncryption, extensions: Certificate.Extensions(), issuerPrivateKey: .init(key))
        let connection = profile.connection(
            terminal: IPAddress("10.0.0.11")!, peer: IPAddress("198.51.100.1")!,
            credential: CertificateCredential(chain: [certificate], key: .rsa(key)))
        guard case .certificate(let credential) = connection.localAuthentication else { return XCTFail("the terminal's certificate is not used") }
        XCTAssertTrue(credential.rsaPSS)
    }

    func testGarbageIsRefusedWithAMessageNamingTheKey() throws {
        // Keys the daemon has no use for are refused, not passed over: an endpoint-only option, a misspelling.
        XCTAssertTrue(try refusal { $0["settings"] = ["cookie_threshold": 16] }.contains("unknown key settings.cookie_threshold"))
        XCTAssertTrue(
            try refusal(terminal(0, "adress", "192.0.2.9")).contains("unknown key terminals[0].adress"))
        XCTAssertTrue(try refusal { $0["interfaces"] = nil }.contains("missing key 'interfaces'"))
        XCTAssertTrue(try refusal { $0["interfaces"] = ["internet": "eth0", "terminal": "eth0"] }.contains("two different interfaces"))
        XCTAssertTrue(try refusal { $0["terminal_prefixes"] = ["10.0.0.0/33"] }.contains("terminal_prefixes: '10.0.0.0/33'"))
        XCTAssertTrue(try refusal(rule(1, "protocol", "tcpp")).contains("policy.rules[1].protocol: 'tcpp'"))
        XCTAssertTrue(try refusal(rule(2, "destination_ports", "23-x")).contains("policy.rules[2].destination_ports"))
        XCTAssertTrue(try refusal(rule(3, "profile", "nosuch")).contains("profile 'nosuch' is not defined"))
        XCTAssertTrue(try refusal(rule(3, "action", "allow")).contains("policy.rules[3].action: 'allow'"))
        XCTAssertTrue(try refusal(rule(1, "destination", "2001:db8::10/128")).contains("same IP version"))
        XCTAssertTrue(
            try refusal(terminal(0, "mac", "02:00:00:00:d0")).contains("terminals[0] (id 1).mac"))
        XCTAssertTrue(
            try refusal(terminal(1, "terminal_id", 1)).contains("terminal_id used twice"))
        XCTAssertTrue(
            try refusal(terminal(0, "enrollment_key_hex", "abc")).contains("enrollment_key_hex"))
        XCTAssertTrue(try refusal(profile("proposals", ["aes999-sha1-modp1"])).contains("profiles[0] (peer): proposals"))
        XCTAssertTrue(try refusal { $0["key_delivery"] = ["source_ipv4": "fe80::1"] }.contains("key_delivery.source_ipv4"))
        XCTAssertTrue(
            try refusal { object in
                var profiles = object["profiles"] as! [[String: Any]]
                profiles[0]["psk"] = nil
                profiles[0]["psk_sealed"] = Data(repeating: 7, count: 48).base64EncodedString()
                object["profiles"] = profiles
            }.contains("need a store with its sealer"))
        XCTAssertTrue(try refusal { $0["store"] = ["path": "/tmp/x.db"] }.contains("exactly one of pkcs11"))
        XCTAssertTrue(
            try refusal { $0["store"] = ["path": "/tmp/x.db", "postgresql": ["url": "postgresql://u@h/d"], "key_file": "/k"] }
                .contains("exactly one of path (a SQLite file of this daemon's own) or postgresql"))
        XCTAssertTrue(try refusal { $0["store"] = ["key_file": "/k"] }.contains("exactly one of path"))
        XCTAssertTrue(
            try refusal { $0["store"] = ["postgresql": ["url": "postgresql://u@h"], "key_file": "/k"] }
                .contains("store.postgresql.url: the URL names no database"))
        XCTAssertTrue(
            try refusal { $0["store"] = ["postgresql": ["url": "postgresql://u@h/d", "ca_file": "/nonexistent/ca.pem"], "key_file": "/k"] }
                .contains("store.postgresql.ca_file: cannot read /nonexistent/ca.pem"))
        XCTAssertTrue(
            try refusal {
                $0["management"] = [
                    "listen": "not-an-address", "certificate": "c", "private_key": "k",
                    "administrators": [["name": "a", "token_sha256": String(repeating: "0", count: 64)]]
                ]
            }
            .contains("management.listen"))
        XCTAssertTrue(
            try refusal {
                $0["management"] = [
                    "listen": "10.99.0.1", "certificate": "c", "private_key": "k",
                    "administrators": [["name": "a", "token_sha256": "abc"]]
                ]
            }
            .contains("token_sha256"))
        XCTAssertTrue(
            try refusal {
                $0["management"] = [
                    "listen": "10.99.0.1", "certificate": "c", "private_key": "k",
                    "administrators": [["name": "a", "role": "root", "token_sha256": String(repeating: "0", count: 64)]]
                ]
            }
            .contains("'admin' or 'reader'"))
        XCTAssertTrue(
            try refusal {
                $0["management"] = [
                    "listen": "10.99.0.1", "certificate": "c", "private_key": "k",
                    "administrators": [["name": "nobody"]]
                ]
            }
            .contains("token_sha256 or certificate_sha256"))
        XCTAssertTrue(
            try refusal {
                $0["management"] = [
                    "listen": "10.99.0.1", "certificate": "c", "private_key": "k",
                    "administrators": [["name": "c", "certificate_sha256": String(repeating: "ab", count: 32)]]
                ]
            }
            .contains("management.client_ca"))
        XCTAssertTrue(
            try refusal {
                $0["management"] = [
                    "listen": "10.99.0.1", "certificate": "c", "private_key": "k", "client_ca": "ca.pem",
                    "administrators": [["name": "c", "certificate_sha256": "00:11"]]
                ]
            }
            .contains("certificate_sha256: 64 hexadecimal digits"))
        XCTAssertTrue(
            try refusal(terminal(0, "private_key", "/tmp/key.pem")).contains("a private key without its certificate"))
        XCTAssertTrue(
            try refusal(terminal(0, "certificate", "/nonexistent/t1.pem")).contains("'/nonexistent/t1.pem' cannot be read"))
        XCTAssertTrue(try refusal(profile("remote_auth", "pubkey")).contains("remote_auth \"pubkey\" needs ca_certificates"))
        XCTAssertTrue(try refusal(profile("local_auth", "eap")).contains("local_auth 'eap' is not psk, pubkey or rsa/pss"))
        XCTAssertTrue(try refusal(profile("revocation", "never")).contains("revocation 'never' is not relaxed, ifuri or strict"))
        XCTAssertTrue(try refusal(profile("revocation", "strict")).contains("revocation applies to peer certificates"))
        XCTAssertTrue(try refusal(profile("liveness_interval", 0)).contains("liveness_interval 0.0 is not between 1 and 31536000 seconds"))
        XCTAssertTrue(try refusal(profile("childless", "sometimes")).contains("childless 'sometimes' is not allow, force or never"))
        XCTAssertTrue(
            try refusal { $0["settings"] = ["retry_after_failure": -1] }.contains(
                "settings.retry_after_failure: -1.0 is not between 0 and 3600 seconds"))
        XCTAssertThrowsError(try DaemonConfiguration.parse(Data("{not json".utf8)))
        XCTAssertThrowsError(try DaemonConfiguration.load(path: "/nonexistent/daemon.json")) { error in
            XCTAssertTrue("\(error)".contains("cannot read configuration file /nonexistent/daemon.json"))
        }
    }
}
