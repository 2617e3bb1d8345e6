import Foundation
import IKEv2
import X509
#if canImport(Glibc)
import Glibc
#endif

/// Runs the engine's online revocation checks off the event loop. Each check is a task that asks the
/// OCSP responders or fetches the CRLs the peer's certificates name; its answer waits here until the loop, woken through a pipe it polls, drains it and hands
/// it to the engine. The loop alone touches engine state.
public final class RevocationService: @unchecked Sendable {
    private let lock = NSLock()
    private var answers: [(id: UInt64, status: RevocationStatus)] = []
    private let pipeDescriptors: [Int32]
    private let requester: OCSPHTTPRequester
    /// CRLs fetched from distribution points, kept until their nextUpdate.
    public let crls = CRLFetcher()

    public init(requester: OCSPHTTPRequester = OCSPHTTPRequester()) {
        self.requester = requester
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
            _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        }
        pipeDescriptors = fds
    }

    deinit { close(pipeDescriptors[0]); close(pipeDescriptors[1]) }

    /// Readable when answers wait: add it to the loop's poll.
    public var wakeDescriptor: Int32 { pipeDescriptors[0] }

    /// Starts asking: the OCSP responders of the certificates that name some, the CRL distribution points
    /// of those that name only these. The answer comes out of `drain()`.
    public func start(_ request: RevocationCheckRequest) {
        let requester = self.requester, crls = self.crls
        Task.detached { [self] in
            let chain = request.chain, now = Date()
            var statuses: [RevocationStatus] = []
            if !OCSPStatusCheck.responders(ofChain: chain).isEmpty {
                statuses.append(await OCSPStatusCheck.check(chain: chain, requester: requester, at: now))
            }
            for index in chain.indices.dropLast() {
                guard let source = RevocationSources.online(of: chain[index]), source.kind == .crl else { continue }
                statuses.append(await crls.status(of: chain[index], issuer: chain[index + 1], uris: source.uris, at: now))
            }
            post(request.id, .combined(statuses))
        }
    }

    private func post(_ id: UInt64, _ status: RevocationStatus) {
        lock.lock()
        answers.append((id, status))
        lock.unlock()
        var byte: UInt8 = 1
        _ = write(pipeDescriptors[1], &byte, 1)
    }

    /// The answers that came in since the last call.
    public func drain() -> [(id: UInt64, status: RevocationStatus)] {
        var scratch = [UInt8](repeating: 0, count: 64)
        while read(pipeDescriptors[0], &scratch, scratch.count) > 0 {}
        lock.lock()
        defer { answers = []; lock.unlock() }
        return answers
    }

    /// How a status reads in the log.
    public static func describe(_ status: RevocationStatus) -> String {
        switch status {
        case .good: return "good"
        case .revoked(let why): return "revoked (\(why))"
        case .unavailable(let why): return "unavailable (\(why))"
        }
    }
}
