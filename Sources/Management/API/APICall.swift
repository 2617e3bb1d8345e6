import Foundation

/// What the HTTP layer knows about a call that the generated layer does not carry: the connection's source and client
/// certificate, the body as sent, and, once authenticated, the administrator. Task-local, as the generated routes
/// pass only the request along.
struct APICall: Sendable {
    /// The client's address, for the per-source limit on failed authentications.
    var source: String
    /// The client certificate TLS verified for this connection, as DER; nil when none was presented.
    var clientCertificateDER: [UInt8]?
    /// The body as sent: the generated layer has checked its shape against the document, the daemon checks its meaning
    /// (and names the offending key in its answer).
    var body: Data
    var administrator: Administrator?

    @TaskLocal static var current: APICall?
}
