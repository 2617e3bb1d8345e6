import Foundation
import HTTPTypes
import OpenAPIRuntime

/// Every operation of the document behind a pinned client certificate or a bearer token, with the per-source limit on
/// failed authentications; operations that change something for the admin role only. Runs before the generated layer
/// reads the request, so a stranger learns nothing about what a well-formed request would be.
struct AuthenticationMiddleware: ServerMiddleware {
    let authenticator: Authenticator
    let throttle: AuthenticationThrottle
    let mailbox: ManagementMailbox
    let log: @Sendable (String) -> Void

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        guard var call = APICall.current, let route = ManagementRequest.Route(rawValue: operationID) else {
            return ErrorAnswer.response(500, "operation \(operationID) has no route in the daemon")
        }
        let path = request.path ?? "?"
        let source = call.source
        let now = Date().timeIntervalSince1970
        if let wait = throttle.refusal(source: source, now: now) {
            log("management: \(request.method) \(path) from \(source) refused (429, blocked after failed authentications)")
            var response = ErrorAnswer.response(429, "too many failed authentications from \(source); try again in \(Int(wait.rounded(.up))) s")
            response.0.headerFields[.retryAfter] = String(Int(throttle.block))
            return response
        }
        guard
            let (administrator, _) = authenticator.administrator(
                authorization: request.headerFields[.authorization], clientCertificateDER: call.clientCertificateDER)
        else {
            let certificate = call.clientCertificateDER
            log(
                "management: unauthenticated \(request.method) \(path) from \(source) refused (401"
                    + (certificate.map { ", client certificate \(ManagementServer.hex(Administrator.fingerprint(certificateDER: $0))) not pinned)" }
                        ?? ")"))
            if throttle.recordFailure(source: source, now: now) {
                let detail =
                    "\(throttle.limit) failed authentications from \(source) within \(Int(throttle.window)) s: refused for \(Int(throttle.block)) s"
                log("management: \(detail)")
                _ = await mailbox.submit(
                    ManagementRequest(
                        route: .authenticationLimited, parameter: detail,
                        administrator: Administrator(name: "unauthenticated \(source)", role: .reader)))
            }
            var response = ErrorAnswer.response(
                401,
                certificate == nil
                    ? "a valid bearer token is required (Authorization: Bearer <token>)"
                    : "this client certificate is not an administrator's, and no valid bearer token was given")
            response.0.headerFields[.wwwAuthenticate] = "Bearer realm=\"ikeproxy\""
            return response
        }
        throttle.recordSuccess(source: source)
        if route.changes && administrator.role != .admin {
            log("management: \(administrator.name) refused \(request.method) \(path) (403, read-only role)")
            return ErrorAnswer.response(403, "\(administrator.name) may read but not change (role \(administrator.role.rawValue))")
        }
        call.administrator = administrator
        return try await APICall.$current.withValue(call) { try await next(request, body, metadata) }
    }
}
