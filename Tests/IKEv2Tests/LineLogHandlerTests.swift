import Foundation
import IKEServices
import IKEv2
import Logging
import XCTest

/// The processes' log lines through swift-log: text as always, JSON for log collectors, the same facts in each.
final class LineLogHandlerTests: XCTestCase {
    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var taken: [String] = []
        func add(_ line: String) { lock.withLock { taken.append(line) } }
        var all: [String] { lock.withLock { taken } }
    }

    func logger(_ format: LogFormat, into lines: Lines) -> Logger {
        Logger(label: "test") { _ in LineLogHandler(format: format, metadata: ["component": "daemon"], sink: lines.add) }
    }

    func testAJSONLineAndATextLineOfTheSameEventCarryTheSameFacts() throws {
        let text = Lines()
        let json = Lines()
        let event = "IKE SA 4ba33f2af97b25b1_320a36fe49f21cef 'peer:192.0.2.2>192.0.2.1' established with 192.0.2.1:500 (\"quoted\" \\ and a tab\t)"
        for line in [event, "warning: terminal:1: its secret is in the clear in the configuration file"] {
            logger(.text, into: text).line(line)
            logger(.json, into: json).line(line)
        }
        XCTAssertEqual(text.all.count, 2)
        XCTAssertEqual(json.all.count, 2)
        for (index, (textLine, jsonLine)) in zip(text.all, json.all).enumerated() {
            let time = String(textLine.prefix { $0 != " " })
            let message = String(textLine.dropFirst(time.count + 1))
            XCTAssertTrue(time.hasSuffix("Z") && time.count == 20, "the text line starts with its time stamp: \(textLine)")
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(jsonLine.utf8)) as? [String: String], jsonLine)
            XCTAssertEqual(object["time"], time, "the same time stamp")
            XCTAssertEqual(object["message"], message, "the same text, escaped as JSON and read back whole")
            XCTAssertEqual(object["level"], index == 0 ? "info" : "warning", "the level the text says (a warning starts with 'warning:')")
            XCTAssertEqual(object["component"], "daemon", "and the logger's metadata")
            XCTAssertFalse(jsonLine.contains("\n"), "one line")
        }
        XCTAssertEqual(text.all[0], text.all[0].prefix(20) + " " + event, "the text line is the line as it always was")
    }

    /// The lines the engine writes about a datagram carry its peer, our address and its IKE SA: fields of their own in
    /// JSON, the text line unchanged.
    func testTheEnginesLinesCarryTheFactsOfTheirDatagramAsFields() throws {
        let pair = try Fixtures.pair()
        let request = try XCTUnwrap(pair.takeRequest(pair.initiator.initiate(connection: "c", now: 0)))
        // A responder whose only proposal the request does not offer refuses it and says why, about this datagram.
        let responder = IKEEngine(connections: [
            try Fixtures.connection(local: "192.0.2.2", remote: "192.0.2.1", proposal: "aes128-sha256-prfsha256-modp2048", esp: "aes128-sha256")
        ])
        let lines = responder.receive(request.payload, from: request.source, to: request.destination, now: 0).compactMap {
            if case .log(let line) = $0 { line } else { nil }
        }
        let line = try XCTUnwrap(lines.first, "the responder logs the refusal")
        let spi = IKESPI(bytes: Array(request.payload[0..<8]))
        XCTAssertEqual(line.facts.peer, request.source.address.description)
        XCTAssertEqual(line.facts.local, request.destination.address.description)
        XCTAssertEqual(line.facts.ikeSPIs, "\(spi)_0000000000000000")

        let text = Lines()
        let json = Lines()
        logger(.text, into: text).line(line)
        logger(.json, into: json).line(line)
        XCTAssertEqual(String(text.all[0].dropFirst(21)), line.text, "the text line is the text alone, as always")
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.all[0].utf8)) as? [String: String])
        XCTAssertEqual(object["message"], line.text)
        XCTAssertEqual(object["peer"], request.source.address.description)
        XCTAssertEqual(object["local"], request.destination.address.description)
        XCTAssertEqual(object["ike_spis"], "\(spi)_0000000000000000")
        XCTAssertEqual(object["component"], "daemon")
    }

    func testMetadataGivenWithALineJoinsTheLoggersOwn() throws {
        let json = Lines()
        var logger = logger(.json, into: json)
        logger[metadataKey: "node"] = "a"
        logger.info("takeover", metadata: ["fencing": "7"])
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.all[0].utf8)) as? [String: String])
        XCTAssertEqual(object["node"], "a")
        XCTAssertEqual(object["fencing"], "7")
        XCTAssertEqual(object["component"], "daemon")
    }
}
