/// An IKE SA security parameter index (RFC 7296 section 3.1): eight octets chosen by each side.
public struct IKESPI: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    /// From the octets of a proposal's SPI field (network order).
    public init(bytes: [UInt8]) { self.rawValue = bytes.reduce(0) { $0 << 8 | UInt64($1) } }
    public static let zero = IKESPI(0)
    public var isZero: Bool { rawValue == 0 }
    public var bytes: [UInt8] {
        var w = ByteWriter()
        w.write(rawValue)
        return w.bytes
    }
    public var description: String { bytes.hexString }
}

/// A CHILD SA (ESP/AH) security parameter index: four octets chosen by the receiving side.
public struct ChildSPI: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    /// From the octets of a proposal, notify or delete SPI field (network order).
    public init(bytes: [UInt8]) { self.rawValue = bytes.reduce(0) { $0 << 8 | UInt32($1) } }
    public var bytes: [UInt8] {
        var w = ByteWriter()
        w.write(rawValue)
        return w.bytes
    }
    public var description: String { bytes.hexString }
}

/// Exchange types, RFC 7296 section 3.1.
public struct ExchangeType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let ikeSAInit = ExchangeType(rawValue: 34)
    public static let ikeAuth = ExchangeType(rawValue: 35)
    public static let createChildSA = ExchangeType(rawValue: 36)
    public static let informational = ExchangeType(rawValue: 37)
    /// RFC 9242 section 3 ("IKE_INTERMEDIATE", Exchange Type 43).
    public static let ikeIntermediate = ExchangeType(rawValue: 43)
    /// RFC 9370 section 2.2.4 ("IKE_FOLLOWUP_KE", Exchange Type 44).
    public static let ikeFollowupKE = ExchangeType(rawValue: 44)
    public var description: String {
        switch self {
        case .ikeSAInit: return "IKE_SA_INIT"
        case .ikeAuth: return "IKE_AUTH"
        case .createChildSA: return "CREATE_CHILD_SA"
        case .informational: return "INFORMATIONAL"
        case .ikeIntermediate: return "IKE_INTERMEDIATE"
        case .ikeFollowupKE: return "IKE_FOLLOWUP_KE"
        default: return "EXCHANGE_\(rawValue)"
        }
    }
}

/// Payload type numbers, RFC 7296 section 3.2.
public struct PayloadType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let none = PayloadType(rawValue: 0)
    public static let securityAssociation = PayloadType(rawValue: 33)
    public static let keyExchange = PayloadType(rawValue: 34)
    public static let identificationInitiator = PayloadType(rawValue: 35)
    public static let identificationResponder = PayloadType(rawValue: 36)
    public static let certificate = PayloadType(rawValue: 37)
    public static let certificateRequest = PayloadType(rawValue: 38)
    public static let authentication = PayloadType(rawValue: 39)
    public static let nonce = PayloadType(rawValue: 40)
    public static let notify = PayloadType(rawValue: 41)
    public static let delete = PayloadType(rawValue: 42)
    public static let vendorID = PayloadType(rawValue: 43)
    public static let trafficSelectorInitiator = PayloadType(rawValue: 44)
    public static let trafficSelectorResponder = PayloadType(rawValue: 45)
    public static let encrypted = PayloadType(rawValue: 46)
    public static let configuration = PayloadType(rawValue: 47)
    public static let extensibleAuthentication = PayloadType(rawValue: 48)
    /// Encrypted and Authenticated Fragment (RFC 7383).
    public static let encryptedFragment = PayloadType(rawValue: 53)
    /// Made once: a description is asked for every payload of every message logged.
    static let names: [UInt8: String] = [
        0: "NONE", 33: "SA", 34: "KE", 35: "IDi", 36: "IDr", 37: "CERT", 38: "CERTREQ",
        39: "AUTH", 40: "No", 41: "N", 42: "D", 43: "V", 44: "TSi", 45: "TSr",
        46: "SK", 47: "CP", 48: "EAP", 53: "SKF"
    ]
    public var description: String { Self.names[rawValue] ?? "PAYLOAD_\(rawValue)" }
}

/// Security protocol identifiers used in proposals, notifies and deletes.
public struct ProtocolID: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let none = ProtocolID(rawValue: 0)
    public static let ike = ProtocolID(rawValue: 1)
    public static let ah = ProtocolID(rawValue: 2)
    public static let esp = ProtocolID(rawValue: 3)
}
