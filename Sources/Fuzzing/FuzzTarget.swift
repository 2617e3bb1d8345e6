/// One entry point for coverage-guided fuzzing. It takes any octets, must never trap, and reports the
/// invariants it found broken. libFuzzer drives it through `fuzz/` (scripts/fuzz.sh); the unit tests
/// replay its seeds, the committed corpus and a fixed number of mutations, so CI runs every target too.
public protocol FuzzTarget: AnyObject {
    /// The name scripts and corpus folders use (`fuzz/corpus/NAME`).
    static var name: String { get }
    init()
    /// Well-formed inputs to start mutating from.
    func seeds() -> [[UInt8]]
    /// Runs one input through the code under test; returns the invariants it broke (empty when all held).
    func run(_ input: [UInt8]) -> [String]
}

/// Every fuzz target, by name.
public enum FuzzTargets {
    public static var all: [any FuzzTarget.Type] {
        [
            IKEMessageCodecFuzzTarget.self,
            IKEResponderFuzzTarget.self,
            IKEAuthFuzzTarget.self,
            IKEProtectedExchangeFuzzTarget.self,
            IKEIntermediateFuzzTarget.self,
            EthernetBridgeFuzzTarget.self,
            TerminalAgentFuzzTarget.self,
            ConfigurationTextFuzzTarget.self,
            RevocationDataFuzzTarget.self
        ]
    }

    public static func make(named name: String) -> (any FuzzTarget)? {
        all.first { $0.name == name }.map { $0.init() }
    }
}
