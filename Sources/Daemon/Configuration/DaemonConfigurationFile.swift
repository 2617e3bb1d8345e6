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
    /// The file as JSON has it (docs/daemon.md); `parse` checks it section by section.
    struct File: Decodable {
        struct Interfaces: Decodable {
            var internet: String
            /// One name, or a list of names.
            var terminal: [String]
            enum Keys: String, CodingKey { case internet, terminal }
            init(from decoder: Decoder) throws {
                let container = try decoder.container(keyedBy: Keys.self)
                internet = try container.decode(String.self, forKey: .internet)
                if let one = try? container.decode(String.self, forKey: .terminal) {
                    terminal = [one]
                } else {
                    terminal = try container.decode([String].self, forKey: .terminal)
                }
            }
        }
        struct Terminal: Decodable {
            var terminal_id: UInt64
            var enrollment_key_hex: String?
            var enrollment_key_sealed: String?
            var mac: String?
            var addresses: [String]?
            var key_delivery_port: UInt16?
            /// The terminal's certificate (PEM, chain) and ECDSA key, for profiles with local_auth "pubkey".
            var certificate: String?
            var private_key: String?
            var private_key_sealed: String?
        }
        struct Profile: Decodable {
            var name: String
            var proposals: [String]?
            var esp_proposals: [String]?
            var psk: String?
            var psk_hex: String?
            var psk_sealed: String?
            /// RFC 8784: a post-quantum preshared key (text, hex or sealed), its ID, and whether it is required.
            var ppk_id: String?
            var ppk: String?
            var ppk_hex: String?
            var ppk_sealed: String?
            var ppk_required: Bool?
            var peer_id: String?
            var mode: String?
            var force_encapsulation: Bool?
            var hard_lifetime: UInt32?
            var rekey_bytes: UInt64?
            var life_bytes: UInt64?
            var rekey_packets: UInt64?
            var life_packets: UInt64?
            var rekey_time: Double?
            var ike_rekey_time: Double?
            var rand_time: Double?
            var ike_rand_time: Double?
            var liveness_interval: Double?
            var childless: String?
            var local_auth: String?
            var remote_auth: String?
            var ca_certificates: [String]?
            var crls: [String]?
            var revocation: String?
        }
        struct Policy: Decodable {
            var rules: [RuleText]
            var `default`: String?
        }
        struct KeyDelivery: Decodable {
            var port: UInt16?
            var source_ipv4: String?
            var source_ipv6: String?
        }
        struct Store: Decodable {
            struct PKCS11: Decodable {
                var module: String
                var token: String
                var pin: String?
                var pin_file: String?
                var key_label: String?
            }
            struct PostgreSQL: Decodable {
                var url: String
                var password_file: String?
                var ca_file: String?
            }
            var path: String?
            var postgresql: PostgreSQL?
            var pkcs11: PKCS11?
            var key_file: String?
            var create_key_file: Bool?
        }
        var store: Store?
        struct HighAvailability: Decodable {
            var node: String
            var lease_duration: Double?
            var claim_interval: Double?
            var margin: Double?
        }
        var high_availability: HighAvailability?
        struct Management: Decodable {
            struct Admin: Decodable {
                var name: String
                var role: String?
                var token_sha256: String?
                var certificate_sha256: String?
            }
            var listen: String
            var port: Int?
            var certificate: String
            var private_key: String?
            var private_key_sealed: String?
            var client_ca: String?
            var administrators: [Admin]
        }
        var management: Management?
        var interfaces: Interfaces
        var control_socket: String?
        var terminal_prefixes: [String]
        var terminals: [Terminal]?
        var profiles: [Profile]
        var policy: Policy
        var key_delivery: KeyDelivery?
        var settings: EngineSettingsFile.With<OwnSettings>?
        /// Beside the shared engine keys, what only the proxy has: the wait after a failed negotiation.
        struct OwnSettings: Decodable {
            var retry_after_failure: Double?
            var max_negotiations_per_terminal: Int?
            var max_negotiations: Int?
            var port_receive_buffer: Int?
            var workers: Int?
        }
    }
}
