import Foundation
import Hummingbird
import NIOCore
import NIOSSL

/// The first step of every request on the listener: reads the body (64 KiB at most, else 413) and the connection's
/// source and client certificate into `APICall.current` for the steps after it.
struct ConnectionFactsMiddleware: RouterMiddleware {
    typealias Context = ManagementRequestContext
    static let maximumBody = 65536

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: Self.maximumBody)
        let call = APICall(source: context.source, clientCertificateDER: await context.clientCertificateDER(), body: Data(buffer: body))
        return try await APICall.$current.withValue(call) { try await next(request, context) }
    }
}
