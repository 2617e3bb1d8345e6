import XCTest

@testable import IKEv2

/// The system's randomness, read once per request: every length comes back whole, and no two draws agree.
final class SystemRandomTests: XCTestCase {
    func testEveryLengthComesBackWholeAndDrawsDiffer() {
        let random = SystemRandom()
        XCTAssertEqual(random.bytes(0), [])
        for count in [1, 4, 8, 32, 255, 256, 257, 4096] {
            let a = random.bytes(count)
            let b = random.bytes(count)
            XCTAssertEqual(a.count, count)
            if count >= 8 { XCTAssertNotEqual(a, b, "two draws of \(count) octets") }
        }
        // Octets spread over all values: 64 KiB from a source stuck on a few values would miss most of them.
        XCTAssertEqual(Set(random.bytes(65_536)).count, 256)
    }
}
