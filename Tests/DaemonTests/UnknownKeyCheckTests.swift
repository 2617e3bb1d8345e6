import ConfigurationFiles
import Foundation
import XCTest

/// The check behind every configuration file: values and errors are JSONDecoder's, and a key that no reader
/// of the file asks for is named with its path.
final class UnknownKeyCheckTests: XCTestCase {
    struct Child: Decodable {
        var name: String
        var size: Int?
    }
    struct Root: Decodable {
        var children: [Child]
        var settings: [String: Int]?
        var flag: Bool?
    }
    struct Other: Decodable {
        struct Settings: Decodable { var window: Int? }
        var settings: Settings?
    }

    func testKeysNoReaderAsksForAreNamedWithTheirPaths() throws {
        let text = #"{"children": [{"name": "a"}, {"name": "b", "sise": 3}], "flag": true, "colour": "red", "nested": {"x": 1}}"#
        let check = UnknownKeyCheck(data: Data(text.utf8))
        let root = try check.decode(Root.self)
        XCTAssertEqual(root.children.map(\.name), ["a", "b"])
        XCTAssertEqual(root.flag, true)
        XCTAssertEqual(check.unknownKeys, ["children[1].sise", "colour", "nested"])
        XCTAssertThrowsError(try check.refuseUnknownKeys(in: "configuration")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("unknown keys children[1].sise, colour, nested"), text)
            XCTAssertTrue(text.contains("children[1] may have: name, size"), text)
        }
    }

    func testTwoReadersOfOneFileShareTheKeysTheyKnowAndDictionariesTakeAnyKey() throws {
        let text = #"{"children": [], "settings": {"window": 4, "any": 1}}"#
        let check = UnknownKeyCheck(data: Data(text.utf8))
        try check.decode(Root.self)
        XCTAssertEqual(try check.decode(Other.self).settings?.window, 4)
        XCTAssertEqual(check.unknownKeys, [], "a [String: Int] reads every key; Other reads window too")
        XCTAssertNoThrow(try check.refuseUnknownKeys(in: "configuration"))

        let typo = UnknownKeyCheck(data: Data(#"{"settings": {"windw": 4}}"#.utf8))
        try typo.decode(Other.self)
        XCTAssertEqual(typo.unknownKeys, ["settings.windw"])
    }

    func testValuesAndErrorsAreJSONDecodersOwn() throws {
        for text in [#"{"children": [{"name": 1}]}"#, #"{"children": [{"size": 1}]}"#, #"{"flag": 1, "children": []}"#, #"["#] {
            let plain = Result { try JSONDecoder().decode(Root.self, from: Data(text.utf8)) }
            let checked = Result { try UnknownKeyCheck(data: Data(text.utf8)).decode(Root.self) }
            guard case .failure(let expected) = plain, case .failure(let error) = checked else {
                return XCTFail("both refuse \(text)")
            }
            // What an operator reads: the same message, naming the same key.
            XCTAssertEqual((error as? DecodingError)?.readableDescription, (expected as? DecodingError)?.readableDescription, text)
            XCTAssertNotNil(error as? DecodingError)
        }
    }
}
