import ConfigurationFiles
import Foundation
import IKEv2

/// How the endpoint sets up its IKE sockets: the file's `settings.socket_receive_buffer`, in octets. A burst
/// of negotiations (hundreds of peers starting at once, or our own initiations answered together) must wait
/// in the socket rather than be dropped by the kernel, whose default (208 KiB) holds a few hundred IKE_SA_INIT
/// messages.
public struct EndpointSocketSettings: Sendable, Equatable {
    public static let defaultReceiveBuffer = 8 << 20
    public var receiveBuffer = EndpointSocketSettings.defaultReceiveBuffer
    /// Initiations of a burst (`--initiate`, the control pipe) in flight at once: `settings.initiation_window`.
    public static let defaultInitiationWindow = 64
    public var initiationWindow = EndpointSocketSettings.defaultInitiationWindow
    /// IKE engines on threads of their own (`settings.workers`, EngineGroup); 1 runs the engine on the loop.
    public var workers = 1
    /// Seconds steady traffic is held before the sockets are read again (`settings.receive_coalescing`,
    /// ReceiveCoalescing); 0 reads each datagram as it arrives.
    public static let defaultReceiveCoalescing = 0.01
    public var receiveCoalescing = EndpointSocketSettings.defaultReceiveCoalescing

    struct File: Decodable {
        struct Settings: Decodable {
            var socket_receive_buffer: Int?
            var initiation_window: Int?
            var workers: Int?
            var receive_coalescing: Double?
        }
        var settings: Settings?
    }

    public static func parse(_ data: Data) throws -> EndpointSocketSettings {
        var result = EndpointSocketSettings()
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch let error as DecodingError {
            throw ConfigurationError("configuration is not valid: \(error.readableDescription)")
        }
        if let size = file.settings?.socket_receive_buffer {
            guard (65_536...(1 << 30)).contains(size) else {
                throw ConfigurationError("settings.socket_receive_buffer: \(size) is not between 65536 and 1073741824 octets")
            }
            result.receiveBuffer = size
        }
        if let window = file.settings?.initiation_window {
            guard (1...100_000).contains(window) else {
                throw ConfigurationError("settings.initiation_window: \(window) is not between 1 and 100000")
            }
            result.initiationWindow = window
        }
        if let workers = file.settings?.workers {
            let allowed = EngineShards.allowedCounts
            guard allowed.contains(workers) else {
                throw ConfigurationError("settings.workers: \(workers) is not between \(allowed.lowerBound) and \(allowed.upperBound)")
            }
            result.workers = workers
        }
        if let window = file.settings?.receive_coalescing {
            guard (0...0.1).contains(window) else {
                throw ConfigurationError("settings.receive_coalescing: \(window) is not between 0 and 0.1 seconds")
            }
            result.receiveCoalescing = window
        }
        return result
    }
}
