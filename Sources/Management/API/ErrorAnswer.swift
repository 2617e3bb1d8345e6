import Foundation
import HTTPTypes
import ManagementAPI
import OpenAPIRuntime

/// Errors as the document's Error schema, `{"error": "..."}`, whichever layer refuses the request.
enum ErrorAnswer {
    static func response(_ status: Int, _ message: String) -> (HTTPResponse, HTTPBody?) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let body = (try? encoder.encode(Components.Schemas._Error(error: message))) ?? Data("{}".utf8)
        var response = HTTPResponse(status: .init(code: status))
        response.headerFields[.contentType] = "application/json"
        return (response, HTTPBody(Array(body)))
    }
}

/// The daemon answered with a status the document does not list for the operation, or a body its schema does not
/// describe: a fault of this program, answered 500 and logged, never passed on as if documented.
struct AnswerOutsideDocument: Error, CustomStringConvertible {
    var operation: String
    var status: Int
    var reason: String
    /// The start of the body, for the log only.
    var body = ""
    var description: String { "the daemon's answer to \(operation) (HTTP \(status)) is not as docs/openapi.yaml describes it: \(reason)" }
}

/// The outermost step of the generated layer: a request it cannot read (a body that is not the document's JSON, a path
/// or query parameter of the wrong type) gets 400 with what was wrong; an answer outside the document gets 500.
struct ErrorAnswerMiddleware: ServerMiddleware {
    let log: @Sendable (String) -> Void

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        do { return try await next(request, body, metadata) } catch let error as ServerError {
            if let outside = error.underlyingError as? AnswerOutsideDocument {
                log("management: \(outside) (body: \(outside.body))")
                return ErrorAnswer.response(500, outside.description)
            }
            if error.operationInput == nil {
                return ErrorAnswer.response(400, "malformed request for \(operationID): \(Self.reason(error.underlyingError))")
            }
            log("management: \(operationID) failed: \(error.underlyingError)")
            return ErrorAnswer.response(500, "\(operationID) failed: \(error.underlyingError)")
        }
    }

    /// A decoding error as a sentence: which field, and what was wrong with it.
    static func reason(_ error: any Error) -> String {
        guard let decoding = error as? DecodingError else { return "\(error)" }
        func at(_ path: [any CodingKey]) -> String { path.isEmpty ? "the body" : path.map(\.stringValue).joined(separator: ".") }
        switch decoding {
        case .dataCorrupted(let context): return "\(at(context.codingPath)): \(context.debugDescription)"
        case .keyNotFound(let key, let context): return "\(at(context.codingPath + [key])) is required"
        case .typeMismatch(let type, let context): return "\(at(context.codingPath)) must be \(type)"
        case .valueNotFound(let type, let context): return "\(at(context.codingPath)) must be \(type), not null"
        @unknown default: return "\(decoding)"
        }
    }
}
