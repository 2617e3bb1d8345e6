// swift-tools-version:6.0
// libFuzzer driver for the targets in Sources/Fuzzing; build and run it with scripts/fuzz.sh.
import PackageDescription

let package = Package(
    name: "IKEProxyFuzz",
    dependencies: [.package(name: "IKEProxy", path: "..")],
    targets: [
        .target(name: "CLibFuzzer"),
        .executableTarget(
            name: "ikeproxy-fuzz", dependencies: ["CLibFuzzer", .product(name: "Fuzzing", package: "IKEProxy")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])])
    ]
)
