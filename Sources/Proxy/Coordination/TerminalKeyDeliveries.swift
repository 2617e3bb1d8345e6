import IKEv2
import KeyDelivery
import Packets

/// Key delivery to the terminals (docs/key-delivery.md): one channel and key setter per terminal ID, the
/// removed terminals whose last messages (the FLUSH) are not acknowledged yet, and the framing of each
/// datagram as UDP from the proxy's link-local key-delivery address, which it owns on the terminal link only.
struct TerminalKeyDeliveries {
    let settings: ProxySettings
    /// The first epoch of every channel; a channel made anew for a terminal enrolled again takes a later one.
    let epoch: UInt64
    private var setters: [UInt64: (setter: TerminalKeySetter, entry: TerminalEntry)] = [:]
    private var channelsReplaced: UInt64 = 0
    /// Removed terminals, by address: their acknowledgements are still taken, nothing else from them.
    private var departed: [IPAddress: TerminalEntry] = [:]

    /// Lines below it are not made (`LogLevel`): the engines' level.
    let logLevel: LogLevel

    init(settings: ProxySettings, epoch: UInt64, logLevel: LogLevel = .info) {
        self.settings = settings
        self.epoch = epoch
        self.logLevel = logLevel
    }

    /// The terminal's key setter, made on first use.
    mutating func setter(for terminal: TerminalEntry) -> TerminalKeySetter {
        if let existing = setters[terminal.terminalID], existing.entry.enrollmentKey == terminal.enrollmentKey {
            // Enrolled again at other addresses: retransmissions go where the terminal is now.
            if existing.entry.keyDeliveryAddress != terminal.keyDeliveryAddress || existing.entry.keyDeliveryPort != terminal.keyDeliveryPort {
                setters[terminal.terminalID] = (existing.setter, terminal)
            }
            return existing.setter
        }
        // A terminal enrolled again under a new key gets a new channel, in a later epoch than the old one's so
        // the terminal takes its sequence numbers afresh.
        if setters[terminal.terminalID] != nil { channelsReplaced += 1 }
        let setter = TerminalKeySetter(
            channel: KeyDeliveryChannel(
                role: .proxy, terminalID: terminal.terminalID,
                enrollmentKey: terminal.enrollmentKey, epoch: epoch + channelsReplaced), logLevel: logLevel)
        setters[terminal.terminalID] = (setter, terminal)
        return setter
    }

    /// Round trips of key-delivery messages acknowledged since the last call, of every terminal.
    func takeRoundTrips() -> [Double] { setters.values.flatMap { $0.setter.channel.takeRoundTrips() } }

    /// Key-delivery messages sent to this terminal and not acknowledged yet.
    func unacknowledged(terminalID: UInt64) -> Int { setters[terminalID]?.setter.channel.unacknowledgedCount ?? 0 }

    /// This address is no longer acted for; `delivery` is where its acknowledgements come from.
    mutating func depart(_ address: IPAddress, delivery: TerminalEntry) { departed[address] = delivery }

    /// A removed terminal whose acknowledgements are still awaited at this address.
    func departedTerminal(at address: IPAddress) -> TerminalEntry? { departed[address] }

    /// What a key setter produced, as actions: its log lines and its datagrams to the terminal.
    func actions(_ output: TerminalKeySetter.Output, to terminal: TerminalEntry) -> [ProxyAction] {
        output.log.map { ProxyAction.log($0) } + packets(output.datagrams, to: terminal)
    }

    /// Key-delivery datagrams as IP packets to the terminal's key-delivery address and port.
    func packets(_ datagrams: [[UInt8]], to terminal: TerminalEntry) -> [ProxyAction] {
        let destination = terminal.keyDeliveryAddress
        let source = destination.isIPv6 ? settings.keyDeliverySourceIPv6 : settings.keyDeliverySourceIPv4
        return datagrams.map {
            .send(
                .terminal,
                IPHeaderBuilder.udpPacket(
                    source: source.bytes, destination: destination.bytes,
                    sourcePort: settings.keyDeliveryPort, destinationPort: terminal.keyDeliveryPort, payload: $0))
        }
    }

    /// Retransmissions due, to enrolled terminals and to removed ones still owing an acknowledgement, and the
    /// messages given up on; a removed terminal with nothing left unacknowledged is forgotten.
    mutating func tick(at time: ClockReading, registry: TerminalRegistry)
        -> (actions: [ProxyAction], abandoned: [(terminal: TerminalEntry, message: KeyDeliveryMessage)])
    {
        var actions: [ProxyAction] = []
        var abandoned: [(terminal: TerminalEntry, message: KeyDeliveryMessage)] = []
        for (id, (keySetter, entry)) in setters {
            let departedEntry = departed[entry.keyDeliveryAddress] ?? departed[entry.address]
            guard
                let terminal = registry.terminal(at: entry.keyDeliveryAddress) ?? registry.terminal(at: entry.address)
                    ?? departedEntry.flatMap({ $0.terminalID == id ? $0 : nil })
            else { continue }
            let (datagrams, given) = keySetter.channel.tick(at: time)
            actions += packets(datagrams, to: terminal)
            abandoned += given.map { (terminal, $0) }
        }
        for (address, entry) in departed where setters[entry.terminalID].map({ $0.setter.channel.unacknowledgedCount == 0 }) ?? true {
            departed[address] = nil
        }
        return (actions, abandoned)
    }
}
