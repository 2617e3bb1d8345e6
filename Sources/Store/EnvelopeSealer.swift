import Crypto

/// Seals with a data key that the token wraps (envelope encryption, as key-management systems put a
/// hardware key to work): the token is used once at start, to unwrap the data key or to wrap a new one,
/// and each box after that is AES-256-GCM in software. A slow smart card therefore never holds up the
/// daemon's loop when SAs change. The data key lives only in this process's memory, beside the SA keys it
/// protects; on disk it exists only wrapped under the token's key, so the database without the token
/// opens nothing.
///
/// Boxes it makes carry version 2: version (1) | nonce (12) | ciphertext | tag (16). Version-1 boxes (the
/// token's own, from `ikeproxy seal` or an older database) are opened by the token.
public final class EnvelopeSealer: Sealer {
    public static let version: UInt8 = 2
    static let wrapContext = SealingContext.dataKey
    public let token: TokenSealer
    private let dataKey: SymmetricKey
    /// The data key as the token sealed it, for the database.
    public let wrappedKey: [UInt8]

    public var name: String { token.name }

    /// Unwraps `wrappedKey` with the token, or, when there is none yet, makes a data key and wraps it.
    public init(token: TokenSealer, wrappedKey: [UInt8]?) throws(SealingError) {
        self.token = token
        if let wrappedKey {
            let key = try token.unseal(wrappedKey, context: Self.wrapContext)
            guard key.count == 32 else { throw SealingError("the wrapped data key is \(key.count) octets, not 32") }
            dataKey = SymmetricKey(data: key)
            self.wrappedKey = wrappedKey
        } else {
            let key = SymmetricKey(size: .bits256)
            dataKey = key
            self.wrappedKey = try token.seal(key.withUnsafeBytes { Array($0) }, context: Self.wrapContext)
        }
    }

    /// Whether the token is there: what decides if new negotiations may start (the data key, already in
    /// memory, does not need it).
    public func isAvailable() -> Bool { token.isAvailable() }

    public func seal(_ plaintext: [UInt8], context: SealingContext) throws(SealingError) -> [UInt8] {
        do {
            let sealed = try AES.GCM.seal(plaintext, using: dataKey, nonce: AES.GCM.Nonce(), authenticating: context.authenticatedData)
            return [Self.version] + Array(sealed.nonce) + Array(sealed.ciphertext) + Array(sealed.tag)
        } catch {
            throw SealingError("sealing with the data key failed: \(error)")
        }
    }

    public func unseal(_ box: [UInt8], context: SealingContext) throws(SealingError) -> [UInt8] {
        guard box.first == Self.version else { return try token.unseal(box, context: context) }
        let nonceEnd = 1 + SealedBox.nonceLength
        guard box.count >= nonceEnd + SealedBox.tagLength else { throw SealingError("a sealed box of version 2 is too short") }
        do {
            let sealed = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: box[1..<nonceEnd]), ciphertext: box[nonceEnd..<(box.count - SealedBox.tagLength)],
                tag: box[(box.count - SealedBox.tagLength)...])
            return Array(try AES.GCM.open(sealed, using: dataKey, authenticating: context.authenticatedData))
        } catch {
            throw SealingError("the box does not open with the data key (forged, or moved from another row)")
        }
    }
}
