import Foundation

/// A request body from JSON an administrator wrote (a rule, a policy file) as the document's type, for the generated
/// client. The type keeps only the keys the document names, so a key it does not name is refused here, by name: a
/// misspelt key must not vanish on its way to the daemon, which would have refused it.
package enum AdministratorJSON {
    package struct Refusal: Error, CustomStringConvertible {
        package var description: String
    }

    package static func decode<Body: Codable>(_ data: Data, _ what: String) throws -> Body {
        let body: Body
        do { body = try JSONDecoder().decode(Body.self, from: data) } catch let error as DecodingError {
            throw Refusal(description: "\(what): \(ErrorAnswerMiddleware.reason(error))")
        }
        let given = try JSONSerialization.jsonObject(with: data)
        let kept = try JSONSerialization.jsonObject(with: JSONEncoder().encode(body))
        let unknown = keys(in: given, missingFrom: kept, at: "")
        guard unknown.isEmpty else {
            throw Refusal(description: "\(what): unknown key\(unknown.count == 1 ? "" : "s") \(unknown.joined(separator: ", "))")
        }
        return body
    }

    /// The keys of `given` (at any depth, as dotted paths) that `kept` lacks; a key given as null counts as absent.
    static func keys(in given: Any, missingFrom kept: Any?, at path: String) -> [String] {
        switch given {
        case let object as [String: Any]:
            let keptObject = kept as? [String: Any] ?? [:]
            return object.keys.sorted().flatMap { key -> [String] in
                guard let value = object[key], !(value is NSNull) else { return [] }
                guard let inner = keptObject[key] else { return [path + key] }
                return keys(in: value, missingFrom: inner, at: path + key + ".")
            }
        case let list as [Any]:
            let keptList = kept as? [Any] ?? []
            return list.indices.flatMap { keys(in: list[$0], missingFrom: $0 < keptList.count ? keptList[$0] : nil, at: path + "\($0).") }
        default: return []
        }
    }
}
