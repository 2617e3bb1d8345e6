import IKEv2

/// The two sides of the wire the proxy sits in.
public enum LinkSide: String, Sendable { case internet, terminal }

/// What the proxy asks its data path to do with packets.
public enum ProxyAction: Equatable, Sendable {
    /// Send an IP packet out of one side (forwarded, or built by the proxy: IKE in a terminal's name,
    /// key delivery to a terminal).
    case send(LinkSide, [UInt8])
    /// Pass the packet just received on, unchanged, out of this side (the data path keeps its own copy,
    /// with whatever link-layer framing it arrived in).
    case forward(LinkSide)
    /// A packet not passed on, with the counted reason.
    case drop(PacketDropReason)
    case log(LogLine)
    /// An SA event, for the operator's event stream.
    case event(SAEvent)
    /// Ask the OCSP responders (or fetch the CRLs) a peer's certificate chain names; answer with `revocationChecked`.
    case checkRevocation(RevocationCheckRequest)

    /// A line of text alone.
    public static func log(_ text: String) -> ProxyAction { .log(LogLine(text)) }
}
