import Foundation
import ManagementAPI
import XCTest

@testable import Management

/// The CLI's request bodies: JSON an administrator wrote, as the document's types.
final class AdministratorJSONTests: XCTestCase {
    typealias Policy = Operations.ReplacePolicy.Input.Body.JsonPayload

    func testAPolicyFileBecomesTheDocumentsType() throws {
        let policy: Policy = try AdministratorJSON.decode(
            Data(#"{"rules": [{"source": "192.0.2.0/24", "action": "protect", "profile": "site"}], "default": "discard"}"#.utf8), "policy.json")
        XCTAssertEqual(policy.rules.first?.source, "192.0.2.0/24")
        XCTAssertEqual(policy.rules.first?.action, .protect)
        XCTAssertEqual(policy._default, .discard)
    }

    func testAMisspeltKeyIsRefusedByNameNotDropped() {
        XCTAssertThrowsError(
            try AdministratorJSON.decode(Data(#"{"rules": [{"destinaton": "198.51.100.7/32", "action": "discard"}]}"#.utf8), "policy.json") as Policy
        ) { XCTAssertEqual("\($0)", "policy.json: unknown key rules.0.destinaton") }
        XCTAssertThrowsError(try AdministratorJSON.decode(Data(#"{"rules": [{"action": "maybe"}]}"#.utf8), "policy.json") as Policy) {
            XCTAssertTrue("\($0)".hasPrefix("policy.json: rules.Index 0.action"), "\($0)")
        }
        XCTAssertThrowsError(try AdministratorJSON.decode(Data(#"{"default": "bypass"}"#.utf8), "policy.json") as Policy) {
            XCTAssertEqual("\($0)", "policy.json: rules is required")
        }
    }
}
