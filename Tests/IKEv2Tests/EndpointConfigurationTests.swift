import Crypto
import Foundation
import IKEEndpoint
import X509
import XCTest
import _CryptoExtras

@testable import IKEv2

/// The documented examples load, and garbage is refused with a message that names the problem.
final class EndpointConfigurationTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A proposal printed back reads as the same proposal (the management API lists profiles this way).
    func testProposalsPrintInStrongSwansNotation() throws {
        for (text, forIKE) in [
            ("aes256gcm16-prfsha256-x25519", true), ("aes128gcm16-prfsha384-ecp256", true),
            ("chacha20poly1305-prfsha512-ecp384", true), ("aes256gcm16", false), ("aes128-sha256-esn", false),
            ("aes256gcm16-x25519", false), ("aes128gcm16-aes256gcm16-prfsha256-prfsha384-ecp256-x25519", true)
        ] {
            let spec = try ProposalSpec(text, forIKE: forIKE)
            XCTAssertEqual(spec.text, text)
            XCTAssertEqual(try ProposalSpec(spec.text, forIKE: forIKE), spec)
        }
        // The PRF strongSwan takes from the integrity algorithm is printed, so nothing is left implied.
        XCTAssertEqual(try ProposalSpec("aes256-sha256-modp2048", forIKE: true).text, "aes256-sha256-prfsha256-modp2048")
    }

    func testDocumentedExamplesLoad() throws {
        let initiator = try EndpointConfigurationFile.load(path: root.appendingPathComponent("docs/examples/endpoint-initiator.json").path)
        XCTAssertEqual(initiator.connections.first?.children.first?.rekeyTime, 3600)
        XCTAssertEqual(initiator.connections.first?.children.first?.rekeyJitter, 300)
        XCTAssertEqual(initiator.connections.first?.rekeyJitter, 1440, "a tenth of rekey_time 14400 when rand_time is not given")
        XCTAssertEqual(initiator.connections.first?.proposals.count, 2)
        let responder = try EndpointConfigurationFile.load(path: root.appendingPathComponent("docs/examples/endpoint-responder.json").path)
        XCTAssertNil(responder.connections.first?.remoteAddress)
        XCTAssertEqual(responder.connections.first?.localIdentity.payload.type, .fqdn)
        XCTAssertEqual(responder.connections.first?.children.first?.mode, .transport)
        let forTerminalPath = root.appendingPathComponent("docs/examples/endpoint-for-terminal.json").path
        _ = try EndpointConfigurationFile.load(path: forTerminalPath)
        let (targets, transparent) = try KeyDeliveryTarget.load(data: try Data(contentsOf: URL(fileURLWithPath: forTerminalPath)))
        XCTAssertTrue(transparent)
        XCTAssertEqual(targets["t7"]?.terminalID, 7)
        XCTAssertEqual(targets["t7"]?.port, 9500)
    }

    func testATerminalSectionCarriesVolumeLifetimes() throws {
        let text =
            #"{"connections": [{"name": "x", "terminal": {"terminal_id": 1, "enrollment_key_hex": "00112233445566778899aabbccddeeff", "address": "10.0.0.2", "source": "169.254.0.1", "hard_lifetime": 3600, "rekey_bytes": 1000, "life_bytes": 2000, "rekey_packets": 10, "life_packets": 20}}]}"#
        let lifetime = try XCTUnwrap(KeyDeliveryTarget.load(data: Data(text.utf8)).targets["x"]?.lifetime)
        XCTAssertEqual([lifetime.softBytes, lifetime.hardBytes, lifetime.softPackets, lifetime.hardPackets], [1000, 2000, 10, 20])
        XCTAssertEqual(lifetime.hardSeconds, 3600)
        let inverted = text.replacingOccurrences(of: #""rekey_bytes": 1000"#, with: #""rekey_bytes": 3000"#)
        XCTAssertThrowsError(try KeyDeliveryTarget.load(data: Data(inverted.utf8))) {
            XCTAssertTrue("\($0)".contains("rekey_bytes 3000 must be below life_bytes 2000"), "\($0)")
        }
    }

    func testBadTerminalSectionIsRefusedWithAClearMessage() {
        let text =
            #"{"connections": [{"name": "x", "terminal": {"terminal_id": 1, "enrollment_key_hex": "0011", "address": "10.0.0.2", "source": "169.254.0.1"}}]}"#
        XCTAssertThrowsError(try KeyDeliveryTarget.load(data: Data(text.utf8))) { XCTAssertTrue("\($0)".contains("enrollment_key_hex"), "\($0)") }
        let family =
            #"{"connections": [{"name": "x", "terminal": {"terminal_id": 1, "enrollment_key_hex": "00112233445566778899aabbccddeeff", "address": "10.0.0.2", "source": "fe80::1"}}]}"#
        XCTAssertThrowsError(try KeyDeliveryTarget.load(data: Data(family.utf8))) { XCTAssertTrue("\($0)".contains("source"), "\($0)") }
    }

    func testGarbageIsRefusedWithAClearMessage() {
        let cases: [(String, String)] = [
            // A key no reader of the file knows: a misspelling, or an option another file kind has.
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678", "childs": []}], "settings": {"cookie_threshhold": 4}}"#,
                "unknown keys connections[0].childs, settings.cookie_threshhold"
            ),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678"}], "settings": {"port_receive_buffer": 65536}}"#,
                "settings.port_receive_buffer"
            ),
            ("not json", "not valid"),
            (#"{"connections": []}"#, "no connections"),
            (#"{"connections": [{"name": "x", "local_address": "300.1.1.1", "psk": "12345678"}]}"#, "not an IP address"),
            (#"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "short"}]}"#, "shorter than 8"),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678", "proposals": ["aes999-sha256-x25519"]}]}"#,
                "unknown algorithm 'aes999'"
            ),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "remote_address": "2001:db8::1", "psk": "12345678"}]}"#,
                "families differ"
            ),
            (#"{"connections": [{"name": "x", "local_address": "10.0.0.1"}]}"#, "psk or psk_hex is required"),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "local_auth": "pubkey", "remote_auth": "pubkey"}]}"#,
                "needs certificate and private_key"
            ),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678", "remote_auth": "pubkey"}]}"#,
                "needs ca_certificates"
            ),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678", "remote_auth": "pubkey", "ca_certificates": ["/nonexistent/ca.pem"]}]}"#,
                "'/nonexistent/ca.pem' cannot be read"
            ),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678", "local_auth": "eap"}]}"#,
                "local_auth 'eap' is not psk, pubkey or rsa/pss"
            ),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678", "children": [{"name": "c", "esp_proposals": ["aes256gcm16-ke1_mlkem768"]}]}]}"#,
                "asks for additional key exchanges (ke1_ to ke7_) without a key exchange group"
            ),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678"}], "settings": {"log_level": "debug"}}"#,
                "settings.log_level: 'debug' is not one of info, warning"
            ),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678"}], "settings": {"fragment_size": 100}}"#,
                "fragment_size: 100 is not between 576 and 65535"
            ),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678"}], "settings": {"ike_delete_retransmit_limit": 17}}"#,
                "settings.ike_delete_retransmit_limit: 17 is not between 0 and 16"
            ),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678", "remote_auth": "pubkey", "ca_certificates": ["/nonexistent/ca.pem"], "revocation": "sometimes"}]}"#,
                "revocation 'sometimes' is not relaxed, ifuri or strict"
            ),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678"}], "settings": {"revocation_check_timeout": 0}}"#,
                "settings.revocation_check_timeout: 0.0 is not between 1 and 120 seconds"
            ),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678"}], "settings": {"ocsp_cache_limit": -1}}"#,
                "settings.ocsp_cache_limit: -1.0 is not between 0 and 604800 seconds"
            ),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678", "childless": "sometimes"}]}"#,
                "connection 'x': childless 'sometimes' is not allow, force or never"
            ),
            (
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678", "revocation": "strict"}]}"#,
                "revocation applies to peer certificates: it needs remote_auth \"pubkey\""
            )
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try EndpointConfigurationFile.parse(Data(text.utf8))) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error) should mention \(expected)")
            }
        }
    }

    /// Optional additional key exchanges (only keN_none) are read: the proposal offers NONE, a peer's is chosen
    /// without them (AdditionalKeyExchangeProposalTests).
    func testAdditionalKeyExchangesAreRead() throws {
        let text =
            #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "remote_address": "10.0.0.2", "psk": "12345678", "proposals": ["aes256gcm16-prfsha256-x25519-ke1_none"], "children": [{"name": "c", "esp_proposals": ["aes256gcm16-x25519-ke1_mlkem768"]}]}]}"#
        let connection = try XCTUnwrap(try EndpointConfigurationFile.parse(Data(text.utf8)).connections.first)
        XCTAssertEqual(connection.proposals.first?.additionalKeyExchanges[1]?.map { $0 }, [nil])
        XCTAssertEqual(connection.children.first?.proposals.first?.additionalKeyExchanges[1]?.map { $0 }, [.mlkem768])
    }

    func testAPostQuantumPresharedKeyIsReadAndCheckedWithClearMessages() throws {
        let key = String(repeating: "ab", count: 32)
        func connection(_ extra: String) -> Data {
            Data(#"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678"\#(extra)}]}"#.utf8)
        }
        let read = try XCTUnwrap(
            try EndpointConfigurationFile.parse(connection(#", "ppk_id": "site-ppk", "ppk_hex": "\#(key)", "ppk_required": true"#))
                .connections.first?.postQuantumPresharedKey)
        let expected = PostQuantumPresharedKey(
            identity: Array("site-ppk".utf8), key: KeyMaterial([UInt8](repeating: 0xab, count: 32)), required: true)
        XCTAssertEqual(read, expected)
        let optional = try EndpointConfigurationFile.parse(connection(#", "ppk_id": "p", "ppk": "\#(key)""#))
            .connections.first?.postQuantumPresharedKey
        XCTAssertEqual(optional?.required, false, "optional unless ppk_required says otherwise, as in strongSwan")
        XCTAssertNil(try EndpointConfigurationFile.parse(connection("")).connections.first?.postQuantumPresharedKey)
        for (extra, message) in [
            (#", "ppk_hex": "\#(key)""#, "ppk or ppk_hex needs ppk_id"),
            (#", "ppk_id": "p", "ppk_hex": "abcd""#, "shorter than 32 octets (RFC 8784 asks for 256 bits)"),
            (#", "ppk_id": "p", "ppk_hex": "xyz""#, "ppk_hex is not hexadecimal"),
            (#", "ppk_required": true"#, "ppk_id and ppk_required need ppk or ppk_hex")
        ] {
            XCTAssertThrowsError(try EndpointConfigurationFile.parse(connection(extra)), extra) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }

    func testTheLogLevelIsReadAndInfoByDefault() throws {
        let connection = #"{"name": "x", "local_address": "10.0.0.1", "psk": "12345678"}"#
        XCTAssertEqual(try EndpointConfigurationFile.parse(Data(#"{"connections": [\#(connection)]}"#.utf8)).settings.logLevel, .info)
        for level in LogLevel.allCases {
            let text = #"{"connections": [\#(connection)], "settings": {"log_level": "\#(level.name)"}}"#
            XCTAssertEqual(try EndpointConfigurationFile.parse(Data(text.utf8)).settings.logLevel, level)
        }
    }

    func testChildlessIsReadPerConnectionAndAllowByDefault() throws {
        for (value, expected) in [(nil, ChildlessMode.allow), ("allow", .allow), ("force", .force), ("never", .never)] {
            let key = value.map { #", "childless": "\#($0)""# } ?? ""
            let text = #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678"\#(key)}]}"#
            XCTAssertEqual(try EndpointConfigurationFile.parse(Data(text.utf8)).connections.first?.childless, expected, value ?? "default")
        }
    }

    /// rand_time takes a random part off each rekey time: a tenth of it unless the file says otherwise.
    func testRandTimeIsATenthOfTheRekeyTimeUnlessGiven() throws {
        func parsed(_ connection: String, _ child: String) throws -> ConnectionConfiguration {
            let text =
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "remote_address": "10.0.0.2", "psk": "12345678"\#(connection), "children": [{"name": "ch"\#(child)}]}]}"#
            let connections = try EndpointConfigurationFile.parse(Data(text.utf8)).connections
            return try XCTUnwrap(connections.first)
        }
        let defaults = try parsed(#", "rekey_time": 14400"#, #", "rekey_time": 3600"#)
        XCTAssertEqual(defaults.rekeyJitter, 1440)
        XCTAssertEqual(defaults.children[0].rekeyJitter, 360)
        let given = try parsed(#", "rekey_time": 14400, "rand_time": 0"#, #", "rekey_time": 3600, "rand_time": 600"#)
        XCTAssertEqual(given.rekeyJitter, 0)
        XCTAssertEqual(given.children[0].rekeyJitter, 600)
        XCTAssertEqual(try parsed("", "").children[0].rekeyJitter, 0, "no rekey time, no jitter")
        XCTAssertThrowsError(try parsed("", #", "rekey_time": 60, "rand_time": 60"#)) {
            XCTAssertTrue("\($0)".contains("connection 'x', child 'ch': rand_time 60.0 is not below rekey_time 60.0"), "\($0)")
        }
        XCTAssertThrowsError(try parsed(#", "rand_time": -1"#, "")) {
            XCTAssertTrue("\($0)".contains("connection 'x': rand_time -1.0 is negative"), "\($0)")
        }
    }

    /// A reload takes the file's connections whole (as `swanctl --load-all`): credentials, changed settings
    /// named (no secret), new connections added, gone ones removed.
    func testAReloadTakesTheFilesConnectionsAddedChangedAndRemoved() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ikp-reload-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let ca = directory.appendingPathComponent("ca.pem")
        let crl = directory.appendingPathComponent("ca.crl")
        try CertificateFixtures.Authority(name: "reload CA").certificate.serializeAsPEM().pemString.write(to: ca, atomically: true, encoding: .utf8)
        try Data(try FixtureFiles.bytes("crl/crl.pem")).write(to: crl)
        func connection(_ name: String, pubkey: Bool) -> String {
            #"{"name": "\#(name)", "local_address": "10.0.0.1", "psk": "12345678""#
                + (pubkey ? #", "remote_auth": "pubkey", "ca_certificates": ["\#(ca.path)"], "crls": ["\#(crl.path)"], "revocation": "strict""# : "")
                + "}"
        }
        let running = try EndpointConfigurationFile.parse(
            Data(#"{"connections": [\#(connection("a", pubkey: false)), \#(connection("b", pubkey: false))]}"#.utf8)
        ).connections
        let fresh = try EndpointConfigurationFile.parse(
            Data(#"{"connections": [\#(connection("a", pubkey: true)), \#(connection("c", pubkey: true))]}"#.utf8)
        ).connections
        let plan = ConnectionReload.plan(fresh: fresh, current: running)
        XCTAssertEqual(plan.set.map(\.name), ["a", "c"])
        XCTAssertEqual(plan.remove, ["b"])
        guard case .certificate(let anchors, let lists, let policy) = plan.set[0].remoteAuthentication else { return XCTFail("no CA taken") }
        XCTAssertEqual(anchors.count, 1)
        XCTAssertEqual(lists.count, 1)
        XCTAssertEqual(policy, .strict)
        XCTAssertEqual(
            plan.lines,
            [
                "reload: connection 'a': we prove ourselves with the pre-shared key; 1 CA certificate(s), 1 CRL(s) revoking 1 certificate(s), revocation strict",
                "reload: connection 'c' is new: we prove ourselves with the pre-shared key; 1 CA certificate(s), 1 CRL(s) revoking 1 certificate(s), revocation strict",
                "reload: connection 'b' is gone from the file: removed (IKE SAs up with it stay until deleted)"
            ])
        // Settings changed are named, never the key (the identity follows the address); a connection moved to
        // another local address is replaced.
        let moved = try EndpointConfigurationFile.parse(
            Data(
                #"{"connections": [{"name": "a", "local_address": "10.0.0.2", "psk": "another key", "proposals": ["aes128gcm16-prfsha384-ecp256"]}]}"#
                    .utf8)
        ).connections
        let changed = ConnectionReload.plan(fresh: moved, current: running)
        XCTAssertEqual(changed.remove, ["a", "b"])
        XCTAssertEqual(
            changed.lines[1],
            "reload: connection 'a': local address, identities, pre-shared key, IKE proposals changed; used from the next negotiation (IKE SAs up keep what they agreed)"
        )
        XCTAssertFalse(changed.lines.joined().contains("another key"))
        // The engine takes the plan: the removed connection is gone, the others are found by name and address.
        let engine = IKEEngine(connections: running)
        changed.remove.forEach { engine.removeConnection(named: $0) }
        changed.set.forEach(engine.setConnection)
        XCTAssertEqual(engine.connections.map(\.name), ["a"])
        XCTAssertEqual(engine.connection(named: "a")?.localAddress, IPAddress("10.0.0.2"))
        XCTAssertNil(engine.connection(named: "b"))
    }

    func testRevocationPolicyIsReadPerConnectionAndRelaxedByDefault() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ikp-revocation-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let ca = directory.appendingPathComponent("ca.pem")
        try CertificateFixtures.Authority(name: "config CA").certificate.serializeAsPEM().pemString.write(to: ca, atomically: true, encoding: .utf8)
        for (value, expected) in [(nil, RevocationPolicy.relaxed), ("ifuri", .ifURI), ("strict", .strict), ("relaxed", .relaxed)] {
            let key = value.map { #", "revocation": "\#($0)""# } ?? ""
            let text =
                #"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678", "remote_auth": "pubkey", "ca_certificates": ["\#(ca.path)"]\#(key)}]}"#
            let connection = try XCTUnwrap(EndpointConfigurationFile.parse(Data(text.utf8)).connections.first)
            guard case .certificate(_, _, let policy) = connection.remoteAuthentication else { return XCTFail("not certificate authentication") }
            XCTAssertEqual(policy, expected, value ?? "default")
        }
    }

    func testRSAPSSNeedsAnRSAKey() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ikp-pss-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let ca = try CertificateFixtures.Authority(name: "config CA")
        func write(_ credential: CertificateCredential, keyPEM: String, name: String) throws -> String {
            let certificate = directory.appendingPathComponent("\(name).pem")
            let key = directory.appendingPathComponent("\(name).key")
            try credential.chain[0].serializeAsPEM().pemString.write(to: certificate, atomically: true, encoding: .utf8)
            try keyPEM.write(to: key, atomically: true, encoding: .utf8)
            return #""local_auth": "rsa/pss", "certificate": "\#(certificate.path)", "private_key": "\#(key.path)""#
        }
        let ecdsaKey = P256.Signing.PrivateKey()
        let rsaKey = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let ecdsa = try write(try ca.issue(address: "10.0.0.1", subjectKey: .p256(ecdsaKey)), keyPEM: ecdsaKey.pemRepresentation, name: "ecdsa")
        let rsa = try write(try ca.issue(address: "10.0.0.1", subjectKey: .rsa(rsaKey)), keyPEM: rsaKey.pemRepresentation, name: "rsa")
        func text(_ auth: String) -> Data {
            Data(#"{"connections": [{"name": "x", "local_address": "10.0.0.1", "psk": "12345678", \#(auth)}]}"#.utf8)
        }
        XCTAssertThrowsError(try EndpointConfigurationFile.parse(text(ecdsa))) {
            XCTAssertTrue("\($0)".contains("needs an RSA private_key"), "\($0)")
        }
        let parsed = try EndpointConfigurationFile.parse(text(rsa))
        guard case .certificate(let credential) = parsed.connections[0].localAuthentication else { return XCTFail("no certificate credential") }
        XCTAssertTrue(credential.rsaPSS)
    }
}
