/// Transform types, RFC 7296 section 3.3.2.
public struct TransformType: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let encryption = TransformType(rawValue: 1)
    public static let pseudoRandomFunction = TransformType(rawValue: 2)
    public static let integrity = TransformType(rawValue: 3)
    public static let keyExchange = TransformType(rawValue: 4)
    public static let extendedSequenceNumbers = TransformType(rawValue: 5)

    /// ADDITIONAL_KEY_EXCHANGE_1 to _7 (RFC 9370 section 2.2.1: Transform Types 6 to 12): `n` from 1 to 7.
    public static func additionalKeyExchange(_ n: Int) -> TransformType {
        precondition((1...7).contains(n), "ADDITIONAL_KEY_EXCHANGE_\(n)")
        return TransformType(rawValue: UInt8(5 + n))
    }

    /// Which ADDITIONAL_KEY_EXCHANGE_n this is (1-7), if it is one.
    public var additionalKeyExchangeNumber: Int? { (6...12).contains(rawValue) ? Int(rawValue) - 5 : nil }

    /// RFC 9370 section 2.2.1: in an ADDITIONAL_KEY_EXCHANGE transform type, Transform ID 0 (NONE) makes the
    /// exchange optional.
    public static let noneIdentifier: UInt16 = 0
}

/// A transform attribute (section 3.3.5). Only Key Length (14) is defined; it uses the TV format.
public struct TransformAttribute: Equatable, Sendable {
    public static let keyLengthType: UInt16 = 14
    public var type: UInt16
    /// TV-format value (AF bit set), or nil when the attribute is TLV with `variableValue`.
    public var fixedValue: UInt16?
    public var variableValue: [UInt8]

    public init(type: UInt16, fixedValue: UInt16) {
        self.type = type
        self.fixedValue = fixedValue
        self.variableValue = []
    }
    public init(type: UInt16, variableValue: [UInt8]) {
        self.type = type
        self.fixedValue = nil
        self.variableValue = variableValue
    }
    public static func keyLength(_ bits: UInt16) -> TransformAttribute { .init(type: keyLengthType, fixedValue: bits) }

    static func decode(_ reader: inout ByteReader) throws(IKEDecodingError) -> TransformAttribute {
        let typeField = try reader.readUInt16("attribute.type")
        let type = typeField & 0x7fff
        if typeField & 0x8000 != 0 {
            return TransformAttribute(type: type, fixedValue: try reader.readUInt16("attribute.value"))
        }
        let length = try reader.readUInt16("attribute.length")
        return TransformAttribute(type: type, variableValue: try reader.readBytes(Int(length), "attribute.value"))
    }

    func encode(into writer: inout ByteWriter) {
        if let fixedValue {
            writer.write(type | 0x8000)
            writer.write(fixedValue)
        } else {
            writer.write(type)
            writer.write(UInt16(variableValue.count))
            writer.write(bytes: variableValue)
        }
    }
}

/// One transform substructure inside a proposal (section 3.3.2).
public struct Transform: Equatable, Hashable, Sendable {
    public var type: TransformType
    public var identifier: UInt16
    public var attributes: [TransformAttribute]

    public init(type: TransformType, identifier: UInt16, keyLength: UInt16? = nil) {
        self.type = type
        self.identifier = identifier
        self.attributes = keyLength.map { [.keyLength($0)] } ?? []
    }

    public init(type: TransformType, identifier: UInt16, attributes: [TransformAttribute]) {
        self.type = type
        self.identifier = identifier
        self.attributes = attributes
    }

    public var keyLength: UInt16? {
        attributes.first { $0.type == TransformAttribute.keyLengthType }?.fixedValue
    }

    public static func == (a: Transform, b: Transform) -> Bool {
        a.type == b.type && a.identifier == b.identifier && a.keyLength == b.keyLength
    }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(type)
        hasher.combine(identifier)
        hasher.combine(keyLength)
    }

    static func decode(_ reader: inout ByteReader, isLast: inout Bool) throws(IKEDecodingError) -> Transform {
        let more = try reader.readUInt8("transform.lastSubstructure")
        guard more == 0 || more == 3 else { throw .invalidField(field: "transform.lastSubstructure", value: Int(more)) }
        isLast = more == 0
        _ = try reader.readUInt8("transform.reserved")
        let length = Int(try reader.readUInt16("transform.length"))
        guard length >= 8 else { throw .lengthTooShort(field: "transform.length", declared: length, minimum: 8) }
        var body = try reader.subReader(length - 4, "transform.length")
        let type = try body.readUInt8("transform.type")
        _ = try body.readUInt8("transform.reserved2")
        let identifier = try body.readUInt16("transform.id")
        var attributes: [TransformAttribute] = []
        while !body.isAtEnd { attributes.append(try TransformAttribute.decode(&body)) }
        return Transform(type: TransformType(rawValue: type), identifier: identifier, attributes: attributes)
    }

    func encode(into writer: inout ByteWriter, isLast: Bool) {
        writer.write(UInt8(isLast ? 0 : 3))
        writer.write(UInt8(0))
        let lengthOffset = writer.bytes.count
        writer.write(UInt16(0))
        writer.write(type.rawValue)
        writer.write(UInt8(0))
        writer.write(identifier)
        for attribute in attributes { attribute.encode(into: &writer) }
        writer.patchUInt16(at: lengthOffset, UInt16(writer.bytes.count - lengthOffset + 2))
    }
}

/// A proposal substructure (section 3.3.1): one protocol, its SPI, and a set of transforms.
public struct Proposal: Equatable, Sendable {
    public var number: UInt8
    public var protocolID: ProtocolID
    public var spi: [UInt8]
    public var transforms: [Transform]

    public init(number: UInt8, protocolID: ProtocolID, spi: [UInt8], transforms: [Transform]) {
        self.number = number
        self.protocolID = protocolID
        self.spi = spi
        self.transforms = transforms
    }

    public func transforms(of type: TransformType) -> [Transform] { transforms.filter { $0.type == type } }

    static func decode(_ reader: inout ByteReader, isLast: inout Bool) throws(IKEDecodingError) -> Proposal {
        let more = try reader.readUInt8("proposal.lastSubstructure")
        guard more == 0 || more == 2 else { throw .invalidField(field: "proposal.lastSubstructure", value: Int(more)) }
        isLast = more == 0
        _ = try reader.readUInt8("proposal.reserved")
        let length = Int(try reader.readUInt16("proposal.length"))
        guard length >= 8 else { throw .lengthTooShort(field: "proposal.length", declared: length, minimum: 8) }
        var body = try reader.subReader(length - 4, "proposal.length")
        let number = try body.readUInt8("proposal.number")
        let protocolID = try body.readUInt8("proposal.protocolID")
        let spiSize = try body.readUInt8("proposal.spiSize")
        let count = try body.readUInt8("proposal.transformCount")
        let spi = try body.readBytes(Int(spiSize), "proposal.spi")
        var transforms: [Transform] = []
        var last = false
        while !last {
            guard !body.isAtEnd else { throw .truncated(field: "proposal.transforms", needed: 8, available: 0) }
            transforms.append(try Transform.decode(&body, isLast: &last))
        }
        guard body.isAtEnd else { throw .trailingBytes(field: "proposal", count: body.remaining) }
        guard transforms.count == Int(count) else {
            throw .invalidField(field: "proposal.transformCount", value: Int(count))
        }
        return Proposal(number: number, protocolID: ProtocolID(rawValue: protocolID), spi: spi, transforms: transforms)
    }

    func encode(into writer: inout ByteWriter, isLast: Bool) {
        writer.write(UInt8(isLast ? 0 : 2))
        writer.write(UInt8(0))
        let lengthOffset = writer.bytes.count
        writer.write(UInt16(0))
        writer.write(number)
        writer.write(protocolID.rawValue)
        writer.write(UInt8(spi.count))
        writer.write(UInt8(transforms.count))
        writer.write(bytes: spi)
        for (index, transform) in transforms.enumerated() {
            transform.encode(into: &writer, isLast: index == transforms.count - 1)
        }
        writer.patchUInt16(at: lengthOffset, UInt16(writer.bytes.count - lengthOffset + 2))
    }
}
