import Foundation
import Management
import Store

/// Management requests that reach the standby of a pair are carried out by the active, through the database
/// (`RelayedRequest`): the standby holds no state of its own until it takes over, so an administrator's change
/// made on either node takes effect once, on the active, and reaches the other node with the rest of the state.
/// The standby answers its status, metrics and audit itself.
final class RequestRelay: @unchecked Sendable {
    let node: String
    private let store: PostgreSQLStateStore
    private let lock = NSLock()
    private var standby = true
    /// How long the standby waits for the active's answer.
    static let patience = 5.0

    init(node: String, store: PostgreSQLStateStore) {
        self.node = node
        self.store = store
    }

    var isStandby: Bool {
        get { lock.withLock { standby } }
        set { lock.withLock { standby = newValue } }
    }

    /// On the standby's server side: the request passed to the active and its answer, or nil for those it answers.
    func relayIfStandby(_ request: ManagementRequest) async -> ManagementResponse? {
        guard isStandby else { return nil }
        switch request.route {
        case .status, .metrics, .listAudit, .authenticationLimited: return nil
        default: break
        }
        // The store's calls wait on its event loop: never on a Swift concurrency thread.
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: self.relayWaiting(request)) }
        }
    }

    private func relayWaiting(_ request: ManagementRequest) -> ManagementResponse {
        let query = (try? JSONSerialization.data(withJSONObject: request.query, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) }
        do {
            let id = try store.relay(
                RelayedRequest(
                    id: 0, route: request.route.rawValue, parameter: request.parameter, query: query ?? "{}", body: Array(request.body),
                    administrator: request.administrator.name, role: request.administrator.role.rawValue))
            let deadline = Date().addingTimeInterval(Self.patience)
            while Date() < deadline {
                if let answer = try store.relayedAnswer(id) {
                    return ManagementResponse(status: answer.status, body: answer.body, contentType: answer.contentType)
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return .error(504, "node \(node) is the standby; the active node did not carry out the request within \(Int(Self.patience)) s")
        } catch {
            return .error(503, "node \(node) is the standby and cannot pass the request to the active node through the database: \(error)")
        }
    }

    /// On the active's lease thread: what the standby passed on, carried out by the loop like any request, and the
    /// answers written back.
    func serveRelayed(through mailbox: ManagementMailbox) {
        guard let pending = try? store.unansweredRelayedRequests(maximumAge: Self.patience * 2), !pending.isEmpty else { return }
        let started = Date()
        // Those left after half a second wait for the next renewal: this thread must renew the lease in time.
        for relayed in pending where Date().timeIntervalSince(started) < 0.5 {
            var response = ManagementResponse.error(400, "request '\(relayed.route)' relayed by the standby is not one this node knows")
            if let route = ManagementRequest.Route(rawValue: relayed.route), let role = Administrator.Role(rawValue: relayed.role) {
                let query =
                    (try? JSONSerialization.jsonObject(with: Data(relayed.query.utf8)) as? [String: String]) ?? [:]
                let request = ManagementRequest(
                    route: route, parameter: relayed.parameter, query: query, body: Data(relayed.body),
                    administrator: Administrator(name: relayed.administrator, role: role))
                let answer = Answer()
                let done = DispatchSemaphore(value: 0)
                Task {
                    answer.set(await mailbox.submit(request, relaying: false))
                    done.signal()
                }
                // Bounded well below the claim interval's slack: this thread also renews the lease.
                if done.wait(timeout: .now() + 0.5) == .success, let given = answer.value {
                    response = given
                } else {
                    response = .error(504, "node \(node), the active, did not answer within 0.5 s (it may still carry the request out)")
                }
            }
            try? store.answerRelayed(relayed.id, status: response.status, body: response.body, contentType: response.contentType)
        }
    }
}

/// The loop's answer, handed from the task that waited for it.
private final class Answer: @unchecked Sendable {
    private let lock = NSLock()
    private var response: ManagementResponse?
    func set(_ value: ManagementResponse) { lock.withLock { response = value } }
    var value: ManagementResponse? { lock.withLock { response } }
}
