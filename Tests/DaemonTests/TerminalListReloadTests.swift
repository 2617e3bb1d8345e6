import IKEv2
import Packets
import Proxy
import XCTest

@testable import Daemon

/// A reload takes the file's terminal list: new ones enrolled, gone ones removed, changed ones both, those
/// the management API decided left alone; the lines say which and why, never the key.
final class TerminalListReloadTests: XCTestCase {
    let key1 = KeyMaterial(Array(repeating: 0x11, count: 32)), key2 = KeyMaterial(Array(repeating: 0x22, count: 32))
    let mac = MACAddress(text: "02:00:00:00:d0:02")!

    func entry(_ id: UInt64, _ address: String, _ key: KeyMaterial, port: UInt16 = 9500) -> TerminalEntry {
        TerminalEntry(address: IPAddress(address)!, terminalID: id, enrollmentKey: key, keyDeliveryPort: port)
    }

    func plan(
        _ old: [TerminalEntry], _ new: [TerminalEntry], oldMACs: [MACAddress: MACEnrollment] = [:],
        newMACs: [MACAddress: MACEnrollment] = [:], managed: Set<UInt64> = []
    ) -> TerminalListReload.Plan {
        TerminalListReload.plan(
            old: TerminalListReload.definitions(terminals: old, enrollments: oldMACs),
            new: TerminalListReload.definitions(terminals: new, enrollments: newMACs), managedOverAPI: managed)
    }

    func testAnUnchangedListChangesNothing() {
        let list = [entry(1, "192.0.2.2", key1), entry(1, "2001:db8::2", key1), entry(2, "192.0.2.3", key2)]
        let result = plan(list, list.reversed())
        XCTAssertEqual(result.remove, [])
        XCTAssertEqual(result.enroll, [])
        XCTAssertEqual(result.lines, ["reload: terminals: 0 new, 0 removed, 0 changed, 2 unchanged"])
    }

    func testNewGoneAndChangedTerminals() {
        let result = plan(
            [entry(1, "192.0.2.2", key1), entry(2, "192.0.2.3", key2), entry(3, "192.0.2.4", key1), entry(4, "192.0.2.5", key1)],
            [entry(1, "192.0.2.2", key2), entry(3, "192.0.2.40", key1), entry(4, "192.0.2.5", key1, port: 9600), entry(5, "192.0.2.6", key2)],
            oldMACs: [:], newMACs: [mac: MACEnrollment(terminalID: 6, enrollmentKey: key1)])
        XCTAssertEqual(result.remove, [1, 2, 3, 4])
        XCTAssertEqual(result.enroll, [1, 3, 4, 5, 6])
        XCTAssertEqual(
            result.lines,
            [
                "reload: terminal 1: its enrollment key changed: its SAs deleted, enrolled anew",
                "reload: terminal 2 (192.0.2.3) is gone from the file: removed, its SAs deleted",
                "reload: terminal 3: its addresses changed (192.0.2.4 -> 192.0.2.40): its SAs deleted, enrolled anew",
                "reload: terminal 4: its key-delivery port changed: its SAs deleted, enrolled anew",
                "reload: terminal 5 (192.0.2.6) is new: enrolled",
                "reload: terminal 6 (MAC 02:00:00:00:d0:02) is new: enrolled",
                "reload: terminals: 2 new, 1 removed, 3 changed, 0 unchanged"
            ])
        XCTAssertFalse(result.lines.joined().contains(key1.hexString), "no key in the log")
    }

    func testTerminalsTheAPIDecidedStayAsItSaid() {
        let result = plan([entry(1, "192.0.2.2", key1)], [entry(2, "192.0.2.3", key1)], managed: [1, 2])
        XCTAssertEqual(result.remove, [])
        XCTAssertEqual(result.enroll, [])
        XCTAssertEqual(
            result.lines.first, "reload: terminal 1 changed in the file, but it was added, approved or removed over the management API, which stays")
    }
}
