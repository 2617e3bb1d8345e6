/// The connections configured for one address pair, in file order, and for each remote identity the first of
/// them that accepts it: what IKE_SA_INIT and IKE_AUTH look up for every negotiation. Made once per address
/// pair instead of filtering every connection per message (with a thousand connections on one pair that was
/// the responder's largest cost after the crypto, issue 21).
struct ConnectionCandidates {
    var positions: [Int] = []
    var firstByIdentity: [IdentificationPayload: Int] = [:]
    /// The first connection that accepts any identity (none configured).
    var firstForAnyIdentity: Int?

    init(positions: [Int], connections: [ConnectionConfiguration]) {
        self.positions = positions
        for position in positions {
            if let identity = connections[position].remoteIdentity?.payload {
                if firstByIdentity[identity] == nil { firstByIdentity[identity] = position }
            } else if firstForAnyIdentity == nil {
                firstForAnyIdentity = position
            }
        }
    }

    /// The first connection, in file order, whose remote identity is this one or any.
    func first(accepting identity: IdentificationPayload) -> Int? {
        switch (firstByIdentity[identity], firstForAnyIdentity) {
        case (let a?, let b?): min(a, b)
        case (let a?, nil): a
        case (nil, let b): b
        }
    }
}

/// The two addresses of a negotiation, as connection candidates are looked up by them.
struct AddressPair: Hashable {
    var local: IPAddress
    var remote: IPAddress
}
