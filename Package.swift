// swift-tools-version:6.0
// Swale: a VALE-style virtual Ethernet switch in user space. One module per moving part of
// ../shared/DESIGN.md; the folder names under Sources/ are the map.
import PackageDescription

// The data path is written with explicit bounds checks on everything shared memory says; dynamic
// exclusivity checks on class properties cost more than the work per frame, so they are off there.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked", "-cross-module-optimization"])]

let package = Package(
    name: "Swale",
    products: [
        .library(name: "SwaleClient", targets: ["SwaleClient"]),
        .executable(name: "swaled", targets: ["swaled"]),
        .executable(name: "swalectl", targets: ["swalectl"]),
        .executable(name: "swale-pktgen", targets: ["swale-pktgen"]),
        .executable(name: "swale-bench", targets: ["swale-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // C: the shared-memory layout (netmap-compatible), atomics, and what Swift does not import.
        .target(name: "CSwale"),
        // libnl-3 / libnl-route-3 as a system library.
        .systemLibrary(
            name: "CNetlink", pkgConfig: "libnl-route-3.0",
            providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        // Names: the one parser for bridges, ports and pipe ends.
        .target(name: "SwaleNames"),
        // Memory and rings: regions, buffer allocator, ring index rules, sync validation, pipes.
        .target(name: "SwaleMemory", dependencies: ["CSwale"], swiftSettings: hotPath),
        // Switch core: learning table, bridges, forwarding loop, counters.
        .target(name: "SwaleSwitch", dependencies: ["SwaleMemory", "SwaleNames", "CSwale"], swiftSettings: hotPath),
        // Kernel adapters: netlink, TAP, AF_PACKET.
        .target(name: "SwaleKernel", dependencies: ["SwaleMemory", "SwaleNames", "CSwale", "CNetlink"], swiftSettings: hotPath),
        // Control protocol: one typed request per operation, the permission table, the protocol
        // version, newline-delimited JSON over a UNIX socket with descriptors as SCM_RIGHTS.
        .target(name: "SwaleProtocol", dependencies: ["CSwale", "SwaleNames"]),
        // The config file: a JSON reader that keeps line numbers, the checker, the writer, and the
        // one table of whole-number settings and their ranges.
        .target(name: "SwaleConfig", dependencies: ["SwaleNames"]),
        // The service: owns bridges, ports, pipes and client sessions.
        .target(
            name: "SwaleService",
            dependencies: [
                "SwaleNames", "SwaleMemory", "SwaleSwitch", "SwaleKernel", "SwaleProtocol", "SwaleConfig", "CSwale",
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Client library for applications.
        .target(name: "SwaleClient", dependencies: ["SwaleNames", "SwaleMemory", "SwaleProtocol", "CSwale"], swiftSettings: hotPath),
        .executableTarget(
            name: "swaled",
            dependencies: [
                "SwaleService", "SwaleProtocol", "SwaleConfig", .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "swalectl",
            dependencies: [
                "SwaleProtocol", "SwaleConfig", "SwaleNames",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "swale-pktgen",
            dependencies: ["SwaleClient", "CSwale", "SwaleNames", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: hotPath),
        .executableTarget(
            name: "swale-bench",
            dependencies: ["SwaleSwitch", "SwaleMemory", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(name: "SwaleNamesTests", dependencies: ["SwaleNames"]),
        .testTarget(name: "SwaleMemoryTests", dependencies: ["SwaleMemory", "CSwale"]),
        .testTarget(name: "SwaleSwitchTests", dependencies: ["SwaleSwitch", "SwaleMemory"]),
        .testTarget(name: "SwaleIntegrationTests", dependencies: ["SwaleClient", "SwaleProtocol", "SwaleConfig", "SwaleNames"]),
        .testTarget(name: "SwaleClientTests", dependencies: ["SwaleClient", "SwaleMemory", "SwaleProtocol", "CSwale"]),
        .testTarget(name: "SwaleKernelTests", dependencies: ["SwaleKernel", "SwaleMemory"]),
        .testTarget(name: "SwaleProtocolTests", dependencies: ["SwaleProtocol"]),
        .testTarget(name: "SwaleConfigTests", dependencies: ["SwaleConfig"]),
        .testTarget(
            name: "SwaleServiceTests",
            dependencies: ["SwaleService", "SwaleProtocol", "SwaleConfig", "SwaleNames", .product(name: "Logging", package: "swift-log")]),
    ],
    swiftLanguageModes: [.v5]
)
