import Foundation
import ManagementAPI
import OpenAPIRuntime

/// The operations of docs/openapi.yaml, as the generated `APIProtocol` asks for them: each call goes through the
/// mailbox to the daemon's loop as a `ManagementRequest`, and the loop's answer comes back as the document's response
/// for its status. A status the document does not list for the operation, or a body its schema does not describe, is
/// `AnswerOutsideDocument`, never a silent pass-through. Authentication happened before (`AuthenticationMiddleware`).
struct DaemonAPI: APIProtocol {
    let mailbox: ManagementMailbox

    /// Hands the call to the daemon: the route, its path parameter and query, the body as sent.
    private func ask(_ route: ManagementRequest.Route, _ parameter: String? = nil, query: [String: String?] = [:]) async throws
        -> ManagementResponse
    {
        guard let call = APICall.current, let administrator = call.administrator else {
            throw AnswerOutsideDocument(operation: route.rawValue, status: 0, reason: "reached without an authenticated administrator")
        }
        return await mailbox.submit(
            ManagementRequest(
                route: route, parameter: parameter, query: query.compactMapValues { $0 }, body: call.body, administrator: administrator))
    }

    func status(_ input: Operations.Status.Input) async throws -> Operations.Status.Output {
        try await ask(.status).documented(as: "status", [200: { .ok(.init(body: .json(try $0.decoded()))) }])
    }

    func metrics(_ input: Operations.Metrics.Input) async throws -> Operations.Metrics.Output {
        try await ask(.metrics).documented(as: "metrics", [200: { .ok(.init(body: .plainText(HTTPBody($0.body)))) }])
    }

    func listPolicies(_ input: Operations.ListPolicies.Input) async throws -> Operations.ListPolicies.Output {
        try await ask(.listPolicies).documented(as: "listPolicies", [200: { .ok(.init(body: .json(try $0.decoded()))) }])
    }

    func addPolicy(_ input: Operations.AddPolicy.Input) async throws -> Operations.AddPolicy.Output {
        try await ask(.addPolicy).documented(
            as: "addPolicy",
            [
                201: { .created(.init(body: .json(try $0.decoded()))) }, 400: { .badRequest(.init(body: .json(try $0.decoded()))) },
                503: { .serviceUnavailable(.init(body: .json(try $0.decoded()))) }
            ])
    }

    func replacePolicy(_ input: Operations.ReplacePolicy.Input) async throws -> Operations.ReplacePolicy.Output {
        try await ask(.replacePolicy).documented(
            as: "replacePolicy",
            [
                200: { .ok(.init(body: .json(try $0.decoded()))) }, 400: { .badRequest(.init(body: .json(try $0.decoded()))) },
                503: { .serviceUnavailable(.init(body: .json(try $0.decoded()))) }
            ])
    }

    func revertPolicy(_ input: Operations.RevertPolicy.Input) async throws -> Operations.RevertPolicy.Output {
        try await ask(.revertPolicy).documented(
            as: "revertPolicy",
            [
                200: { .ok(.init(body: .json(try $0.decoded()))) }, 422: { .unprocessableContent(.init(body: .json(try $0.decoded()))) },
                503: { .serviceUnavailable(.init(body: .json(try $0.decoded()))) }
            ])
    }

    func listProfiles(_ input: Operations.ListProfiles.Input) async throws -> Operations.ListProfiles.Output {
        try await ask(.listProfiles).documented(as: "listProfiles", [200: { .ok(.init(body: .json(try $0.decoded()))) }])
    }

    func deletePolicy(_ input: Operations.DeletePolicy.Input) async throws -> Operations.DeletePolicy.Output {
        try await ask(.deletePolicy, String(input.path.position)).documented(
            as: "deletePolicy",
            [
                200: { .ok(.init(body: .json(try $0.decoded()))) }, 400: { .badRequest(.init(body: .json(try $0.decoded()))) },
                404: { .notFound(.init(body: .json(try $0.decoded()))) }
            ])
    }

    func listTerminals(_ input: Operations.ListTerminals.Input) async throws -> Operations.ListTerminals.Output {
        try await ask(.listTerminals).documented(as: "listTerminals", [200: { .ok(.init(body: .json(try $0.decoded()))) }])
    }

    func addTerminal(_ input: Operations.AddTerminal.Input) async throws -> Operations.AddTerminal.Output {
        try await ask(.addTerminal).documented(
            as: "addTerminal",
            [
                201: { .created(.init(body: .json(try $0.decoded()))) }, 400: { .badRequest(.init(body: .json(try $0.decoded()))) },
                409: { .conflict(.init(body: .json(try $0.decoded()))) }, 503: { .serviceUnavailable(.init(body: .json(try $0.decoded()))) }
            ])
    }

    func removeTerminal(_ input: Operations.RemoveTerminal.Input) async throws -> Operations.RemoveTerminal.Output {
        try await ask(.removeTerminal, String(input.path.terminal)).documented(
            as: "removeTerminal",
            [
                202: { .accepted(.init(body: .json(try $0.decoded()))) }, 400: { .badRequest(.init(body: .json(try $0.decoded()))) },
                404: { .notFound(.init(body: .json(try $0.decoded()))) }, 503: { .serviceUnavailable(.init(body: .json(try $0.decoded()))) }
            ])
    }

    func approveTerminal(_ input: Operations.ApproveTerminal.Input) async throws -> Operations.ApproveTerminal.Output {
        try await ask(.approveTerminal, input.path.terminal).documented(
            as: "approveTerminal",
            [
                200: { .ok(.init(body: .json(try $0.decoded()))) }, 400: { .badRequest(.init(body: .json(try $0.decoded()))) },
                404: { .notFound(.init(body: .json(try $0.decoded()))) }, 503: { .serviceUnavailable(.init(body: .json(try $0.decoded()))) }
            ])
    }

    func listSAs(_ input: Operations.ListSAs.Input) async throws -> Operations.ListSAs.Output {
        try await ask(.listSAs, query: ["terminal": input.query.terminal, "peer": input.query.peer]).documented(
            as: "listSAs",
            [200: { .ok(.init(body: .json(try $0.decoded()))) }, 400: { .badRequest(.init(body: .json(try $0.decoded()))) }])
    }

    func flushSAs(_ input: Operations.FlushSAs.Input) async throws -> Operations.FlushSAs.Output {
        try await ask(.flushSAs).documented(as: "flushSAs", [202: { .accepted(.init(body: .json(try $0.decoded()))) }])
    }

    func reloadCredentials(_ input: Operations.ReloadCredentials.Input) async throws -> Operations.ReloadCredentials.Output {
        try await ask(.reloadCredentials).documented(
            as: "reloadCredentials",
            [200: { .ok(.init(body: .json(try $0.decoded()))) }, 422: { .unprocessableContent(.init(body: .json(try $0.decoded()))) }])
    }

    func listAudit(_ input: Operations.ListAudit.Input) async throws -> Operations.ListAudit.Output {
        try await ask(.listAudit).documented(
            as: "listAudit",
            [200: { .ok(.init(body: .json(try $0.decoded()))) }, 503: { .serviceUnavailable(.init(body: .json(try $0.decoded()))) }])
    }

    func listTraffic(_ input: Operations.ListTraffic.Input) async throws -> Operations.ListTraffic.Output {
        try await ask(.listTraffic, query: ["limit": input.query.limit.map(String.init), "terminal": input.query.terminal]).documented(
            as: "listTraffic",
            [200: { .ok(.init(body: .json(try $0.decoded()))) }, 400: { .badRequest(.init(body: .json(try $0.decoded()))) }])
    }

    func showSA(_ input: Operations.ShowSA.Input) async throws -> Operations.ShowSA.Output {
        try await ask(.showSA, input.path.spi).documented(
            as: "showSA", [200: { .ok(.init(body: .json(try $0.decoded()))) }, 404: { .notFound(.init(body: .json(try $0.decoded()))) }])
    }

    func deleteSA(_ input: Operations.DeleteSA.Input) async throws -> Operations.DeleteSA.Output {
        try await ask(.deleteSA, input.path.spi).documented(
            as: "deleteSA",
            [
                202: { .accepted(.init(body: .json(try $0.decoded()))) }, 400: { .badRequest(.init(body: .json(try $0.decoded()))) },
                404: { .notFound(.init(body: .json(try $0.decoded()))) }
            ])
    }
}

extension ManagementResponse {
    /// The answer as the response the document lists for its status (`responses`, by status), or
    /// `AnswerOutsideDocument`.
    func documented<Output>(as operation: String, _ responses: [Int: (ManagementResponse) throws -> Output]) throws -> Output {
        guard let respond = responses[status] else {
            throw AnswerOutsideDocument(
                operation: operation, status: status,
                reason: "the document lists \(responses.keys.sorted().map(String.init).joined(separator: ", "))", body: String(body.prefix(200)))
        }
        do { return try respond(self) } catch let error as DecodingError {
            throw AnswerOutsideDocument(
                operation: operation, status: status, reason: ErrorAnswerMiddleware.reason(error), body: String(body.prefix(200)))
        }
    }

    /// The JSON body as the document's type for it.
    func decoded<Body: Decodable>() throws -> Body { try JSONDecoder().decode(Body.self, from: Data(body.utf8)) }
}
