import Foundation
import XCTest

extension XCTestCase {
    /// Runs python3 with `script` and `arguments` and returns its output lines: what an independent
    /// implementation (Python's `cryptography`) computes, for tests to compare with ours. A missing interpreter
    /// or library (`needs` says which) fails the test and says so, rather than skipping it.
    func runPython(_ script: String, arguments: [String], needs: String = "cryptography") throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script] + arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let problem = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            XCTFail("python3 with \(needs) is needed for this check (scripts/test.sh installs it): \(problem)")
            return []
        }
        return text.split(separator: "\n").map(String.init)
    }
}
