/// Why a secret could not be sealed or unsealed.
public struct SealingError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Seals secrets before they touch the disk: AES-256-GCM under a key the store never holds in a file
/// next to the data (a PKCS#11 token, directly or through the data key it wraps, or a key file on
/// removable media). Each box is bound to the row
/// it belongs to (`context`, the additional data), so a box moved to another row does not open.
///
/// Box layout: version (1 octet: 1 when the token or the key file sealed it, 2 when the data key the token
/// wraps did, see EnvelopeSealer) | nonce (12) | ciphertext | tag (16).
public protocol Sealer: AnyObject {
    /// Where the sealing key lives, for logs.
    var name: String { get }
    /// Whether sealing works right now: false while the token (or the medium) is removed.
    func isAvailable() -> Bool
    func seal(_ plaintext: [UInt8], context: SealingContext) throws(SealingError) -> [UInt8]
    func unseal(_ box: [UInt8], context: SealingContext) throws(SealingError) -> [UInt8]
}

enum SealedBox {
    static let version: UInt8 = 1
    static let nonceLength = 12
    static let tagLength = 16

    static func split(_ box: [UInt8]) throws(SealingError) -> (nonce: [UInt8], sealed: [UInt8]) {
        guard box.count >= 1 + nonceLength + tagLength, box[0] == version else { throw SealingError("not a sealed box of version \(version)") }
        return (Array(box[1..<(1 + nonceLength)]), Array(box[(1 + nonceLength)...]))
    }
}
