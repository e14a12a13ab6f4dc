// swift-tools-version:6.0
// Swale: a VALE-style virtual Ethernet switch in user space. One module per moving part; the folder
// names under Sources/ are the map, and each target below says in one line what it holds.
import PackageDescription

// No unsafe flags: SwaleClient (and everything it depends on) can be a versioned SwiftPM dependency.
// The data path is written with explicit bounds checks on everything shared memory says; the class
// properties it touches per frame are marked @exclusivity(unchecked) one by one, and what it calls
// across modules per frame is @inlinable.

let package = Package(
    name: "Swale",
    products: [
        .library(name: "SwaleClient", targets: ["SwaleClient"]),
        .executable(name: "swaled", targets: ["swaled"]),
        .executable(name: "swalectl", targets: ["swalectl"]),
        .executable(name: "swale-pktgen", targets: ["swale-pktgen"]),
        .executable(name: "swale-bench", targets: ["swale-bench"]),
        .executable(name: "swale-cni", targets: ["swale-cni"]),
        // LD_PRELOAD=libswale-netmap.so runs unmodified netmap programs on Swale.
        .library(name: "swale-netmap", type: .dynamic, targets: ["SwaleNetmap"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0")
    ],
    targets: [
        // C: the shared-memory ABI alone: netmap-compatible swale_if/ring/slot/csb, slot flags, offsets (static asserts in abi.c).
        .target(name: "CSwaleABI"),
        // C: the thin syscall shim (memfd, doorbells, TUN/ethtool ioctls, SCM_RIGHTS, AF_PACKET, sendmmsg) and shared-memory atomics.
        .target(name: "CSwaleSys"),
        // libnl-3 / libnl-route-3 as a system library.
        .systemLibrary(
            name: "CNetlink", pkgConfig: "libnl-route-3.0",
            providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        // C: the kernel fast path — its maps' layout (shared with the BPF program in bpf/, which
        // Scripts/setup.sh compiles with clang for the BPF target) and the thin libbpf shim.
        .target(name: "CSwaleFastpath", exclude: ["bpf"], linkerSettings: [.linkedLibrary("bpf")]),
        // Names: the one parser for bridges, ports and pipe ends.
        .target(name: "SwaleNames"),
        // Rings: memfd regions, block allocator, memory pools, kernel/user ring views, slot writer, doorbells, SystemError.
        .target(name: "SwaleRings", dependencies: ["CSwaleABI", "CSwaleSys"]),
        // Datapath: port backend contract (+ in-memory backend), transmit batch, virtio-net header, offloads, learning table, forwarding engine (no thread).
        .target(name: "SwaleDatapath", dependencies: ["SwaleRings", "SwaleNames", "CSwaleABI", "CSwaleSys"]),
        // Switch: a bridge = forwarding engine + its thread + mailbox + epoll.
        .target(name: "SwaleSwitch", dependencies: ["SwaleDatapath", "SwaleRings", "CSwaleSys"]),
        // Kernel port backends: TAP, AF_PACKET, netlink (links, MTU, GRO, namespaces), link watcher, the eBPF fast path.
        .target(
            name: "SwaleKernel",
            dependencies: ["SwaleDatapath", "SwaleRings", "SwaleNames", "CSwaleABI", "CSwaleSys", "CNetlink", "CSwaleFastpath"]
        ),
        // Control protocol: one typed request per operation, the permission table, the protocol
        // version, newline-delimited JSON over a UNIX socket with descriptors as SCM_RIGHTS.
        .target(name: "SwaleProtocol", dependencies: ["CSwaleSys", "SwaleNames"]),
        // The config file: a JSON reader that keeps line numbers, the checker, the writer, and the
        // one table of whole-number settings and their ranges.
        .target(name: "SwaleConfig", dependencies: ["SwaleNames"]),
        // The service: owns bridges, ports, pipes and client sessions.
        .target(
            name: "SwaleService",
            dependencies: [
                "SwaleNames", "SwaleRings", "SwaleDatapath", "SwaleSwitch", "SwaleKernel", "SwaleProtocol", "SwaleConfig",
                "CSwaleSys",
                .product(name: "Logging", package: "swift-log")
            ]),
        // Client library for applications.
        .target(name: "SwaleClient", dependencies: ["SwaleNames", "SwaleRings", "SwaleProtocol", "CSwaleABI", "CSwaleSys"]),
        .executableTarget(
            name: "swaled",
            dependencies: [
                "SwaleService", "SwaleSwitch", "SwaleProtocol", "SwaleConfig", .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ]),
        .executableTarget(
            name: "swalectl",
            dependencies: [
                "SwaleProtocol", "SwaleConfig", "SwaleNames", "SwaleClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ]),
        .executableTarget(
            name: "swale-pktgen",
            dependencies: [
                "SwaleClient", "SwaleRings", "CSwaleABI", "CSwaleSys", "SwaleNames",
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ]),
        // The CNI plugin: network config and results of every supported version, IPAM delegation,
        // the container namespace's addresses and routes; swaled makes the port.
        .target(name: "SwaleCNI", dependencies: ["SwaleProtocol", "SwaleKernel", "SwaleConfig", "SwaleNames", "CSwaleSys"]),
        .executableTarget(name: "swale-cni", dependencies: ["SwaleCNI"]),
        // C: /dev/netmap emulated in the process (open, ioctl, mmap, poll/select/epoll, close
        // interposed) and the netmap API header; linked only into libswale-netmap.so.
        .target(name: "CSwaleNetmap", dependencies: ["CSwaleABI", "CSwaleSys"], linkerSettings: [.linkedLibrary("dl")]),
        // Swift: the emulation's Swale side (ports opened, synced and closed through SwaleClient).
        .target(name: "SwaleNetmap", dependencies: ["CSwaleNetmap", "SwaleClient", "SwaleProtocol", "CSwaleABI"]),
        .executableTarget(
            name: "swale-bench",
            dependencies: ["SwaleDatapath", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(name: "SwaleNamesTests", dependencies: ["SwaleNames"]),
        .testTarget(name: "SwaleRingsTests", dependencies: ["SwaleRings", "CSwaleABI", "CSwaleSys"]),
        .testTarget(name: "SwaleDatapathTests", dependencies: ["SwaleDatapath", "SwaleRings", "CSwaleABI", "CSwaleSys"]),
        .testTarget(name: "SwaleSwitchTests", dependencies: ["SwaleSwitch", "SwaleDatapath", "SwaleRings", "CSwaleSys"]),
        .testTarget(name: "SwaleIntegrationTests", dependencies: ["SwaleClient", "SwaleProtocol", "SwaleConfig", "SwaleNames"]),
        .testTarget(
            name: "SwaleClientTests", dependencies: ["SwaleClient", "SwaleRings", "SwaleProtocol", "CSwaleABI", "CSwaleSys"]),
        .testTarget(
            name: "SwaleKernelTests", dependencies: ["SwaleKernel", "SwaleDatapath", "SwaleRings", "CSwaleABI", "CSwaleSys"]),
        .testTarget(name: "SwaleProtocolTests", dependencies: ["SwaleProtocol"]),
        .testTarget(name: "SwaleConfigTests", dependencies: ["SwaleConfig"]),
        .testTarget(name: "SwaleCNITests", dependencies: ["SwaleCNI"]),
        .testTarget(
            name: "SwaleServiceTests",
            dependencies: [
                "SwaleService", "SwaleProtocol", "SwaleConfig", "SwaleNames", .product(name: "Logging", package: "swift-log")
            ])
    ],
    swiftLanguageModes: [.v5]
)
