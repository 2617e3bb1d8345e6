import XCTest

@testable import Management

/// The console's files as the listener serves them: its own script and style only, and no markup made from data.
final class ConsoleFilesTests: XCTestCase {
    func testThePageLoadsOnlyTheListenersOwnFiles() {
        let paths = ManagementServer.consoleFiles.map(\.path)
        XCTAssertEqual(paths, ["/ui/", "/ui/console.js", "/ui/console.css"])
        let page = ConsolePage.html
        XCTAssertTrue(page.contains(#"<script src="/ui/console.js" defer></script>"#))
        XCTAssertTrue(page.contains(#"<link rel="stylesheet" href="/ui/console.css">"#))
        for file in ManagementServer.consoleFiles {
            // SVG's namespace is a name, not a place anything is loaded from.
            let body = file.body.replacingOccurrences(of: "'http://www.w3.org/2000/svg'", with: "")
            XCTAssertFalse(body.contains("http://") || body.contains("https://"), "\(file.path) names nothing outside the listener")
        }
    }

    func testTheScriptPutsWhatTheAPIReturnsOnThePageAsTextOnly() {
        let script = ConsoleScript.javascript
        for unsafe in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
            XCTAssertFalse(script.contains(unsafe), "the script uses \(unsafe)")
        }
    }

    func testTheFilesGoOutWithAPolicyThatAllowsNothingElse() {
        let headers = ManagementServer.consoleHeaders(contentType: "text/html; charset=utf-8")
        let policy = headers[.contentSecurityPolicy] ?? ""
        XCTAssertTrue(policy.hasPrefix("default-src 'none'"))
        for directive in ["script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
            XCTAssertTrue(policy.contains(directive), directive)
        }
        XCTAssertEqual(headers[.xContentTypeOptions], "nosniff")
        XCTAssertEqual(headers[.cacheControl], "no-store")
    }
}
