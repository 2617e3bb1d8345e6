import Foundation
import IKEv2
import X509

/// OCSP statuses kept until the answers' nextUpdate (at most `longest`), as strongSwan keeps OCSP responses:
/// a peer that comes back, or many terminals' SAs with one peer, do not cost a query each. Only signed
/// answers are kept (good or revoked); a missing answer is asked again next time.
public actor OCSPStatusCache {
    private var entries: [[Certificate]: (status: RevocationStatus, until: Date)] = [:]
    public private(set) var hits = 0
    public private(set) var queries = 0
    let longest: TimeInterval

    public init(longest: TimeInterval = 3600) { self.longest = longest }

    /// The chain's status: kept, or asked through `transport` (which carries a DER request to a responder
    /// and returns the answer's bytes).
    public func check(chain: [Certificate], transport: @escaping OCSPTransport, at time: Date) async -> RevocationStatus {
        await lookup(chain: chain, transport: transport, at: time).status
    }

    /// The status, and whether it was kept from an earlier answer.
    public func lookup(chain: [Certificate], transport: @escaping OCSPTransport, at time: Date) async -> (status: RevocationStatus, kept: Bool) {
        let key = chain
        if let entry = entries[key], entry.until > time {
            hits += 1
            return (entry.status, true)
        }
        queries += 1
        let recorder = RecordingRequester(transport)
        let status = await OCSPStatusCheck.check(chain: chain, requester: recorder, at: time)
        switch status {
        case .good, .revoked:
            if longest > 0, let until = recorder.responses.compactMap(OCSPResponseValidity.nextUpdate(of:)).min() {
                entries[key] = (status, min(until, time.addingTimeInterval(longest)))
            }
        case .unavailable: entries[key] = nil
        }
        return (status, false)
    }
}

/// Carries a DER OCSP request to a responder URI and returns the answer's bytes.
public typealias OCSPTransport = @Sendable (_ request: [UInt8], _ uri: String) async -> Result<[UInt8], Error>

/// Passes queries to a transport and keeps the answers' bytes, so that the cache can read how long they
/// hold. A transport failure is terminal: the check then reports no answer rather than passing.
final class RecordingRequester: OCSPRequester, @unchecked Sendable {
    private let transport: OCSPTransport
    private let lock = NSLock()
    private var recorded: [[UInt8]] = []
    var responses: [[UInt8]] { lock.withLock { recorded } }

    init(_ transport: @escaping OCSPTransport) { self.transport = transport }

    func query(request: [UInt8], uri: String) async -> OCSPRequesterQueryResult {
        switch await transport(request, uri) {
        case .success(let bytes):
            lock.withLock { recorded.append(bytes) }
            return .response(bytes)
        case .failure(let error): return .terminalError(error)
        }
    }
}
