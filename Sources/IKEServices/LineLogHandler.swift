import Foundation
import IKEv2
import Logging

/// How a process writes its log lines on stderr.
public enum LogFormat: String, Sendable, CaseIterable {
    /// A time stamp and the text, one line each: the lines as they always were.
    case text
    /// One JSON object per line (`time`, `level`, `message` and the logger's metadata) for log collectors.
    case json
}

/// swift-log's handler for the daemon, the endpoint and the terminal agent: each line as text or JSON, handed to
/// `sink` (which holds it for the process's next write, `LineWriter`). The same event gives the same facts either
/// way: its time stamp, its level and its text, and in JSON the metadata besides.
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata
    public var logLevel: Logger.Level = .info
    public let format: LogFormat
    let sink: @Sendable (String) -> Void

    public init(format: LogFormat, metadata: Logger.Metadata = [:], sink: @escaping @Sendable (String) -> Void) {
        self.format = format
        self.metadata = metadata
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String, function: String,
        line: UInt
    ) {
        // The text format writes no metadata: nothing to merge for it (a line per step of every negotiation).
        let metadata = format == .text ? [:] : explicit.map { self.metadata.merging($0) { $1 } } ?? self.metadata
        sink(Self.line(format: format, time: LogTimestamp.shared.string(), level: level, message: message.description, metadata: metadata))
    }

    /// One log line as `format` writes it.
    public static func line(format: LogFormat, time: String, level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        switch format {
        case .text:
            return time + " " + message
        case .json:
            var members: [String: JSONText] = ["time": .string(time), "level": .string(level.rawValue), "message": .string(message)]
            for (key, value) in metadata where members[key] == nil { members[key] = .string(value.description) }
            return JSONText.object(members).rendered
        }
    }

    /// The level of one of the processes' lines: those that start with "warning:" are warnings.
    public static func level(of line: String) -> Logger.Level { line.hasPrefix("warning:") ? .warning : .info }
}

extension Logger {
    /// Logs one of the processes' lines at its level (`LineLogHandler.level(of:)`).
    public func line(_ text: String) { log(level: LineLogHandler.level(of: text), "\(text)") }

    /// Logs a line with the facts it is about as metadata (the JSON format's fields; the text format writes the text alone).
    public func line(_ line: LogLine) {
        // Text lines carry no metadata: the facts are not turned into it (issue 21: a line per step of every negotiation).
        if let handler = handler as? LineLogHandler, handler.format == .text {
            log(level: LineLogHandler.level(of: line.text), "\(line.text)")
            return
        }
        let fields = line.facts.fields
        log(
            level: LineLogHandler.level(of: line.text), "\(line.text)",
            metadata: fields.isEmpty ? nil : Dictionary(uniqueKeysWithValues: fields.map { ($0.name, Logger.MetadataValue.string($0.value)) }))
    }
}
