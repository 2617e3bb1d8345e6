import Crypto
import Foundation

/// The documented lesser option: the sealing key is a 32-octet file on removable media (a USB stick
/// that is taken away with the device's owner). Absent file, absent key: the proxy behaves as with a
/// removed token. The key is read at each availability check, never copied elsewhere.
public final class KeyFileSealer: Sealer {
    public let path: String
    private var key: SymmetricKey?

    public var name: String { "key file \(path)" }

    /// `create` writes a new random key (mode 0400) if the file does not exist.
    public init(path: String, create: Bool = false) throws(SealingError) {
        self.path = path
        if create && !FileManager.default.fileExists(atPath: path) {
            let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
            guard FileManager.default.createFile(atPath: path, contents: bytes, attributes: [.posixPermissions: 0o400]) else {
                throw SealingError("cannot create the key file \(path)")
            }
        }
        _ = isAvailable()
    }

    public func isAvailable() -> Bool {
        guard let data = FileManager.default.contents(atPath: path), data.count == 32 else {
            key = nil
            return false
        }
        key = SymmetricKey(data: data)
        return true
    }

    public func seal(_ plaintext: [UInt8], context: SealingContext) throws(SealingError) -> [UInt8] {
        guard let key else { throw SealingError("the key file \(path) is not present") }
        do {
            let box = try AES.GCM.seal(plaintext, using: key, authenticating: context.authenticatedData)
            return [SealedBox.version] + Array(box.nonce) + Array(box.ciphertext) + Array(box.tag)
        } catch {
            throw SealingError("sealing failed: \(error)")
        }
    }

    public func unseal(_ box: [UInt8], context: SealingContext) throws(SealingError) -> [UInt8] {
        guard let key else { throw SealingError("the key file \(path) is not present") }
        let (nonce, sealed) = try SealedBox.split(box)
        do {
            let gcm = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: nonce), ciphertext: sealed.dropLast(SealedBox.tagLength),
                tag: sealed.suffix(SealedBox.tagLength))
            return Array(try AES.GCM.open(gcm, using: key, authenticating: context.authenticatedData))
        } catch {
            throw SealingError("cannot open a sealed box for \(context): forged, moved, or sealed under another key")
        }
    }
}
