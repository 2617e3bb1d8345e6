/// One ADDITIONAL_KEY_EXCHANGE_n transform chosen (RFC 9370 section 2.2.1): `method` nil is NONE, the exchange
/// left out.
public struct AdditionalKeyExchange: Equatable, Sendable {
    /// n, from 1 to 7.
    public var number: Int
    public var method: KeyExchangeMethod?

    public init(number: Int, method: KeyExchangeMethod?) {
        self.number = number
        self.method = method
    }

    public var transform: Transform {
        Transform(type: .additionalKeyExchange(number), identifier: method?.identifier ?? TransformType.noneIdentifier)
    }

    /// strongSwan's token: "ke1_mlkem768", "ke2_none".
    public var token: String { "ke\(number)_\(method?.proposalToken ?? "none")" }
}

/// The algorithms negotiated for an IKE SA (RFC 7296 section 3.3): one of each transform type.
public struct IKECipherSuite: Equatable, Sendable {
    public var encryption: EncryptionAlgorithm
    public var integrity: IntegrityAlgorithm?
    public var prf: PseudoRandomFunction
    public var group: KeyExchangeGroup
    /// The ADDITIONAL_KEY_EXCHANGE transforms chosen, in the order of their numbers: one for each type the
    /// initiator offered (RFC 9370 section 2.2.1), NONE included; the exchanges to run are those with a method.
    public var additionalKeyExchanges: [AdditionalKeyExchange]

    public init(
        encryption: EncryptionAlgorithm, integrity: IntegrityAlgorithm?, prf: PseudoRandomFunction, group: KeyExchangeGroup,
        additionalKeyExchanges: [AdditionalKeyExchange] = []
    ) {
        self.encryption = encryption
        self.integrity = integrity
        self.prf = prf
        self.group = group
        self.additionalKeyExchanges = additionalKeyExchanges
    }

    /// The additional key exchanges to run (IKE_INTERMEDIATE, or IKE_FOLLOWUP_KE after a rekey), in order (NONE left out).
    public var keyExchangesToRun: [KeyExchangeMethod] { additionalKeyExchanges.compactMap(\.method) }

    /// The transforms of the chosen proposal; an ADDITIONAL_KEY_EXCHANGE chosen as NONE is left out, as RFC 9370
    /// section 2.2.1 allows, and a type missing from a responder's choice is taken as NONE.
    public var transforms: [Transform] {
        [encryption.transform, prf.transform] + (integrity.map { [$0.transform] } ?? []) + [group.transform]
            + additionalKeyExchanges.filter { $0.method != nil }.map(\.transform)
    }

    /// strongSwan-style name, e.g. "aes256gcm16-prfsha256-x25519" or "aes256gcm16-prfsha256-x25519-ke1_mlkem768".
    public var name: String {
        // Appended in place: every event and log line of a negotiation names its suite.
        var name = ProposalSpec.name(of: encryption)
        if let integrity { name += "-" + ProposalSpec.name(of: integrity) }
        name += "-" + ProposalSpec.name(of: prf) + "-" + ProposalSpec.name(of: group)
        for exchange in additionalKeyExchanges where exchange.method != nil { name += "-" + exchange.token }
        return name
    }
}

/// The algorithms negotiated for an ESP CHILD SA; `group` is set when the exchange used PFS, and
/// `additionalKeyExchanges` when that PFS was hybrid (RFC 9370 section 2.2.4: IKE_FOLLOWUP_KE after CREATE_CHILD_SA).
public struct ChildCipherSuite: Equatable, Sendable {
    public var encryption: EncryptionAlgorithm
    public var integrity: IntegrityAlgorithm?
    public var group: KeyExchangeGroup?
    public var extendedSequenceNumbers: Bool
    /// As `IKECipherSuite.additionalKeyExchanges`: one for each type the initiator offered, NONE included.
    public var additionalKeyExchanges: [AdditionalKeyExchange]

    public init(
        encryption: EncryptionAlgorithm, integrity: IntegrityAlgorithm?, group: KeyExchangeGroup?, extendedSequenceNumbers: Bool,
        additionalKeyExchanges: [AdditionalKeyExchange] = []
    ) {
        self.encryption = encryption
        self.integrity = integrity
        self.group = group
        self.extendedSequenceNumbers = extendedSequenceNumbers
        self.additionalKeyExchanges = additionalKeyExchanges
    }

    /// The additional key exchanges to run after CREATE_CHILD_SA, in order (NONE left out).
    public var keyExchangesToRun: [KeyExchangeMethod] { additionalKeyExchanges.compactMap(\.method) }

    public var name: String {
        var name = ProposalSpec.name(of: encryption)
        if let integrity { name += "-" + ProposalSpec.name(of: integrity) }
        if let group { name += "-" + ProposalSpec.name(of: group) }
        for exchange in additionalKeyExchanges where exchange.method != nil { name += "-" + exchange.token }
        if extendedSequenceNumbers { name += "-esn" }
        return name
    }
}

/// Why a proposal string from a configuration was rejected.
public enum ProposalSpecError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownAlgorithm(String, in: String)
    case missing(String, in: String)
    case integrityWithAEAD(String)
    public var description: String {
        switch self {
        case .unknownAlgorithm(let token, let spec): return "unknown algorithm '\(token)' in proposal '\(spec)'"
        case .missing(let what, let spec): return "proposal '\(spec)' names no \(what) algorithm"
        case .integrityWithAEAD(let spec): return "proposal '\(spec)' mixes an AEAD cipher with an integrity algorithm"
        }
    }
}

/// A configured proposal in strongSwan's notation ("aes256-sha256-modp2048", "aes128gcm16-prfsha384-ecp256"):
/// lists of acceptable algorithms for each transform type, used both to offer and to select.
public struct ProposalSpec: Equatable, Sendable {
    public var encryption: [EncryptionAlgorithm] = []
    public var integrity: [IntegrityAlgorithm] = []
    public var prf: [PseudoRandomFunction] = []
    public var groups: [KeyExchangeGroup] = []
    public var extendedSequenceNumbers: [Bool] = []
    /// What each ADDITIONAL_KEY_EXCHANGE_n may be (RFC 9370), by n from 1 to 7: nil in a list is NONE (the
    /// exchange optional). Types not listed are not offered, and are accepted only as NONE.
    public var additionalKeyExchanges: [Int: [KeyExchangeMethod?]] = [:]

    public static func name(of value: EncryptionAlgorithm) -> String {
        switch value {
        case .aesCBC(let bits): return "aes\(bits)"
        case .aesGCM16(let bits): return "aes\(bits)gcm16"
        case .chacha20Poly1305: return "chacha20poly1305"
        }
    }
    public static func name(of value: IntegrityAlgorithm) -> String {
        switch value {
        case .hmacSHA256_128: return "sha256"
        case .hmacSHA384_192: return "sha384"
        case .hmacSHA512_256: return "sha512"
        }
    }
    public static func name(of value: PseudoRandomFunction) -> String {
        switch value {
        case .hmacSHA1: return "prfsha1"
        case .hmacSHA256: return "prfsha256"
        case .hmacSHA384: return "prfsha384"
        case .hmacSHA512: return "prfsha512"
        }
    }
    public static func name(of value: KeyExchangeGroup) -> String {
        switch value {
        case .modp2048: return "modp2048"
        case .ecp256: return "ecp256"
        case .ecp384: return "ecp384"
        case .ecp521: return "ecp521"
        case .curve25519: return "x25519"
        }
    }

    /// The additional key exchanges a chosen suite's name lists (`ke1_mlkem768`: one method per type; the NONE ones
    /// are not named), in the order of their types: what a saved suite is read back with.
    public var namedAdditionalKeyExchanges: [AdditionalKeyExchange] {
        additionalKeyExchanges.keys.sorted().compactMap { number in
            additionalKeyExchanges[number]?.first.map { AdditionalKeyExchange(number: number, method: $0) }
        }
    }

    /// The proposal in strongSwan's notation again (what `init(_:forIKE:)` reads), for tables and logs.
    public var text: String {
        var tokens = encryption.map(Self.name(of:)) + integrity.map(Self.name(of:)) + prf.map(Self.name(of:)) + groups.map(Self.name(of:))
        for number in additionalKeyExchanges.keys.sorted() {
            tokens += additionalKeyExchanges[number]!.map { AdditionalKeyExchange(number: number, method: $0).token }
        }
        if extendedSequenceNumbers != [false] { tokens += extendedSequenceNumbers.map { $0 ? "esn" : "noesn" } }
        return tokens.joined(separator: "-")
    }

    /// Parses a proposal. For IKE (`forIKE`), a missing PRF is taken from the integrity algorithm as
    /// strongSwan does; for ESP a missing ESN choice means "no ESN".
    public init(_ text: String, forIKE: Bool) throws(ProposalSpecError) {
        for token in text.lowercased().split(separator: "-").map(String.init) {
            switch token {
            case "aes128", "aes192", "aes256": encryption.append(.aesCBC(keyBits: Int(token.dropFirst(3))!))
            case "aes128gcm16", "aes128gcm128", "aes128gcm": encryption.append(.aesGCM16(keyBits: 128))
            case "aes192gcm16", "aes192gcm128", "aes192gcm": encryption.append(.aesGCM16(keyBits: 192))
            case "aes256gcm16", "aes256gcm128", "aes256gcm": encryption.append(.aesGCM16(keyBits: 256))
            case "chacha20poly1305": encryption.append(.chacha20Poly1305)
            case "sha256", "sha2_256": integrity.append(.hmacSHA256_128)
            case "sha384", "sha2_384": integrity.append(.hmacSHA384_192)
            case "sha512", "sha2_512": integrity.append(.hmacSHA512_256)
            case "prfsha1": prf.append(.hmacSHA1)
            case "prfsha256": prf.append(.hmacSHA256)
            case "prfsha384": prf.append(.hmacSHA384)
            case "prfsha512": prf.append(.hmacSHA512)
            case "esn": extendedSequenceNumbers.append(true)
            case "noesn": extendedSequenceNumbers.append(false)
            default:
                if let group = Self.group(token) {
                    groups.append(group)
                } else if let (number, method) = Self.additionalKeyExchange(token) {
                    // "ke1_mlkem768", "ke2_none": strongSwan's notation for ADDITIONAL_KEY_EXCHANGE_1..7.
                    additionalKeyExchanges[number, default: []].append(method)
                } else {
                    throw .unknownAlgorithm(token, in: text)
                }
            }
        }
        guard !encryption.isEmpty else { throw .missing("encryption", in: text) }
        let aead = encryption.allSatisfy(\.isAEAD)
        if aead, !integrity.isEmpty { throw .integrityWithAEAD(text) }
        if !aead, integrity.isEmpty { throw .missing("integrity", in: text) }
        if forIKE {
            if prf.isEmpty {
                prf = integrity.map { i -> PseudoRandomFunction in
                    switch i {
                    case .hmacSHA256_128: return .hmacSHA256
                    case .hmacSHA384_192: return .hmacSHA384
                    case .hmacSHA512_256: return .hmacSHA512
                    }
                }
            }
            guard !prf.isEmpty else { throw .missing("pseudo-random function", in: text) }
            guard !groups.isEmpty else { throw .missing("key exchange", in: text) }
        }
        if extendedSequenceNumbers.isEmpty { extendedSequenceNumbers = [false] }
    }

    /// A Diffie-Hellman group's token ("x25519", also "curve25519"), in Transform Type 4 and in "ke<n>_".
    static func group(_ token: String) -> KeyExchangeGroup? {
        token == "curve25519" ? .curve25519 : KeyExchangeGroup.allCases.first { name(of: $0) == token }
    }

    /// Reads "ke<n>_<method>" (n from 1 to 7; method "none", "mlkem768", "mlkem1024" or a group's token).
    static func additionalKeyExchange(_ token: String) -> (Int, KeyExchangeMethod?)? {
        guard token.hasPrefix("ke"), let separator = token.firstIndex(of: "_"),
            let number = Int(token[token.index(token.startIndex, offsetBy: 2)..<separator]), (1...7).contains(number)
        else { return nil }
        let name = String(token[token.index(after: separator)...])
        if name == "none" { return (number, nil) }
        if let group = group(name) { return (number, .group(group)) }
        guard let method = [KeyExchangeMethod.mlkem768, .mlkem1024].first(where: { $0.proposalToken == name }) else { return nil }
        return (number, method)
    }

    /// Chooses each ADDITIONAL_KEY_EXCHANGE_n of a peer's proposal (RFC 9370 section 2.2.1): the first offered
    /// transform of each type that this side accepts, NONE accepted where this side lists it or lists nothing
    /// for that type. Nil when some type cannot be agreed: offered without NONE but not accepted, or not
    /// offered though this side requires it.
    func selectAdditionalKeyExchanges(from proposal: Proposal) -> [AdditionalKeyExchange]? {
        var chosen: [AdditionalKeyExchange] = []
        for number in 1...7 {
            let offered = proposal.transforms(of: .additionalKeyExchange(number)).map(\.identifier)
            let accepted = additionalKeyExchanges[number] ?? [nil]
            if offered.isEmpty {
                guard accepted.contains(where: { $0 == nil }) else { return nil }
                continue
            }
            guard
                let pick = offered.lazy.compactMap({ identifier -> KeyExchangeMethod?? in
                    let method = identifier == TransformType.noneIdentifier ? nil : KeyExchangeMethod(identifier: identifier)
                    guard identifier == TransformType.noneIdentifier || method != nil else { return nil }
                    return accepted.contains(where: { $0 == method }) ? .some(method) : nil
                }).first
            else { return nil }
            chosen.append(AdditionalKeyExchange(number: number, method: pick))
        }
        return chosen
    }

    /// The proposal substructure offering every listed algorithm.
    public func proposal(number: UInt8, protocolID: ProtocolID, spi: [UInt8], includeGroups: Bool = true) -> Proposal {
        var transforms = encryption.map(\.transform)
        if protocolID == .ike { transforms += prf.map(\.transform) }
        transforms += integrity.map(\.transform)
        if includeGroups {
            transforms += groups.map(\.transform)
            for number in additionalKeyExchanges.keys.sorted() {
                transforms += additionalKeyExchanges[number]!.map { AdditionalKeyExchange(number: number, method: $0).transform }
            }
        }
        if protocolID != .ike {
            transforms += extendedSequenceNumbers.map { Transform(type: .extendedSequenceNumbers, identifier: $0 ? 1 : 0) }
        }
        return Proposal(number: number, protocolID: protocolID, spi: spi, transforms: transforms)
    }

    /// Picks one acceptable transform of each type from a peer's proposal, or nil if any type fails.
    public func selectIKE(from proposal: Proposal) -> IKECipherSuite? {
        guard proposal.protocolID == .ike,
            let encryption = proposal.transforms(of: .encryption).compactMap(EncryptionAlgorithm.init(transform:)).first(
                where: self.encryption.contains),
            let prf = proposal.transforms(of: .pseudoRandomFunction).compactMap({ PseudoRandomFunction(rawValue: $0.identifier) }).first(
                where: self.prf.contains),
            let group = proposal.transforms(of: .keyExchange).compactMap({ KeyExchangeGroup(rawValue: $0.identifier) }).first(where: groups.contains),
            let additional = selectAdditionalKeyExchanges(from: proposal)
        else { return nil }
        let offeredIntegrity = proposal.transforms(of: .integrity).compactMap { IntegrityAlgorithm(rawValue: $0.identifier) }
        if encryption.isAEAD {
            // An AEAD proposal carries no integrity transform, or only NONE (identifier 0).
            guard proposal.transforms(of: .integrity).allSatisfy({ $0.identifier == 0 }) else { return nil }
            return IKECipherSuite(encryption: encryption, integrity: nil, prf: prf, group: group, additionalKeyExchanges: additional)
        }
        guard let integrity = offeredIntegrity.first(where: self.integrity.contains) else { return nil }
        return IKECipherSuite(encryption: encryption, integrity: integrity, prf: prf, group: group, additionalKeyExchanges: additional)
    }

    /// As `selectIKE` for an ESP proposal; `requireGroup` is the PFS group when a KE payload came along.
    public func selectChild(from proposal: Proposal, pfs: Bool) -> ChildCipherSuite? {
        guard proposal.protocolID == .esp, proposal.spi.count == 4,
            let encryption = proposal.transforms(of: .encryption).compactMap(EncryptionAlgorithm.init(transform:)).first(
                where: self.encryption.contains)
        else { return nil }
        var integrity: IntegrityAlgorithm?
        if !encryption.isAEAD {
            guard
                let chosen = proposal.transforms(of: .integrity).compactMap({ IntegrityAlgorithm(rawValue: $0.identifier) })
                    .first(where: self.integrity.contains)
            else { return nil }
            integrity = chosen
        } else if !proposal.transforms(of: .integrity).allSatisfy({ $0.identifier == 0 }) {
            return nil
        }
        let offeredESN = proposal.transforms(of: .extendedSequenceNumbers).map { $0.identifier == 1 }
        guard let esn = (offeredESN.isEmpty ? [false] : offeredESN).first(where: extendedSequenceNumbers.contains) else { return nil }
        var group: KeyExchangeGroup?
        let offeredGroups = proposal.transforms(of: .keyExchange).compactMap { KeyExchangeGroup(rawValue: $0.identifier) }
        var additional: [AdditionalKeyExchange] = []
        if pfs {
            guard let chosen = offeredGroups.first(where: groups.contains) else { return nil }
            group = chosen
            // With PFS, the ADDITIONAL_KEY_EXCHANGE types are chosen as in IKE_SA_INIT (RFC 9370 sections 2.2.1 and
            // 2.2.4). Without it (IKE_AUTH, or no KE), they are ignored as Transform Type 4 is (RFC 7296 section 1.2).
            guard let picked = selectAdditionalKeyExchanges(from: proposal) else { return nil }
            additional = picked
        }
        return ChildCipherSuite(
            encryption: encryption, integrity: integrity, group: group, extendedSequenceNumbers: esn, additionalKeyExchanges: additional)
    }
}

extension IKECipherSuite {
    /// The single-choice proposal a responder returns.
    func proposal(number: UInt8, spi: [UInt8]) -> Proposal {
        Proposal(number: number, protocolID: .ike, spi: spi, transforms: transforms)
    }
}

extension ChildCipherSuite {
    func proposal(number: UInt8, spi: ChildSPI) -> Proposal {
        var transforms = [encryption.transform]
        if let integrity { transforms.append(integrity.transform) }
        if let group { transforms.append(group.transform) }
        transforms += additionalKeyExchanges.filter { $0.method != nil }.map(\.transform)
        transforms.append(Transform(type: .extendedSequenceNumbers, identifier: extendedSequenceNumbers ? 1 : 0))
        return Proposal(number: number, protocolID: .esp, spi: spi.bytes, transforms: transforms)
    }
}
