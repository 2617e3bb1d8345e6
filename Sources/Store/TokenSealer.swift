import CPKCS11
import Crypto

/// Seals with an AES-256 key generated inside a PKCS#11 token (a smart card or USB token in production,
/// SoftHSM2 in tests): the key never leaves the token, AES-GCM runs inside it. Presence is checked by
/// opening the token afresh (C_Initialize scans the slots), so a token taken out and put back is seen.
public final class TokenSealer: Sealer {
    public let modulePath: String
    public let tokenLabel: String
    public let keyLabel: String
    private let pin: String
    private var handle: OpaquePointer?
    public private(set) var lastError: String?

    public var name: String { "PKCS#11 token '\(tokenLabel)' (\(modulePath))" }

    public init(modulePath: String, tokenLabel: String, pin: String, keyLabel: String = "ikeproxy-sealing-key") {
        self.modulePath = modulePath
        self.tokenLabel = tokenLabel
        self.pin = pin
        self.keyLabel = keyLabel
        _ = isAvailable()
    }

    deinit { ikp_p11_close(handle) }

    /// Re-opens the token: true when it is present, the PIN accepted and the key found.
    public func isAvailable() -> Bool {
        ikp_p11_close(handle)
        handle = nil
        var error = [CChar](repeating: 0, count: 256)
        handle = ikp_p11_open(modulePath, tokenLabel, pin, keyLabel, &error, error.count)
        lastError = handle == nil ? String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
        return handle != nil
    }

    /// Whether this process holds an open session with the key found.
    public var isOpen: Bool { handle != nil }

    /// Lets go of the token (it was taken out): nothing seals until `isAvailable()` opens it again.
    public func close() {
        ikp_p11_close(handle)
        handle = nil
        lastError = "the token was removed"
    }

    private func gcm(encrypt: Bool, nonce: [UInt8], input: [UInt8], context: SealingContext) throws(SealingError) -> [UInt8] {
        guard let handle else { throw SealingError("the token '\(tokenLabel)' is not present" + (lastError.map { ": \($0)" } ?? "")) }
        var output = [UInt8](repeating: 0, count: input.count + SealedBox.tagLength)
        var error = [CChar](repeating: 0, count: 256)
        let aad = context.authenticatedData
        let length = ikp_p11_gcm(handle, encrypt ? 1 : 0, nonce, nonce.count, aad, aad.count, input, input.count, &output, &error, error.count)
        guard length >= 0 else {
            let text = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if encrypt || !text.contains("forged") {
                ikp_p11_close(self.handle)
                self.handle = nil
            }
            throw SealingError("token '\(tokenLabel)': \(text)")
        }
        return Array(output.prefix(Int(length)))
    }

    public func seal(_ plaintext: [UInt8], context: SealingContext) throws(SealingError) -> [UInt8] {
        // A fresh random nonce per box; 2^-96 collision odds for the boxes one proxy writes.
        let nonce = Array(AES.GCM.Nonce())
        return [SealedBox.version] + nonce + (try gcm(encrypt: true, nonce: nonce, input: plaintext, context: context))
    }

    public func unseal(_ box: [UInt8], context: SealingContext) throws(SealingError) -> [UInt8] {
        let (nonce, sealed) = try SealedBox.split(box)
        return try gcm(encrypt: false, nonce: nonce, input: sealed, context: context)
    }
}
