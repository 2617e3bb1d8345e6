/// An authenticated request the engine cannot decode (RFC 7296 sections 2.5 and 2.21.3): it passed the
/// integrity check, so the peer is told at once rather than left retransmitting into silence. The answer is
/// the response to that request and uses up its message ID, so a retransmission of it gets the same answer
/// from the cache and the peer's next request is in the window. An unknown critical payload is answered
/// UNSUPPORTED_CRITICAL_PAYLOAD and a traffic selector of a type the engine cannot accept TS_UNACCEPTABLE,
/// and the IKE SA stays; anything else malformed is INVALID_SYNTAX, which ends the IKE SA on both sides.
extension IKEEngine {
    func answerMalformedRequest(session: IKESession, header: IKEHeader, error: IKEDecodingError) -> [EngineAction] {
        var actions = drop(.malformed(error))
        session.expectedRequestID = header.messageID &+ 1
        let answer: NotifyPayload
        switch error {
        case .unsupportedCriticalPayload:
            answer = NotifyPayload(type: .unsupportedCriticalPayload, data: [error.unsupportedType])
        case .invalidField(field: "ts.type", _) where header.exchangeType == .createChildSA:
            answer = NotifyPayload(type: .tsUnacceptable, data: [])
        case .decryptionFailed:
            // Section 2.21.2: what does not decrypt is discarded, whatever its ICV said.
            return actions
        default:
            answer = NotifyPayload(type: .invalidSyntax, data: [])
        }
        actions.append(.log("request \(header.messageID) is malformed (\(error)): answered \(answer.type)"))
        // `respond` closes the IKE SA after an INVALID_SYNTAX answer.
        return actions + respond(session: session, to: header, payloads: [.notify(answer)])
    }
}
