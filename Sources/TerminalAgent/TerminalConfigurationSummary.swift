extension TerminalConfiguration {
    /// What `ikeproxy terminal --check` says of a file that loads (never the enrollment key).
    public var summary: [String] {
        let dataPath: String
        switch backend {
        case .userSpace:
            dataPath =
                "user-space ESP: TUN \(tunName), MTU \(tunMTU), routes \(tunRoutes.isEmpty ? "none" : tunRoutes.joined(separator: ", "))"
                + (fwmark.map { ", own packets marked \($0)" } ?? "")
        case .kernel:
            dataPath =
                "kernel ESP (XFRM): \(traps.count) trap polic\(traps.count == 1 ? "y" : "ies")"
                + (traps.isEmpty ? "" : " (\(traps.map(\.description).joined(separator: "; ")))")
        }
        return [
            "terminal \(terminalID): key delivery on \(keyDeliveryListen) port \(keyDeliveryPort), the proxy at \(proxyAddress)",
            "ESP for \(outerAddresses.map(\.description).joined(separator: ", ")), in UDP on port \(encapsulationPort) and as IP protocol 50",
            dataPath,
            "STATUS " + (statusInterval > 0 ? "every \(Int(statusInterval)) s" : "at start only")
                + ", NAT keepalives every \(Int(keepaliveInterval)) s"
        ]
    }
}
