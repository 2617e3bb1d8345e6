import Foundation
import IKEEndpoint
import XCTest

@testable import Daemon

/// The endpoint's connections and the daemon's profiles decode their shared keys with one decoder
/// (`SharedConnectionText`): fed the same values, they accept and refuse alike, with the same words.
final class PreSharedKeyAgreementTests: XCTestCase {
    /// The endpoint's verdict on a connection with these keys: "accepted", or the message after the place.
    func endpoint(_ keys: [String: Any]) -> String {
        var connection: [String: Any] = ["name": "x", "local_address": "10.0.0.1", "remote_address": "10.0.0.2"]
        connection.merge(keys) { $1 }
        do {
            _ = try EndpointConfigurationFile.parse(try JSONSerialization.data(withJSONObject: ["connections": [connection]]))
            return "accepted"
        } catch {
            return String(describing: error).replacingOccurrences(of: "connection 'x': ", with: "")
        }
    }

    /// The daemon's verdict on its documented example with the first profile's keys replaced.
    func daemon(_ keys: [String: Any]) throws -> String {
        var object =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: DaemonConfigurationTests.examplePath))) as! [String: Any]
        var profiles = object["profiles"] as! [[String: Any]]
        for key in ["psk", "psk_hex", "psk_sealed", "mode", "proposals", "esp_proposals", "childless", "local_auth"] { profiles[0][key] = nil }
        profiles[0].merge(keys) { $1 }
        let name = profiles[0]["name"] as! String
        object["profiles"] = profiles
        do {
            _ = try DaemonConfiguration.parse(try JSONSerialization.data(withJSONObject: object))
            return "accepted"
        } catch {
            return String(describing: error).replacingOccurrences(of: "profiles[0] (\(name)): ", with: "")
        }
    }

    func testBothAcceptAndRefuseTheSameSharedKeysWithTheSameMessages() throws {
        let cases: [([String: Any], String)] = [
            (["psk": "12345678"], "accepted"),
            (["psk_hex": "0102030405060708"], "accepted"),
            (["psk": ""], "the pre-shared key is shorter than 8 octets"),
            (["psk": "short"], "the pre-shared key is shorter than 8 octets"),
            (["psk_hex": ""], "the pre-shared key is shorter than 8 octets"),
            (["psk_hex": "01020304"], "the pre-shared key is shorter than 8 octets"),
            (["psk_hex": "zz"], "psk_hex is not hexadecimal"),
            (["psk_hex": "0x12g4"], "psk_hex is not hexadecimal")
        ]
        for (keys, expected) in cases {
            XCTAssertEqual(endpoint(keys), expected, "endpoint, \(keys)")
            XCTAssertEqual(try daemon(keys), expected, "daemon, \(keys)")
        }
    }

    func testBothDecodeModeProposalsAuthenticationAndChildlessAlike() throws {
        let psk = "a long enough key"
        // (the endpoint's keys, the daemon's keys, the message both give): the endpoint's mode and ESP
        // proposals belong to its children, hence the child's place in its message.
        let cases: [([String: Any], [String: Any], String)] = [
            (
                ["psk": psk, "children": [["name": "c", "mode": "beet"]]], ["psk": psk, "mode": "beet"],
                "mode must be 'tunnel' or 'transport'"
            ),
            (
                ["psk": psk, "children": [["name": "c", "esp_proposals": ["des"]]]], ["psk": psk, "esp_proposals": ["des"]],
                "esp_proposals: unknown algorithm 'des' in proposal 'des'"
            ),
            (
                ["psk": psk, "proposals": ["aes999-sha256-x25519"]], ["psk": psk, "proposals": ["aes999-sha256-x25519"]],
                "proposals: unknown algorithm 'aes999' in proposal 'aes999-sha256-x25519'"
            ),
            (["psk": psk, "local_auth": "eap"], ["psk": psk, "local_auth": "eap"], "local_auth 'eap' is not psk, pubkey or rsa/pss"),
            (["psk": psk, "childless": "sometimes"], ["psk": psk, "childless": "sometimes"], "childless 'sometimes' is not allow, force or never")
        ]
        for (endpointKeys, daemonKeys, expected) in cases {
            XCTAssertEqual(
                endpoint(endpointKeys).replacingOccurrences(of: "connection 'x', child 'c': ", with: ""), expected, "endpoint, \(endpointKeys)")
            XCTAssertEqual(try daemon(daemonKeys), expected, "daemon, \(daemonKeys)")
        }
    }
}
