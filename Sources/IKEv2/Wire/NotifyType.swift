/// Notify message types, RFC 7296 section 3.10.1 and the IANA registry. Values below 16384 are errors.
public struct NotifyType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    public var isError: Bool { rawValue < 16384 }

    public static let unsupportedCriticalPayload = NotifyType(1)
    public static let invalidIKESPI = NotifyType(4)
    public static let invalidMajorVersion = NotifyType(5)
    public static let invalidSyntax = NotifyType(7)
    public static let invalidMessageID = NotifyType(9)
    public static let invalidSPI = NotifyType(11)
    public static let noProposalChosen = NotifyType(14)
    public static let invalidKEPayload = NotifyType(17)
    public static let authenticationFailed = NotifyType(24)
    public static let singlePairRequired = NotifyType(34)
    public static let noAdditionalSAs = NotifyType(35)
    public static let internalAddressFailure = NotifyType(36)
    public static let failedCPRequired = NotifyType(37)
    public static let tsUnacceptable = NotifyType(38)
    public static let invalidSelectors = NotifyType(39)
    public static let temporaryFailure = NotifyType(43)
    public static let childSANotFound = NotifyType(44)
    /// RFC 9370 section 2.2.4: an IKE_FOLLOWUP_KE for an exchange the responder holds no state of (47).
    public static let stateNotFound = NotifyType(47)
    public static let initialContact = NotifyType(16384)
    public static let setWindowSize = NotifyType(16385)
    public static let additionalTSPossible = NotifyType(16386)
    public static let ipcompSupported = NotifyType(16387)
    public static let natDetectionSourceIP = NotifyType(16388)
    public static let natDetectionDestinationIP = NotifyType(16389)
    public static let cookie = NotifyType(16390)
    public static let useTransportMode = NotifyType(16391)
    public static let rekeySA = NotifyType(16393)
    public static let espTFCPaddingNotSupported = NotifyType(16394)
    public static let nonFirstFragmentsAlso = NotifyType(16395)
    public static let mobikeSupported = NotifyType(16396)
    public static let ikev2FragmentationSupported = NotifyType(16430)
    /// RFC 6023: the sender accepts an IKE SA set up without a CHILD SA in IKE_AUTH.
    public static let childlessIKEv2Supported = NotifyType(16418)
    public static let signatureHashAlgorithms = NotifyType(16431)
    /// RFC 8784 section 3 (IANA "IKEv2 Notify Message Status Types"): the sender would mix a post-quantum
    /// preshared key into the keys (IKE_SA_INIT, 16435); which PPK the initiator used (IKE_AUTH, 16436); the
    /// initiator's AUTH data computed without the PPK, for a responder that has none (16437).
    public static let usePPK = NotifyType(16435)
    public static let ppkIdentity = NotifyType(16436)
    public static let noPPKAuth = NotifyType(16437)
    /// RFC 9242 section 3.2: the sender supports the IKE_INTERMEDIATE exchange (16438).
    public static let intermediateExchangeSupported = NotifyType(16438)
    /// RFC 9370 section 2.2.4: links an IKE_FOLLOWUP_KE to the CREATE_CHILD_SA (or earlier IKE_FOLLOWUP_KE) it
    /// continues (16441).
    public static let additionalKeyExchange = NotifyType(16441)

    /// Made once: a description is asked for every notify of every message logged.
    static let names: [UInt16: String] = [
        1: "UNSUPPORTED_CRITICAL_PAYLOAD", 4: "INVALID_IKE_SPI", 5: "INVALID_MAJOR_VERSION", 7: "INVALID_SYNTAX",
        9: "INVALID_MESSAGE_ID", 11: "INVALID_SPI", 14: "NO_PROPOSAL_CHOSEN", 17: "INVALID_KE_PAYLOAD",
        24: "AUTHENTICATION_FAILED", 34: "SINGLE_PAIR_REQUIRED", 35: "NO_ADDITIONAL_SAS",
        36: "INTERNAL_ADDRESS_FAILURE", 37: "FAILED_CP_REQUIRED", 38: "TS_UNACCEPTABLE", 39: "INVALID_SELECTORS",
        43: "TEMPORARY_FAILURE", 44: "CHILD_SA_NOT_FOUND", 47: "STATE_NOT_FOUND", 16384: "INITIAL_CONTACT", 16385: "SET_WINDOW_SIZE",
        16386: "ADDITIONAL_TS_POSSIBLE", 16387: "IPCOMP_SUPPORTED", 16388: "NAT_DETECTION_SOURCE_IP",
        16389: "NAT_DETECTION_DESTINATION_IP", 16390: "COOKIE", 16391: "USE_TRANSPORT_MODE", 16393: "REKEY_SA",
        16394: "ESP_TFC_PADDING_NOT_SUPPORTED", 16395: "NON_FIRST_FRAGMENTS_ALSO", 16396: "MOBIKE_SUPPORTED",
        16430: "IKEV2_FRAGMENTATION_SUPPORTED", 16431: "SIGNATURE_HASH_ALGORITHMS", 16435: "USE_PPK", 16436: "PPK_IDENTITY",
        16437: "NO_PPK_AUTH",
        16438: "INTERMEDIATE_EXCHANGE_SUPPORTED", 16441: "ADDITIONAL_KEY_EXCHANGE"
    ]
    public var description: String { Self.names[rawValue] ?? "NOTIFY_\(rawValue)" }
}
