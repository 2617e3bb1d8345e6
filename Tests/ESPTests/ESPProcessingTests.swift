import IKEv2
import Packets
import XCTest

@testable import ESP

final class ESPProcessingTests: XCTestCase {
    func testRoundTripEverySuiteModeAndFamily() throws {
        for suite in allSuites {
            for mode in [ChildMode.tunnel, .transport] {
                for ipv6 in [false, true] {
                    for encapsulated in [true, false] {
                        let (outbound, inbound) = try saPair(suite: suite, mode: mode, ipv6Outer: ipv6, encapsulated: encapsulated)
                        for length in [0, 1, 63, 1400] {
                            let inner = udpPacket(ipv6: ipv6, payloadLength: length)
                            let packet = try outbound.encapsulate(inner)
                            let outer = try IPPacketView(packet.bytes)
                            XCTAssertEqual(outer.version, ipv6 ? 6 : 4)
                            XCTAssertEqual(outer.upperProtocol, encapsulated ? IPProtocolNumber.udp : IPProtocolNumber.esp)
                            XCTAssertEqual(outer.totalLength, packet.bytes.count)
                            let opened = try inbound.decapsulate(packet.espBytes)
                            let label = "\(suite.name) \(mode) v6=\(ipv6) udp=\(encapsulated) len=\(length)"
                            switch mode {
                            case .tunnel: XCTAssertEqual(opened, inner, label)
                            case .transport:
                                let view = try IPPacketView(opened)
                                XCTAssertEqual(Array(opened[view.upperOffset...]), Array(inner[(ipv6 ? 40 : 20)...]), label)
                            }
                        }
                        XCTAssertEqual(inbound.counters.packets, 4)
                        XCTAssertEqual(outbound.counters.packets, 4)
                    }
                }
            }
        }
    }

    func testUDPChecksumOfIPv6EncapsulationIsValid() throws {
        let (outbound, _) = try saPair(suite: gcm128, ipv6Outer: true)
        let packet = try outbound.encapsulate(udpPacket())
        let udp = packet.bytes[40...]
        var sum = InternetChecksum.add(packet.bytes[8..<40])
        sum &+= UInt32(IPProtocolNumber.udp) &+ UInt32(udp.count)
        sum = InternetChecksum.add(udp, to: sum)
        XCTAssertEqual(InternetChecksum.finish(sum), 0, "checksum over pseudo-header and datagram verifies")
    }

    func testReplayedAndOldPacketsAreDroppedWithReasons() throws {
        let (outbound, inbound) = try saPair(suite: gcm256)
        let packets = try (0..<1200).map { _ in try outbound.encapsulate(udpPacket()).espBytes }
        XCTAssertNoThrow(try inbound.decapsulate(packets[1199]))
        // Out of order but within a 1024-packet window: accepted once, then a replay.
        XCTAssertNoThrow(try inbound.decapsulate(packets[1199 - 1023]))
        XCTAssertThrowsError(try inbound.decapsulate(packets[1199 - 1023])) { XCTAssertEqual($0 as? ESPDropReason, .replayed) }
        XCTAssertThrowsError(try inbound.decapsulate(packets[1199])) { XCTAssertEqual($0 as? ESPDropReason, .replayed) }
        let farBehind = try saPair(suite: gcm256, startingSequence: 10_000)
        let late = try farBehind.0.encapsulate(udpPacket()).espBytes
        let early = try (0..<1).map { _ in try saPair(suite: gcm256).0.encapsulate(udpPacket()).espBytes }[0]
        XCTAssertNoThrow(try farBehind.1.decapsulate(late))
        XCTAssertThrowsError(try farBehind.1.decapsulate(early)) { XCTAssertEqual($0 as? ESPDropReason, .behindWindow) }
    }

    func testForgedTruncatedAndUnknownSPIPacketsAreCountedDrops() throws {
        for suite in allSuites {
            let (outbound, inbound) = try saPair(suite: suite)
            var database = SecurityAssociationDatabase()
            database.install(inbound: inbound)
            let good = Array(try outbound.encapsulate(udpPacket()).espBytes)
            for index in [9, good.count / 2, good.count - 1] {
                var forged = good
                forged[index] ^= 0x40
                XCTAssertEqual(database.decapsulate(forged[...]), .failure(.authenticationFailed), "\(suite.name) byte \(index)")
            }
            XCTAssertEqual(database.decapsulate(good.prefix(12)), .failure(.truncated))
            XCTAssertEqual(database.decapsulate([0, 0, 0][...]), .failure(.truncated))
            var otherSPI = good
            otherSPI[3] ^= 1
            XCTAssertEqual(database.decapsulate(otherSPI[...]), .failure(.unknownSPI))
            XCTAssertEqual(database.drops[.authenticationFailed], 3)
            XCTAssertEqual(database.drops[.unknownSPI], 1)
            XCTAssertEqual(database.drops[.truncated], 2)
            // The forged packets did not move the window: the genuine one is still accepted.
            XCTAssertEqual(try database.decapsulate(good[...]).get(), udpPacket())
        }
    }

    func testBadPaddingAndNextHeaderAreRejectedAfterAuthentication() throws {
        let (_, inbound) = try saPair(suite: gcm128)
        func seal(_ plaintext: [UInt8], sequence: UInt32) -> [UInt8] {
            var out: [UInt8] = []
            out.appendBigEndian(UInt32(0x1000_0001))
            out.appendBigEndian(sequence)
            inbound.cipher.seal(
                plaintext: plaintext, cbcIV: [], out: &out, headerStart: 0, spi: 0x1000_0001, sequence: UInt64(sequence), extended: false)
            return out
        }
        let inner = udpPacket()
        XCTAssertThrowsError(try inbound.decapsulate(seal(inner + [9, 9, 2, 4], sequence: 1)[...])) {
            XCTAssertEqual($0 as? ESPDropReason, .badPadding)
        }
        XCTAssertThrowsError(try inbound.decapsulate(seal(inner + [1, 2, 2, 17], sequence: 2)[...])) {
            XCTAssertEqual($0 as? ESPDropReason, .badNextHeader)
        }
        XCTAssertThrowsError(try inbound.decapsulate(seal([1, 2, 2, 59], sequence: 3)[...])) { XCTAssertEqual($0 as? ESPDropReason, .dummyPacket) }
        XCTAssertThrowsError(try inbound.decapsulate(seal(Array(inner.prefix(10)) + [1, 2, 2, 4], sequence: 4)[...])) {
            XCTAssertEqual($0 as? ESPDropReason, .badInnerPacket)
        }
        XCTAssertEqual(try inbound.decapsulate(seal(inner + [1, 2, 2, 4], sequence: 5)[...]), inner)
    }

    func testInnerPacketOutsideTheSelectorsIsDropped() throws {
        let (outbound, inbound) = try saPair(suite: chacha, sourceSelectors: [TrafficSelector(cidr: "10.9.0.0/16")!])
        // The sender's selectors are the same object here; send anyway by building with a permissive outbound.
        let (permissive, _) = try saPair(suite: chacha)
        _ = outbound
        XCTAssertThrowsError(try inbound.decapsulate(try permissive.encapsulate(udpPacket()).espBytes)) {
            XCTAssertEqual($0 as? ESPDropReason, .selectorMismatch)
        }
    }

    /// ICMP selectors hold type and code as one value (RFC 7296 section 3.13.1); a packet is judged by its own
    /// type and code, whichever side's selector carries them.
    func testICMPSelectorsMatchTypeAndCode() throws {
        func icmp(_ type: UInt8, _ code: UInt8) -> [UInt8] {
            var packet: [UInt8] = []
            IPHeaderBuilder.appendIP(
                to: &packet, source: [10, 2, 0, 2], destination: [10, 1, 0, 1], protocolNumber: IPProtocolNumber.icmp, payloadLength: 8)
            return packet + [type, code, 0, 0, 0, 1, 0, 1]
        }
        func covered(_ local: String, _ remote: String, _ type: UInt8, _ code: UInt8) throws -> Bool {
            let (sa, _) = try saPair(
                suite: chacha, sourceSelectors: [try TrafficSelector(text: local)], destinationSelectors: [try TrafficSelector(text: remote)])
            let packet = icmp(type, code)
            let view = try IPPacketView(packet)
            return sa.parameters.covers(
                source: packet[view.sourceRange], destination: packet[view.destinationRange], ipProtocol: view.upperProtocol,
                ports: view.ports(in: packet))
        }
        // Echo request and reply on both sides.
        XCTAssertTrue(try covered("10.2.0.2[icmp/0-8(255)]", "10.1.0.1[icmp/0-8(255)]", 8, 0))
        XCTAssertTrue(try covered("10.2.0.2[icmp/0-8(255)]", "10.1.0.1[icmp/0-8(255)]", 0, 0))
        XCTAssertFalse(try covered("10.2.0.2[icmp/0-8(255)]", "10.1.0.1[icmp/0-8(255)]", 13, 0))
        // strongSwan's [icmp/8] on one side only: type 8, code 0.
        XCTAssertTrue(try covered("10.2.0.2[icmp]", "10.1.0.1[icmp/8]", 8, 0))
        XCTAssertFalse(try covered("10.2.0.2[icmp]", "10.1.0.1[icmp/8]", 8, 1))
        XCTAssertFalse(try covered("10.2.0.2[icmp/8]", "10.1.0.1[icmp]", 0, 8))
        XCTAssertTrue(try covered("10.2.0.2[icmp/3(4)]", "10.1.0.1", 3, 4))
        // A selector without ports takes every type.
        XCTAssertTrue(try covered("10.2.0.2[icmp]", "10.1.0.1[icmp]", 13, 0))
    }

    func testSequenceNumberOverflowStopsSending() throws {
        let (outbound, _) = try saPair(suite: gcm128, startingSequence: UInt64(UInt32.max) - 1)
        XCTAssertNoThrow(try outbound.encapsulate(udpPacket()))
        XCTAssertThrowsError(try outbound.encapsulate(udpPacket())) { XCTAssertEqual($0 as? ESPDropReason, .sequenceExhausted) }
        let esn = ChildCipherSuite(encryption: .aesGCM16(keyBits: 128), integrity: nil, group: nil, extendedSequenceNumbers: true)
        let (extended, inbound) = try saPair(suite: esn, startingSequence: UInt64(UInt32.max) - 1)
        inbound.window.accept(UInt64(UInt32.max) - 2)
        for _ in 0..<4 { XCTAssertNoThrow(try inbound.decapsulate(try extended.encapsulate(udpPacket()).espBytes)) }
        XCTAssertEqual(inbound.window.highest, UInt64(UInt32.max) + 3, "the 32-bit counter wrapped and the receiver followed")
    }

    func testLifetimesReportSoftThenHardAndHardStopsTraffic() throws {
        let (outbound, inbound) = try saPair(suite: gcm128, lifetime: ESPLifetime(softPackets: 2, hardPackets: 3, softSeconds: 50, hardSeconds: 100))
        XCTAssertEqual(outbound.lifetimeState(now: 0), .valid)
        for _ in 0..<2 { _ = try inbound.decapsulate(try outbound.encapsulate(udpPacket()).espBytes) }
        XCTAssertEqual(outbound.lifetimeState(now: 0), .soft)
        XCTAssertEqual(inbound.lifetimeState(now: 0), .soft)
        _ = try outbound.encapsulate(udpPacket())
        XCTAssertEqual(outbound.lifetimeState(now: 0), .hard)
        XCTAssertThrowsError(try outbound.encapsulate(udpPacket())) { XCTAssertEqual($0 as? ESPDropReason, .hardLifetimeReached) }
        let (timed, _) = try saPair(suite: gcm128, lifetime: ESPLifetime(softSeconds: 50, hardSeconds: 100))
        XCTAssertEqual(timed.lifetimeState(now: 60), .soft)
        XCTAssertEqual(timed.lifetimeState(now: 100), .hard)
    }

    func testExtendedSequenceInferenceFollowsAppendixA() {
        var window = ReplayWindow(size: 1024)
        XCTAssertEqual(window.inferExtended(low: 5), 5)
        window.accept((7 << 32) | 2000)
        XCTAssertEqual(window.inferExtended(low: 1500), (7 << 32) | 1500)
        XCTAssertEqual(window.inferExtended(low: 100), (8 << 32) | 100, "below the window: next block")
        window.accept((8 << 32) | 10)
        XCTAssertEqual(window.inferExtended(low: UInt32.max - 5), (7 << 32) | UInt64(UInt32.max - 5), "window straddles the wrap")
        XCTAssertEqual(window.inferExtended(low: 20), (8 << 32) | 20)
    }

    func testDatabaseSelectsNewestOutboundSAForAFlowAndRemovesByDirection() throws {
        var database = SecurityAssociationDatabase()
        let (old, oldInbound) = try saPair(suite: gcm128, spi: 1)
        let (new, _) = try saPair(suite: gcm128, spi: 2)
        database.install(outbound: old)
        database.install(inbound: oldInbound)
        XCTAssertEqual(database.outboundSA(for: udpPacket())?.parameters.spi, ChildSPI(1))
        database.install(outbound: new)
        XCTAssertEqual(database.outboundSA(for: udpPacket())?.parameters.spi, ChildSPI(2), "make-before-break: the new SA takes over")
        XCTAssertTrue(database.remove(spi: ChildSPI(2), direction: .outbound))
        XCTAssertFalse(database.remove(spi: ChildSPI(2), direction: .outbound))
        XCTAssertTrue(database.remove(spi: ChildSPI(1), direction: .inbound))
        database.flush()
        XCTAssertNil(database.outboundSA(for: udpPacket()))
    }

    func testUDPPort4500Classification() {
        XCTAssertEqual(UDPEncapsulatedKind(payload: [0xff][...]), .keepalive)
        XCTAssertEqual(UDPEncapsulatedKind(payload: ([0, 0, 0, 0] + Array(repeating: 1, count: 28))[...]), .ike)
        XCTAssertEqual(UDPEncapsulatedKind(payload: ([0, 0, 0, 1] + Array(repeating: 1, count: 28))[...]), .esp)
        XCTAssertEqual(UDPEncapsulatedKind(payload: [1, 2][...]), .malformed)
    }
}
