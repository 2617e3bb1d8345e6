import ESP
import IKEv2
import Packets

/// A flow a terminal has a packet for but no SA: the trigger of an ACQUIRE (RFC 2367 SADB_ACQUIRE).
public struct FlowDescription: Equatable, Sendable, CustomStringConvertible {
    public var source: IPAddress
    public var destination: IPAddress
    public var ipProtocol: UInt8
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public init(source: IPAddress, destination: IPAddress, ipProtocol: UInt8, sourcePort: UInt16 = 0, destinationPort: UInt16 = 0) {
        self.source = source
        self.destination = destination
        self.ipProtocol = ipProtocol
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }
    public var description: String { "\(source):\(sourcePort) -> \(destination):\(destinationPort) proto \(ipProtocol)" }
}

/// One SA's counters as a terminal reports them in STATUS.
public struct SAStatus: Equatable, Sendable {
    public var spi: ChildSPI
    public var direction: ESPDirection
    public var packets: UInt64
    public var bytes: UInt64
    public init(spi: ChildSPI, direction: ESPDirection, packets: UInt64, bytes: UInt64) {
        self.spi = spi
        self.direction = direction
        self.packets = packets
        self.bytes = bytes
    }
}

/// The messages of the key-delivery protocol (docs/key-delivery.md), modelled on PF_KEY (RFC 2367) and
/// on the IKE-less SA model of RFC 9061: the proxy adds, deletes and flushes SAs in the terminal; the
/// terminal asks for SAs (ACQUIRE), reports lifetimes reached (EXPIRE) and its state (STATUS).
public enum KeyDeliveryMessage: Equatable, Sendable {
    case addSA(SecurityAssociationParameters)
    case deleteSA(spi: ChildSPI, direction: ESPDirection)
    case flush
    case acknowledge(sequence: UInt64)
    case acquire(FlowDescription)
    case expire(spi: ChildSPI, direction: ESPDirection, hard: Bool)
    case status([SAStatus])

    public enum Kind: UInt8, Sendable {
        case addSA = 1
        case deleteSA = 2
        case flush = 3
        case acknowledge = 4
        case acquire = 5
        case expire = 6
        case status = 7
    }

    public var kind: Kind {
        switch self {
        case .addSA: return .addSA
        case .deleteSA: return .deleteSA
        case .flush: return .flush
        case .acknowledge: return .acknowledge
        case .acquire: return .acquire
        case .expire: return .expire
        case .status: return .status
        }
    }

    /// Acknowledgements are the only messages not themselves acknowledged.
    public var needsAcknowledgement: Bool { kind != .acknowledge }

    public func encode() -> [UInt8] {
        var out: [UInt8] = [kind.rawValue]
        switch self {
        case .addSA(let sa): Self.encode(sa, into: &out)
        case .deleteSA(let spi, let direction):
            out.appendBigEndian(spi.rawValue)
            out.append(direction == .inbound ? 0 : 1)
        case .flush: break
        case .acknowledge(let sequence): out.appendBigEndian(sequence)
        case .acquire(let flow):
            Self.encode(flow.source, into: &out)
            Self.encode(flow.destination, into: &out)
            out.append(flow.ipProtocol)
            out.appendBigEndian(flow.sourcePort)
            out.appendBigEndian(flow.destinationPort)
        case .expire(let spi, let direction, let hard):
            out.appendBigEndian(spi.rawValue)
            out.append(direction == .inbound ? 0 : 1)
            out.append(hard ? 1 : 0)
        case .status(let entries):
            out.appendBigEndian(UInt16(min(entries.count, 65535)))
            for entry in entries.prefix(65535) {
                out.appendBigEndian(entry.spi.rawValue)
                out.append(entry.direction == .inbound ? 0 : 1)
                out.appendBigEndian(entry.packets)
                out.appendBigEndian(entry.bytes)
            }
        }
        return out
    }

    public static func decode(_ bytes: [UInt8]) throws(KeyDeliveryDecodingError) -> KeyDeliveryMessage {
        var reader = FieldReader(bytes)
        guard let kind = Kind(rawValue: try reader.uint8("type")) else { throw .invalid(field: "type") }
        let message: KeyDeliveryMessage
        switch kind {
        case .addSA: message = .addSA(try decodeSA(&reader))
        case .deleteSA: message = .deleteSA(spi: ChildSPI(try reader.uint32("spi")), direction: try direction(&reader))
        case .flush: message = .flush
        case .acknowledge: message = .acknowledge(sequence: try reader.uint64("sequence"))
        case .acquire:
            let source = try address(&reader, "source")
            let destination = try address(&reader, "destination")
            message = .acquire(
                FlowDescription(
                    source: source, destination: destination, ipProtocol: try reader.uint8("protocol"),
                    sourcePort: try reader.uint16("sourcePort"),
                    destinationPort: try reader.uint16("destinationPort")))
        case .expire:
            let spi = ChildSPI(try reader.uint32("spi"))
            let dir = try direction(&reader)
            let hard = try reader.uint8("hard")
            guard hard <= 1 else { throw .invalid(field: "hard") }
            message = .expire(spi: spi, direction: dir, hard: hard == 1)
        case .status:
            var entries: [SAStatus] = []
            for _ in 0..<Int(try reader.uint16("count")) {
                entries.append(
                    SAStatus(
                        spi: ChildSPI(try reader.uint32("spi")), direction: try direction(&reader),
                        packets: try reader.uint64("packets"), bytes: try reader.uint64("bytes")))
            }
            message = .status(entries)
        }
        guard reader.isAtEnd else { throw .invalid(field: "trailing octets") }
        return message
    }

    // MARK: field codecs

    static func encode(_ address: IPAddress, into out: inout [UInt8]) {
        out.append(UInt8(address.bytes.count))
        out.append(contentsOf: address.bytes)
    }

    static func address(_ reader: inout FieldReader, _ field: String) throws(KeyDeliveryDecodingError) -> IPAddress {
        guard let address = IPAddress(bytes: try reader.shortBytes(field)) else { throw .invalid(field: field) }
        return address
    }

    static func direction(_ reader: inout FieldReader) throws(KeyDeliveryDecodingError) -> ESPDirection {
        switch try reader.uint8("direction") {
        case 0: return .inbound
        case 1: return .outbound
        default: throw .invalid(field: "direction")
        }
    }

    static func encode(_ selectors: [TrafficSelector], into out: inout [UInt8]) {
        out.append(UInt8(min(selectors.count, 255)))
        for ts in selectors.prefix(255) {
            out.append(ts.ipProtocol)
            out.appendBigEndian(ts.startPort)
            out.appendBigEndian(ts.endPort)
            encode(ts.startAddress, into: &out)
            encode(ts.endAddress, into: &out)
        }
    }

    static func selectors(_ reader: inout FieldReader) throws(KeyDeliveryDecodingError) -> [TrafficSelector] {
        var result: [TrafficSelector] = []
        for _ in 0..<Int(try reader.uint8("selector count")) {
            let proto = try reader.uint8("selector protocol")
            let startPort = try reader.uint16("selector start port")
            let endPort = try reader.uint16("selector end port")
            let start = try address(&reader, "selector start")
            let end = try address(&reader, "selector end")
            guard start.isIPv6 == end.isIPv6, start <= end, startPort <= endPort else { throw .invalid(field: "selector") }
            result.append(TrafficSelector(ipProtocol: proto, startPort: startPort, endPort: endPort, startAddress: start, endAddress: end))
        }
        return result
    }

    static func encode(_ sa: SecurityAssociationParameters, into out: inout [UInt8]) {
        out.appendBigEndian(sa.spi.rawValue)
        out.append(sa.direction == .inbound ? 0 : 1)
        out.append(sa.mode == .tunnel ? 0 : 1)
        let encryption = sa.suite.encryption.transform
        out.appendBigEndian(encryption.identifier)
        out.appendBigEndian(encryption.keyLength ?? 0)
        out.appendBigEndian(sa.suite.integrity?.rawValue ?? 0)
        out.append(sa.suite.extendedSequenceNumbers ? 1 : 0)
        out.append(UInt8(sa.encryptionKey.count))
        out.append(contentsOf: sa.encryptionKey.bytes)
        out.append(UInt8(sa.integrityKey.count))
        out.append(contentsOf: sa.integrityKey.bytes)
        encode(sa.tunnelSource, into: &out)
        encode(sa.tunnelDestination, into: &out)
        if let encapsulation = sa.encapsulation {
            out.append(1)
            out.appendBigEndian(encapsulation.sourcePort)
            out.appendBigEndian(encapsulation.destinationPort)
        } else {
            out.append(0)
        }
        encode(sa.sourceSelectors, into: &out)
        encode(sa.destinationSelectors, into: &out)
        let lifetime = sa.lifetime
        for value in [
            lifetime.softBytes, lifetime.hardBytes, lifetime.softPackets, lifetime.hardPackets,
            lifetime.softSeconds.map(UInt64.init), lifetime.hardSeconds.map(UInt64.init)
        ] {
            out.appendBigEndian(value ?? 0)
        }
        out.appendBigEndian(sa.sequenceStart)
    }

    static func decodeSA(_ reader: inout FieldReader) throws(KeyDeliveryDecodingError) -> SecurityAssociationParameters {
        let spi = ChildSPI(try reader.uint32("spi"))
        guard spi.rawValue >= 256 else { throw .invalid(field: "spi") }  // 1-255 are reserved (RFC 4303 2.1)
        let dir = try direction(&reader)
        let mode: ChildMode
        switch try reader.uint8("mode") {
        case 0: mode = .tunnel
        case 1: mode = .transport
        default: throw .invalid(field: "mode")
        }
        let encryptionID = try reader.uint16("encryption")
        let keyBits = try reader.uint16("encryption key bits")
        let transform = Transform(type: .encryption, identifier: encryptionID, keyLength: keyBits == 0 ? nil : keyBits)
        guard let encryption = EncryptionAlgorithm(transform: transform) else { throw .invalid(field: "encryption") }
        let integrityID = try reader.uint16("integrity")
        let integrity: IntegrityAlgorithm?
        if integrityID == 0 {
            integrity = nil
        } else {
            guard let value = IntegrityAlgorithm(rawValue: integrityID) else { throw .invalid(field: "integrity") }
            integrity = value
        }
        guard encryption.isAEAD == (integrity == nil) else { throw .invalid(field: "integrity") }
        let esn = try reader.uint8("esn")
        guard esn <= 1 else { throw .invalid(field: "esn") }
        let encryptionKey = try reader.shortBytes("encryption key")
        guard encryptionKey.count == encryption.keyLength else { throw .invalid(field: "encryption key") }
        let integrityKey = try reader.shortBytes("integrity key")
        guard integrityKey.count == (integrity?.keyLength ?? 0) else { throw .invalid(field: "integrity key") }
        let source = try address(&reader, "tunnel source")
        let destination = try address(&reader, "tunnel destination")
        guard source.isIPv6 == destination.isIPv6 else { throw .invalid(field: "tunnel addresses") }
        var encapsulation: UDPEncapsulation?
        switch try reader.uint8("encapsulation") {
        case 0: encapsulation = nil
        case 1:
            encapsulation = UDPEncapsulation(
                sourcePort: try reader.uint16("encapsulation source port"),
                destinationPort: try reader.uint16("encapsulation destination port"))
        default: throw .invalid(field: "encapsulation")
        }
        let sourceSelectors = try selectors(&reader)
        let destinationSelectors = try selectors(&reader)
        var limits: [UInt64?] = []
        for name in ["soft bytes", "hard bytes", "soft packets", "hard packets", "soft seconds", "hard seconds"] {
            let value = try reader.uint64(name)
            limits.append(value == 0 ? nil : value)
        }
        func seconds(_ value: UInt64?) -> UInt32? { value.map { UInt32(clamping: $0) } }
        let lifetime = ESPLifetime(
            softBytes: limits[0], hardBytes: limits[1], softPackets: limits[2], hardPackets: limits[3],
            softSeconds: seconds(limits[4]), hardSeconds: seconds(limits[5]))
        let sequenceStart = try reader.uint64("sequence start")
        var sa = SecurityAssociationParameters(
            spi: spi, direction: dir,
            suite: ChildCipherSuite(encryption: encryption, integrity: integrity, group: nil, extendedSequenceNumbers: esn == 1),
            encryptionKey: KeyMaterial(encryptionKey), integrityKey: KeyMaterial(integrityKey), mode: mode,
            tunnelSource: source, tunnelDestination: destination, encapsulation: encapsulation,
            sourceSelectors: sourceSelectors, destinationSelectors: destinationSelectors, lifetime: lifetime)
        sa.sequenceStart = sequenceStart
        return sa
    }
}
