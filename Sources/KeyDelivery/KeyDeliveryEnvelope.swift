import Crypto
import Foundation
import IKEv2
import Packets

/// Which end of the key-delivery channel sent a message; part of the authenticated header, so a message
/// cannot be reflected back to its sender.
public enum KeyDeliveryRole: UInt8, Sendable {
    case proxy = 1
    case terminal = 2
    public var other: KeyDeliveryRole { self == .proxy ? .terminal : .proxy }
}

/// The authenticated header every key-delivery datagram starts with (docs/key-delivery.md).
public struct KeyDeliveryHeader: Equatable, Sendable {
    public static let magic: [UInt8] = Array("IKPD".utf8)
    public static let version: UInt8 = 1
    public static let length = 52
    public static let tagLength = 16

    public var sender: KeyDeliveryRole
    public var terminalID: UInt64
    /// The sender's session: set when it starts and never lower than a previous session's.
    public var epoch: UInt64
    public var sequence: UInt64
    /// Sender's wall clock, milliseconds since 1970, checked against the receiver's clock.
    public var timestamp: UInt64
    public var nonce: [UInt8]

    func encode() -> [UInt8] {
        var out = Self.magic
        out.append(Self.version)
        out.append(sender.rawValue)
        out.append(0)
        out.append(0)
        out.appendBigEndian(terminalID)
        out.appendBigEndian(epoch)
        out.appendBigEndian(sequence)
        out.appendBigEndian(timestamp)
        out.append(contentsOf: nonce)
        return out
    }

    static func decode(_ bytes: [UInt8]) -> KeyDeliveryHeader? {
        guard bytes.count >= length + tagLength + 1 else { return nil }
        var reader = FieldReader(bytes)
        guard (try? reader.bytes(4, "magic")) == magic, (try? reader.uint8("version")) == version,
            let role = try? reader.uint8("role"), let sender = KeyDeliveryRole(rawValue: role),
            (try? reader.uint16("reserved")) != nil,
            let terminalID = try? reader.uint64("terminal"), let epoch = try? reader.uint64("epoch"),
            let sequence = try? reader.uint64("sequence"), let timestamp = try? reader.uint64("timestamp"),
            let nonce = try? reader.bytes(12, "nonce")
        else { return nil }
        return KeyDeliveryHeader(sender: sender, terminalID: terminalID, epoch: epoch, sequence: sequence, timestamp: timestamp, nonce: nonce)
    }
}

/// Seals and opens key-delivery datagrams with AES-256-GCM under a key derived from the terminal's
/// enrollment key by HKDF-SHA256, one key per direction.
public struct KeyDeliveryCipher: Sendable {
    private let sendKey: SymmetricKey
    private let receiveKey: SymmetricKey

    public init(enrollmentKey: KeyMaterial, terminalID: UInt64, role: KeyDeliveryRole) {
        func key(for sender: KeyDeliveryRole) -> SymmetricKey {
            var info = Array("IKEProxy key delivery v1".utf8)
            info.append(sender.rawValue)
            info.appendBigEndian(terminalID)
            return HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: enrollmentKey.bytes), info: info, outputByteCount: 32)
        }
        sendKey = key(for: role)
        receiveKey = key(for: role.other)
    }

    func seal(header: KeyDeliveryHeader, body: [UInt8]) -> [UInt8] {
        let aad = header.encode()
        let box = try! AES.GCM.seal(body, using: sendKey, nonce: try! AES.GCM.Nonce(data: header.nonce), authenticating: aad)
        return aad + Array(box.ciphertext) + Array(box.tag)
    }

    func open(_ datagram: [UInt8], header: KeyDeliveryHeader) -> [UInt8]? {
        let aad = Array(datagram[0..<KeyDeliveryHeader.length])
        let body = datagram[KeyDeliveryHeader.length..<(datagram.count - KeyDeliveryHeader.tagLength)]
        let tag = datagram.suffix(KeyDeliveryHeader.tagLength)
        guard let nonce = try? AES.GCM.Nonce(data: header.nonce),
            let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: body, tag: tag),
            let plain = try? AES.GCM.open(box, using: receiveKey, authenticating: aad)
        else { return nil }
        return Array(plain)
    }
}
