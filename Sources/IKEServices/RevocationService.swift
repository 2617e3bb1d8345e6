import Foundation
import IKEv2
import LinuxIO
import X509

/// Runs the engine's online revocation checks off the event loop. Each check is a task that asks the
/// OCSP responders or fetches the CRLs the peer's certificates name; its answer waits here until the
/// loop, woken through a WakePipe it polls, drains it and hands it to the engine. The loop alone touches
/// engine state.
public final class RevocationService: @unchecked Sendable {
    private let lock = NSLock()
    private var answers: [Answer] = []
    private let wakePipe = WakePipe()
    private let requester: OCSPHTTPRequester
    /// CRLs fetched from distribution points, kept until their nextUpdate.
    public let crls = CRLFetcher()
    /// OCSP statuses, kept until the answers' nextUpdate.
    public let ocsp: OCSPStatusCache

    /// One check's result; `kept` when an OCSP answer kept from an earlier check gave it; `note` when
    /// OCSP gave nothing and the CRLs decided.
    public struct Answer: Sendable {
        public var id: UInt64
        public var status: RevocationStatus
        public var kept: Bool
        public var note: String?
    }

    /// Set from inside a check's closures, read when it is over.
    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        func set() { lock.withLock { value = true } }
        var isSet: Bool { lock.withLock { value } }
    }

    public init(requester: OCSPHTTPRequester = OCSPHTTPRequester(), ocspCacheLimit: TimeInterval = 3600) {
        self.requester = requester
        ocsp = OCSPStatusCache(longest: ocspCacheLimit)
    }

    /// Readable when answers wait: add it to the loop's poll.
    public var wakeDescriptor: Int32 { wakePipe.readDescriptor }

    /// Starts asking: the OCSP responders of the certificates that name some, the CRL distribution points
    /// of those that name only these. The answer comes out of `drain()`.
    public func start(_ request: RevocationCheckRequest) {
        let requester = self.requester
        let crls = self.crls
        let ocsp = self.ocsp
        Task.detached { [self] in
            let now = Date()
            let kept = Flag()
            let (status, note) = await OnlineRevocationCheck.run(
                chain: request.chain,
                ocsp: { chain in
                    let (status, fromCache) = await ocsp.lookup(chain: chain, transport: { await requester.post($0, to: $1) }, at: now)
                    if fromCache { kept.set() }
                    return status
                },
                crl: { certificate, issuer, uris in await crls.status(of: certificate, issuer: issuer, uris: uris, at: now) })
            post(Answer(id: request.id, status: status, kept: kept.isSet, note: note))
        }
    }

    private func post(_ answer: Answer) {
        lock.withLock { answers.append(answer) }
        wakePipe.wake()
    }

    /// The answers that came in since the last call.
    public func drain() -> [Answer] {
        wakePipe.drain()
        lock.lock()
        defer {
            answers = []
            lock.unlock()
        }
        return answers
    }

    /// How an answer reads in the log.
    public static func describe(_ answer: Answer) -> String {
        let text: String
        switch answer.status {
        case .good: text = "good"
        case .revoked(let why): text = "revoked (\(why))"
        case .unavailable(let why): text = "unavailable (\(why))"
        }
        let noted = answer.note.map { text + " (\($0))" } ?? text
        return answer.kept ? noted + " (OCSP answer kept from an earlier check)" : noted
    }
}
