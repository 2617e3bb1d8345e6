#if canImport(Glibc)
    import Glibc
#endif

/// Looks at the interfaces' addresses (getifaddrs).
/// The addresses an interface holds (getifaddrs), as text: the daemon refuses ports that hold one.
public func interfaceAddresses(_ name: String) -> [String] {
    var list: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&list) == 0, let first = list else { return [] }
    defer { freeifaddrs(list) }
    var result: [String] = []
    var cursor: UnsafeMutablePointer<ifaddrs>? = first
    while let entry = cursor {
        defer { cursor = entry.pointee.ifa_next }
        guard String(cString: entry.pointee.ifa_name) == name, let address = entry.pointee.ifa_addr else { continue }
        let family = Int32(address.pointee.sa_family)
        guard family == AF_INET || family == AF_INET6 else { continue }
        var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
        if getnameinfo(address, length, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0 {
            result.append(String(cString: text))
        }
    }
    return result
}

/// The index of the interface that holds `address` (raw octets), e.g. to send to an IPv6 link-local or
/// multicast address on the link of one's own global address; nil when no interface holds it.
public func interfaceIndex(holding address: [UInt8]) -> UInt32? {
    var list: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&list) == 0, let first = list else { return nil }
    defer { freeifaddrs(list) }
    var cursor: UnsafeMutablePointer<ifaddrs>? = first
    while let entry = cursor {
        defer { cursor = entry.pointee.ifa_next }
        guard let raw = entry.pointee.ifa_addr else { continue }
        let octets: [UInt8]
        switch Int32(raw.pointee.sa_family) {
        case AF_INET6:
            octets = raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) } }
        case AF_INET: octets = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in withUnsafeBytes(of: p.pointee.sin_addr) { Array($0) } }
        default: continue
        }
        if octets == address {
            let index = if_nametoindex(entry.pointee.ifa_name)
            return index == 0 ? nil : index
        }
    }
    return nil
}
