import IKEv2

/// The engine tunables the endpoint's and the daemon's configuration files share (their "settings"
/// object), read and checked in one place; a file may add keys of its own beside them.
public struct EngineSettingsFile: Decodable, Sendable {
    var retransmit_timeout: Double?
    var retransmit_limit: Int?
    var ike_delete_retransmit_limit: Int?
    var half_open_timeout: Double?
    var rekey_retry_delay: Double?
    var replaced_sa_timeout: Double?
    var fragmentation: Bool?
    var fragment_size: Int?
    var revocation_check_timeout: Double?
    var ocsp_cache_limit: Double?
    var init_error_answer_rate: Double?
    var maximum_reassembly_size: Int?
    var maximum_reassembly_memory: Int?
    var log_level: String?

    /// A file's whole "settings" object: these shared keys, and `Own`, the keys only that file has, read
    /// from the same object.
    public struct With<Own: Decodable>: Decodable {
        public var own: Own
        public var engine: EngineSettingsFile
        public init(from decoder: Decoder) throws {
            own = try Own(from: decoder)
            engine = try EngineSettingsFile(from: decoder)
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Sets what the file gives on `settings`; a value out of range names its key.
    public func apply(to settings: inout EngineSettings) throws(Failure) {
        if let v = log_level {
            guard let level = LogLevel(name: v) else {
                throw Failure(description: "settings.log_level: '\(v)' is not one of \(LogLevel.allCases.map(\.name).joined(separator: ", "))")
            }
            settings.logLevel = level
        }
        if let v = retransmit_timeout { settings.retransmitTimeout = v }
        if let v = retransmit_limit { settings.retransmitLimit = v }
        if let v = ike_delete_retransmit_limit {
            guard (0...16).contains(v) else { throw Failure(description: "settings.ike_delete_retransmit_limit: \(v) is not between 0 and 16") }
            settings.ikeDeleteRetransmitLimit = v
        }
        if let v = half_open_timeout { settings.halfOpenTimeout = v }
        if let v = rekey_retry_delay { settings.rekeyRetryDelay = v }
        if let v = replaced_sa_timeout { settings.replacedSATimeout = v }
        if let v = fragmentation { settings.fragmentation = v }
        if let v = fragment_size {
            guard (576...65535).contains(v) else { throw Failure(description: "settings.fragment_size: \(v) is not between 576 and 65535") }
            settings.fragmentSize = v
        }
        if let v = revocation_check_timeout {
            guard v >= 1 && v <= 120 else { throw Failure(description: "settings.revocation_check_timeout: \(v) is not between 1 and 120 seconds") }
            settings.revocationCheckTimeout = v
        }
        if let v = ocsp_cache_limit {
            guard v >= 0 && v <= 604_800 else { throw Failure(description: "settings.ocsp_cache_limit: \(v) is not between 0 and 604800 seconds") }
            settings.ocspCacheLimit = v
        }
        if let v = init_error_answer_rate {
            guard v >= 1 else { throw Failure(description: "settings.init_error_answer_rate: \(v) is below 1 answer a second") }
            settings.initErrorAnswerRate = v
        }
        if let v = maximum_reassembly_size {
            guard (1_280...(1 << 24)).contains(v) else {
                throw Failure(description: "settings.maximum_reassembly_size: \(v) is not between 1280 and 16777216 octets")
            }
            settings.maximumReassemblySize = v
        }
        if let v = maximum_reassembly_memory {
            guard v >= settings.maximumReassemblySize else {
                throw Failure(
                    description: "settings.maximum_reassembly_memory: \(v) is below maximum_reassembly_size (\(settings.maximumReassemblySize))")
            }
            settings.maximumReassemblyMemory = v
        }
    }
}
