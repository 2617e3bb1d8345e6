import Foundation
import Store

// Seals per second through a PKCS#11 token (SoftHSM2) directly, and with the envelope sealer (the token
// wraps a data key once; boxes are AES-GCM in software), side by side in one run, on a box the size of an
// IKE SA snapshot. Usage: seal-benchmark [BOXES] (release build; needs softhsm2).
let boxes = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 2000 : 2000
let module = "/usr/lib/softhsm/libsofthsm2.so"
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ikp-seal-benchmark-\(getpid())")
let tokens = directory.appendingPathComponent("tokens")
try FileManager.default.createDirectory(at: tokens, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: directory) }
let conf = directory.appendingPathComponent("softhsm2.conf")
try "directories.tokendir = \(tokens.path)\nobjectstore.backend = file\nlog.level = ERROR\n".write(to: conf, atomically: true, encoding: .utf8)
setenv("SOFTHSM2_CONF", conf.path, 1)
let initialize = Process()
initialize.executableURL = URL(fileURLWithPath: "/usr/bin/softhsm2-util")
initialize.arguments = ["--init-token", "--free", "--label", "bench", "--pin", "1234", "--so-pin", "123456"]
initialize.standardOutput = FileHandle.nullDevice
try initialize.run()
initialize.waitUntilExit()

let token = TokenSealer(modulePath: module, tokenLabel: "bench", pin: "1234")
guard token.isAvailable() else {
    print("token not available: \(token.lastError ?? "")")
    exit(1)
}
let envelope = try EnvelopeSealer(token: token, wrappedKey: nil)
let snapshot = [UInt8](repeating: 0x5a, count: 1600)

func microsecondsPerSeal(_ sealer: Sealer) throws -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    for index in 0..<boxes { _ = try sealer.seal(snapshot, context: .savedIKESA(key: "\(index)")) }
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1000 / Double(boxes)
}

print("seal of a \(snapshot.count)-octet box, \(boxes) boxes per round, rounds alternated (µs per box)")
print("round  token (SoftHSM2)  envelope (data key)  ratio")
var ratios: [Double] = []
for round in 1...5 {
    let direct = try microsecondsPerSeal(token)
    let wrapped = try microsecondsPerSeal(envelope)
    ratios.append(direct / wrapped)
    print(String(format: "%5d  %16.1f  %19.1f  %5.1fx", round, direct, wrapped, direct / wrapped))
}
print(String(format: "median ratio %.1fx", ratios.sorted()[ratios.count / 2]))
