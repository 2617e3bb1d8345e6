import Foundation

/// Why a configuration file was refused; the message names the offending key.
public struct ConfigurationError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension DecodingError {
    /// What is wrong with a configuration file or request body and where, in an operator's words:
    /// "missing key 'action' at 'policy.rules[2]'".
    public var readableDescription: String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
                .trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
        switch self {
        case .keyNotFound(let key, let context): return "missing key '\(key.stringValue)' at '\(path(context))'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "wrong type at '\(path(context))': \(context.debugDescription)"
        case .dataCorrupted(let context): return "not valid JSON (\(context.debugDescription)) at '\(path(context))'"
        @unknown default: return "\(self)"
        }
    }
}
