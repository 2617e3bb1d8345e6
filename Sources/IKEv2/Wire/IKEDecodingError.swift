/// Why an IKE message could not be decoded (RFC 7296 section 3), and which notify the peer gets for it.
public enum IKEDecodingError: Error, Equatable, Sendable {
    case truncated(field: String, needed: Int, available: Int)
    case lengthExceedsContainer(field: String, declared: Int, available: Int)
    case lengthTooShort(field: String, declared: Int, minimum: Int)
    case messageLengthMismatch(declared: Int, actual: Int)
    case invalidMajorVersion(UInt8)
    case unsupportedCriticalPayload(PayloadType)
    case invalidField(field: String, value: Int)
    case trailingBytes(field: String, count: Int)
    case encryptedPayloadNotLast
    case integrityCheckFailed
    case decryptionFailed
    case invalidPadding

    /// The error notify RFC 7296 section 3.10.1 says the peer should receive, if any.
    public var notify: NotifyType? {
        switch self {
        case .invalidMajorVersion: return .invalidMajorVersion
        case .unsupportedCriticalPayload: return .unsupportedCriticalPayload
        case .integrityCheckFailed, .decryptionFailed: return nil  // silently discarded (section 2.21.2)
        default: return .invalidSyntax
        }
    }
}
