// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "IKEProxy",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ikeproxy", targets: ["ikeproxy"]),
        .library(name: "IKEv2", targets: ["IKEv2"]),
        .library(name: "ESP", targets: ["ESP"]),
        .library(name: "Fuzzing", targets: ["Fuzzing"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/attaswift/BigInt.git", from: "6.0.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-openapi-generator.git", from: "1.14.3"),
        .package(url: "https://github.com/apple/swift-openapi-runtime.git", from: "1.13.4"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird.git", from: "2.1.0"),
        .package(url: "https://github.com/swift-server/swift-openapi-async-http-client.git", from: "1.5.0")
    ],
    targets: [
        // Pure IKEv2: wire codec, crypto suites, key derivation, exchange state machines. No I/O.
        .target(
            name: "IKEv2",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "BigInt", package: "BigInt"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1")
            ]
        ),
        // Packet parsing and building: IP headers, checksums. No I/O.
        .target(name: "Packets"),
        // User-space ESP (RFC 4303, RFC 3948): SAs, replay window, encapsulation. No I/O.
        .target(
            name: "ESP",
            dependencies: [
                "IKEv2", "Packets", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto")
            ]
        ),
        // The proxy <-> terminal key-delivery protocol: messages, sealing, reliable delivery. No I/O.
        .target(
            name: "KeyDelivery",
            dependencies: ["ESP", "IKEv2", "Packets", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // The proxy core: policy table, packet judgment, SA store, orchestration. No I/O.
        .target(name: "Proxy", dependencies: ["IKEv2", "ESP", "KeyDelivery", "Packets", .product(name: "X509", package: "swift-certificates")]),
        // Peer, proxy and terminals on virtual links in one process: `ikeproxy demo` and the proxy tests.
        .target(name: "ProxyDemo", dependencies: ["Proxy", "TerminalAgent", "ESP", "IKEv2", "KeyDelivery", "Packets"]),
        // Thin adapters over Linux sockets.
        .target(name: "CLinuxIO"),
        .target(name: "LinuxIO", dependencies: ["CLinuxIO"]),
        // The kernel's XFRM structures for the Swift codec below.
        .target(name: "CXFRM"),
        // SAs and policies for a Linux kernel that does ESP itself: XFRM netlink requests and notifications as
        // bytes, traffic selectors as kernel selectors, the bookkeeping of what the kernel holds. No I/O.
        .target(name: "KernelIPsec", dependencies: ["CXFRM", "ESP", "IKEv2"]),
        // The terminal agent: SAs from the key-delivery channel, into its own user-space ESP over a TUN device or
        // into the kernel's XFRM.
        .target(name: "TerminalAgent", dependencies: ["ESP", "KeyDelivery", "IKEv2", "Packets", "LinuxIO", "KernelIPsec", "ConfigurationFiles"]),
        // What the endpoint's and the daemon's configuration files share: connection/profile keys (pre-shared keys,
        // proposals, mode, authentication files), engine settings, and the errors that name the offending key.
        .target(name: "ConfigurationFiles", dependencies: ["IKEv2", .product(name: "X509", package: "swift-certificates")]),
        // What an IKE engine needs around it in a process, for the endpoint and the daemon alike: online revocation
        // (OCSP, CRLs over HTTP) and SA events as JSON lines.
        .target(
            name: "IKEServices",
            dependencies: [
                "IKEv2", "LinuxIO",
                .product(name: "X509", package: "swift-certificates"), .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio")
            ]
        ),
        // A plain IKEv2 endpoint: configuration, event loop wiring the engine to UDP sockets.
        .target(
            name: "IKEEndpoint",
            dependencies: [
                "IKEv2", "IKEServices", "ConfigurationFiles", "LinuxIO", "ESP", "KeyDelivery",
                .product(name: "X509", package: "swift-certificates")
            ]),
        // PKCS#11 (the token that seals secrets) through the module's function list; header from p11-kit.
        .target(name: "CPKCS11", cSettings: [.unsafeFlags(["-I/usr/include/p11-kit-1"])], linkerSettings: [.linkedLibrary("dl")]),
        // State that survives: SQLite through GRDB, or PostgreSQL through postgres-nio for a pair of daemons; every
        // secret sealed by a token or a key file.
        .target(
            name: "Store",
            dependencies: [
                "IKEv2", "Proxy", "CPKCS11", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "Crypto", package: "swift-crypto")
            ]),
        // The management API's types, server routes and client, generated from docs/openapi.yaml at every build
        // (Sources/ManagementAPI/openapi.yaml links to it).
        .target(
            name: "ManagementAPI",
            dependencies: [.product(name: "OpenAPIRuntime", package: "swift-openapi-runtime")],
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]),
        // The HTTPS management API: TLS, bearer tokens kept as hashes, requests handed to the daemon's loop.
        .target(
            name: "Management",
            dependencies: [
                "LinuxIO", "ManagementAPI",
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"), .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                .product(name: "OpenAPIAsyncHTTPClient", package: "swift-openapi-async-http-client")
            ]),
        // `ikeproxy daemon`: the proxy in the wire, AF_PACKET ports wired to the Ethernet bridge.
        .target(
            name: "Daemon",
            dependencies: [
                "Proxy", "ESP", "LinuxIO", "IKEServices", "ConfigurationFiles", "IKEv2", "Packets", "Store", "Management",
                .product(name: "X509", package: "swift-certificates"), .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus")
            ]),
        // Entry points for coverage-guided fuzzing of everything that reads octets from outside; driven by
        // libFuzzer from fuzz/ and replayed by FuzzingTests.
        .target(
            name: "Fuzzing",
            dependencies: [
                "IKEv2", "Packets", "ESP", "KeyDelivery", "Proxy", "ProxyDemo", "TerminalAgent",
                .product(name: "X509", package: "swift-certificates")
            ]),
        .executableTarget(
            name: "ikeproxy",
            dependencies: [
                "Daemon",
                "Store",
                "Management",
                "ManagementAPI",
                "IKEv2",
                "IKEEndpoint",
                "ConfigurationFiles",
                "TerminalAgent",
                "ProxyDemo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "Logging", package: "swift-log")
            ]
        ),
        // Benchmarks (release builds): swift run -c release esp-benchmark
        .executableTarget(
            name: "esp-benchmark",
            dependencies: [
                "ESP", "IKEv2", "Packets", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto")
            ],
            path: "benchmarks/ESPBenchmark"
        ),
        .executableTarget(name: "forwarding-load", dependencies: ["LinuxIO", "Packets"], path: "benchmarks/ForwardingLoad"),
        .executableTarget(name: "seal-benchmark", dependencies: ["Store"], path: "benchmarks/SealBenchmark"),
        .executableTarget(name: "store-latency-benchmark", dependencies: ["Store"], path: "benchmarks/StoreLatency"),
        .testTarget(name: "PacketsTests", dependencies: ["Packets"]),
        .testTarget(name: "FuzzingTests", dependencies: ["Fuzzing", "IKEv2", "Packets", "ProxyDemo"]),
        .testTarget(
            name: "DaemonTests",
            dependencies: [
                "Daemon", "ConfigurationFiles", "IKEEndpoint", "Proxy", "Packets", "IKEv2", .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates")
            ]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "Proxy", "ProxyDemo", "IKEv2"]),
        .testTarget(
            name: "ManagementTests",
            dependencies: [
                "Management", "ManagementAPI", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird")
            ]),
        .testTarget(
            name: "ProxyTests",
            dependencies: [
                "Proxy", "ProxyDemo", "TerminalAgent", "Packets", "IKEv2", "ESP",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto")
            ]),
        .executableTarget(
            name: "proxy-benchmark", dependencies: ["Proxy", "ProxyDemo", "IKEv2", "KeyDelivery", .product(name: "Crypto", package: "swift-crypto")],
            path: "benchmarks/ProxyBenchmark"),
        .executableTarget(name: "ike-init-load", dependencies: ["IKEv2", "LinuxIO"], path: "benchmarks/IKEInitLoad"),
        .executableTarget(
            name: "terminal-swarm", dependencies: ["ESP", "IKEv2", "KeyDelivery", "LinuxIO", "Packets"],
            path: "benchmarks/TerminalSwarm"),
        .executableTarget(
            name: "flood-benchmark", dependencies: ["IKEv2", .product(name: "Crypto", package: "swift-crypto")],
            path: "benchmarks/FloodBenchmark"),
        .testTarget(
            name: "ESPTests",
            dependencies: ["ESP", "IKEv2", "Packets"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "TerminalAgentTests",
            dependencies: ["TerminalAgent", "Proxy", "KeyDelivery", "ESP", "IKEv2", "Packets"]
        ),
        .testTarget(name: "KernelIPsecTests", dependencies: ["KernelIPsec", "CXFRM", "ESP", "IKEv2"]),
        .testTarget(name: "LinuxIOTests", dependencies: ["LinuxIO"]),
        .testTarget(
            name: "KeyDeliveryTests",
            dependencies: ["KeyDelivery", "ESP", "IKEv2"]
        ),
        .testTarget(
            name: "IKEv2Tests",
            dependencies: [
                "IKEv2", "IKEEndpoint", "IKEServices", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"), .product(name: "BigInt", package: "BigInt"),
                .product(name: "X509", package: "swift-certificates"), .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "Logging", package: "swift-log")
            ],
            resources: [.copy("Fixtures")]
        )
    ]
)
