/// What IKE_INTERMEDIATE contributes to authentication and to the keys (RFC 9242 section 3.3, RFC 9370
/// section 2.2.2), as pure functions of the exchanged octets.
public enum IntermediateAuthentication {
    /// One link of the IntAuth chain (RFC 9242 section 3.3.2):
    /// `IntAuth_[i/r]n = prf(SK_p[i/r], IntAuth_[i/r](n-1) | IntAuth_[i/r]nA | IntAuth_[i/r]nP)`, where A is the
    /// message's IKE header and the Encrypted payload's generic header with their lengths adjusted as if the
    /// message carried its inner payloads unencrypted and unfragmented (no IV, padding or ICV; SK, never SKF),
    /// and P the inner payloads' plaintext octets. `key` is the SK_p of the sender of that message in effect when
    /// it was sent (the keys protecting it, before the update its key exchange makes): libreswan computes it so.
    /// A message with no inner payload has an empty P; `firstInner` is then NONE.
    public static func link(
        prf: PseudoRandomFunction, key: KeyMaterial, previous: [UInt8], header: IKEHeader, firstInner: PayloadType,
        inner: ArraySlice<UInt8>
    ) -> [UInt8] {
        var data = ByteWriter(capacity: previous.count + IKEHeader.size + 4 + inner.count)
        data.write(bytes: previous)
        var adjusted = header
        adjusted.nextPayload = .encrypted
        adjusted.length = UInt32(IKEHeader.size + 4 + inner.count)
        adjusted.encode(into: &data)
        // The Encrypted payload's generic header: next payload (the first inner one), C bit and reserved zero,
        // length as if it held the plaintext alone.
        data.write(firstInner.rawValue)
        data.write(UInt8(0))
        data.write(UInt16(4 + inner.count))
        data.write(bytes: Array(inner))
        return prf.compute(key: key.bytes, data: data.bytes)
    }

    /// The IntAuth appended to both sides' signed octets in IKE_AUTH (RFC 9242 section 3.3.2):
    /// `IntAuth_iN | IntAuth_rN | IKE_AUTH_MID`, the message ID of the first IKE_AUTH request in four octets.
    public static func intAuth(initiator: [UInt8], responder: [UInt8], authMessageID: UInt32) -> [UInt8] {
        initiator + responder + [
            UInt8(authMessageID >> 24), UInt8(authMessageID >> 16 & 0xff), UInt8(authMessageID >> 8 & 0xff), UInt8(authMessageID & 0xff)
        ]
    }
}
