/// SA payload (RFC 7296 section 3.3): an ordered list of proposals.
public struct SecurityAssociationPayload: Equatable, Sendable {
    public var proposals: [Proposal]
    public init(proposals: [Proposal]) { self.proposals = proposals }

    static func decode(_ body: ByteReader) throws(IKEDecodingError) -> Self {
        var reader = body
        var proposals: [Proposal] = []
        var last = false
        while !last {
            guard !reader.isAtEnd else { throw .truncated(field: "sa.proposals", needed: 8, available: 0) }
            proposals.append(try Proposal.decode(&reader, isLast: &last))
        }
        guard reader.isAtEnd else { throw .trailingBytes(field: "sa", count: reader.remaining) }
        return Self(proposals: proposals)
    }

    func encode(into writer: inout ByteWriter) {
        for (index, proposal) in proposals.enumerated() {
            proposal.encode(into: &writer, isLast: index == proposals.count - 1)
        }
    }
}
