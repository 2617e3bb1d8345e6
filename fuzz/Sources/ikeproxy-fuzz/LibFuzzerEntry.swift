import CLibFuzzer
import Fuzzing

#if canImport(Glibc)
    import Glibc
#endif

/// The target chosen by IKEPROXY_FUZZ_TARGET.
nonisolated(unsafe) private var target: (any FuzzTarget)?

/// The program's main (SwiftPM links an executable's entry under this name): picks the target, writes its
/// seeds to IKEPROXY_FUZZ_SEEDS if set, and hands the command line to libFuzzer.
@_cdecl("ikeproxy_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    guard let name = getenv("IKEPROXY_FUZZ_TARGET").map({ String(cString: $0) }), let made = FuzzTargets.make(named: name) else {
        report("set IKEPROXY_FUZZ_TARGET to one of: \(FuzzTargets.all.map { $0.name }.joined(separator: ", "))")
        return 2
    }
    target = made
    if let folder = getenv("IKEPROXY_FUZZ_SEEDS").map({ String(cString: $0) }) {
        for (index, seed) in made.seeds().enumerated() {
            guard let file = fopen("\(folder)/seed-\(index)", "wb") else {
                report("cannot write seeds to \(folder)")
                return 2
            }
            _ = seed.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
        }
    }
    var count = argc
    var arguments: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in
        let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
        let broken = target?.run(input) ?? []
        // A broken invariant aborts, so libFuzzer keeps the input as a crash.
        if !broken.isEmpty {
            report("invariant broken: \(broken.joined(separator: "; "))")
            abort()
        }
        return 0
    }
}

private func report(_ text: String) {
    let line = Array("ikeproxy-fuzz: \(text)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
