/// The seven IKE SA keys of RFC 7296 section 2.14.
public struct IKESAKeys: Equatable, Sendable {
    public var deriving: KeyMaterial  // SK_d
    public var integrityInitiator: KeyMaterial  // SK_ai
    public var integrityResponder: KeyMaterial  // SK_ar
    public var encryptionInitiator: KeyMaterial  // SK_ei
    public var encryptionResponder: KeyMaterial  // SK_er
    public var authenticationInitiator: KeyMaterial  // SK_pi
    public var authenticationResponder: KeyMaterial  // SK_pr
}

/// ESP keys of one CHILD SA (section 2.17), named by direction between original initiator and responder.
public struct ChildSAKeys: Equatable, Sendable {
    public var encryptionInitiator: KeyMaterial
    public var integrityInitiator: KeyMaterial
    public var encryptionResponder: KeyMaterial
    public var integrityResponder: KeyMaterial
}

/// SKEYSEED and KEYMAT computations (RFC 7296 sections 2.14, 2.17, 2.18).
public enum KeyDerivation {
    public static func skeyseed(
        prf: PseudoRandomFunction, nonceInitiator: Nonce, nonceResponder: Nonce,
        sharedSecret: KeyMaterial
    ) -> KeyMaterial {
        KeyMaterial(prf.compute(key: nonceInitiator.octets + nonceResponder.octets, data: sharedSecret.bytes))
    }

    /// SKEYSEED for a rekeyed IKE SA: prf(SK_d (old), g^ir (new) | Ni | Nr), section 2.18.
    /// `additionalSecrets` are SK(1)..SK(n) of the IKE_FOLLOWUP_KE exchanges after an IKE SA rekey (RFC 9370
    /// section 2.2.4: SKEYSEED = prf(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n))).
    public static func rekeyedSkeyseed(
        prf: PseudoRandomFunction, oldDeriving: KeyMaterial, sharedSecret: KeyMaterial,
        nonceInitiator: Nonce, nonceResponder: Nonce, additionalSecrets: [KeyMaterial] = []
    ) -> KeyMaterial {
        KeyMaterial(
            prf.compute(
                key: oldDeriving.bytes,
                data: sharedSecret.bytes + nonceInitiator.octets + nonceResponder.octets + additionalSecrets.flatMap(\.bytes)))
    }

    /// The keys after an additional key exchange (RFC 9370 section 2.2.2): SKEYSEED(n) = prf(SK_d(n-1), SK(n) |
    /// Ni | Nr), then the seven keys from it as after IKE_SA_INIT (prf+ over Ni | Nr | SPIi | SPIr).
    public static func afterAdditionalKeyExchange(
        suite: IKECipherSuite, previous: IKESAKeys, sharedSecret: KeyMaterial, nonceInitiator: Nonce, nonceResponder: Nonce,
        spiInitiator: IKESPI, spiResponder: IKESPI
    ) -> IKESAKeys {
        let skeyseed = rekeyedSkeyseed(
            prf: suite.prf, oldDeriving: previous.deriving, sharedSecret: sharedSecret, nonceInitiator: nonceInitiator,
            nonceResponder: nonceResponder)
        return ikeKeys(
            suite: suite, skeyseed: skeyseed, nonceInitiator: nonceInitiator, nonceResponder: nonceResponder,
            spiInitiator: spiInitiator, spiResponder: spiResponder)
    }

    public static func ikeKeys(
        suite: IKECipherSuite, skeyseed: KeyMaterial, nonceInitiator: Nonce,
        nonceResponder: Nonce, spiInitiator: IKESPI, spiResponder: IKESPI
    ) -> IKESAKeys {
        let prfLength = suite.prf.outputLength
        let integrityLength = suite.integrity?.keyLength ?? 0
        let encryptionLength = suite.encryption.keyLength
        let total = prfLength * 3 + integrityLength * 2 + encryptionLength * 2
        let stream = suite.prf.expand(
            key: skeyseed.bytes,
            seed: nonceInitiator.octets + nonceResponder.octets + spiInitiator.bytes + spiResponder.bytes,
            length: total)
        var cursor = stream[...]
        func take(_ n: Int) -> KeyMaterial {
            defer { cursor = cursor.dropFirst(n) }
            return KeyMaterial(Array(cursor.prefix(n)))
        }
        return IKESAKeys(
            deriving: take(prfLength), integrityInitiator: take(integrityLength),
            integrityResponder: take(integrityLength), encryptionInitiator: take(encryptionLength),
            encryptionResponder: take(encryptionLength), authenticationInitiator: take(prfLength),
            authenticationResponder: take(prfLength))
    }

    /// KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr); initiator-to-responder keys first (section 2.17).
    /// `additionalSecrets` are SK(1)..SK(n) of the IKE_FOLLOWUP_KE exchanges (RFC 9370 section 2.2.4: KEYMAT =
    /// prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n))).
    public static func childKeys(
        prf: PseudoRandomFunction, deriving: KeyMaterial, suite: ChildCipherSuite,
        sharedSecret: KeyMaterial?, nonceInitiator: Nonce, nonceResponder: Nonce, additionalSecrets: [KeyMaterial] = []
    ) -> ChildSAKeys {
        let encryptionLength = suite.encryption.keyLength
        let integrityLength = suite.integrity?.keyLength ?? 0
        let seed = (sharedSecret?.bytes ?? []) + nonceInitiator.octets + nonceResponder.octets + additionalSecrets.flatMap(\.bytes)
        let stream = prf.expand(key: deriving.bytes, seed: seed, length: 2 * (encryptionLength + integrityLength))
        var cursor = stream[...]
        func take(_ n: Int) -> KeyMaterial {
            defer { cursor = cursor.dropFirst(n) }
            return KeyMaterial(Array(cursor.prefix(n)))
        }
        let ei = take(encryptionLength)
        let ai = take(integrityLength)
        let er = take(encryptionLength)
        let ar = take(integrityLength)
        return ChildSAKeys(encryptionInitiator: ei, integrityInitiator: ai, encryptionResponder: er, integrityResponder: ar)
    }

    /// AUTH for a pre-shared key (section 2.15): prf(prf(PSK, "Key Pad for IKEv2"), signed octets), where the
    /// signed octets are the sender's first message, the peer's nonce and prf(SK_p, ID body).
    public static func sharedKeyAuthentication(
        prf: PseudoRandomFunction, sharedKey: KeyMaterial, firstMessage: [UInt8],
        peerNonce: Nonce, authenticationKey: KeyMaterial,
        identification: IdentificationPayload, intAuth: [UInt8] = []
    ) -> [UInt8] {
        sharedKeyAuthentication(
            prf: prf, padKey: sharedKeyPad(prf: prf, sharedKey: sharedKey), firstMessage: firstMessage, peerNonce: peerNonce,
            authenticationKey: authenticationKey, identification: identification, intAuth: intAuth)
    }

    /// prf(PSK, "Key Pad for IKEv2"): the same for every IKE SA of a key, so an engine computes it once per key.
    public static func sharedKeyPad(prf: PseudoRandomFunction, sharedKey: KeyMaterial) -> KeyMaterial {
        KeyMaterial(prf.compute(key: sharedKey.bytes, data: Array("Key Pad for IKEv2".utf8)))
    }

    /// As above, with the key pad already computed.
    public static func sharedKeyAuthentication(
        prf: PseudoRandomFunction, padKey: KeyMaterial, firstMessage: [UInt8],
        peerNonce: Nonce, authenticationKey: KeyMaterial,
        identification: IdentificationPayload, intAuth: [UInt8] = []
    ) -> [UInt8] {
        let macedID = prf.compute(key: authenticationKey.bytes, data: identification.authenticatedBody)
        // RFC 9242 section 3.3.2: after IKE_INTERMEDIATE exchanges the signed octets end with IntAuth.
        let signedOctets = firstMessage + peerNonce.octets + macedID + intAuth
        return prf.compute(key: padKey.bytes, data: signedOctets)
    }
}
