import Foundation
import XCTest

@testable import IKEEndpoint

/// The endpoint's socket settings: defaults, values read, and values out of range refused with the key named.
final class EndpointSocketSettingsTests: XCTestCase {
    func testDefaultsValuesAndRefusals() throws {
        let none = try EndpointSocketSettings.parse(Data(#"{"connections": []}"#.utf8))
        XCTAssertEqual(none.receiveBuffer, 8 << 20)
        XCTAssertEqual(none.initiationWindow, 64)
        XCTAssertEqual(none.workers, 1)
        XCTAssertEqual(none.receiveCoalescing, 0.01)
        let set = try EndpointSocketSettings.parse(
            Data(#"{"settings": {"socket_receive_buffer": 1048576, "initiation_window": 8, "workers": 2, "receive_coalescing": 0}}"#.utf8))
        XCTAssertEqual(set.receiveBuffer, 1 << 20)
        XCTAssertEqual(set.initiationWindow, 8)
        XCTAssertEqual(set.workers, 2)
        XCTAssertEqual(set.receiveCoalescing, 0)
        for (text, message) in [
            (#"{"settings": {"socket_receive_buffer": 100}}"#, "settings.socket_receive_buffer: 100 is not between 65536 and 1073741824 octets"),
            (#"{"settings": {"initiation_window": 0}}"#, "settings.initiation_window: 0 is not between 1 and 100000"),
            (#"{"settings": {"workers": 65}}"#, "settings.workers: 65 is not between 1 and 64"),
            (#"{"settings": {"receive_coalescing": 0.5}}"#, "settings.receive_coalescing: 0.5 is not between 0 and 0.1 seconds"),
            (#"{"settings": {"receive_coalescing": -1}}"#, "settings.receive_coalescing: -1.0 is not between 0 and 0.1 seconds")
        ] {
            XCTAssertThrowsError(try EndpointSocketSettings.parse(Data(text.utf8))) { error in
                XCTAssertEqual("\(error)", message)
            }
        }
    }
}
