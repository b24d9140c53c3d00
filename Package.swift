// swift-tools-version:6.2
import PackageDescription

// GLUSTERFS_CSI_STATIC_GRPC=1 links gRPC core and its closure (abseil, re2, c-ares, upb) into the
// binary from Debian's static archives; the image is built that way (Dockerfile). It starts
// faster, uses less memory and less CPU per call than loading libgrpc_unsecure.so.29 and its
// shared libraries (bench/README.md, identity-probe). Without it, the shared library is linked,
// which is quicker to link for development and tests. Either way it is gRPC core without TLS
// credentials ("unsecure"): the driver serves a Unix socket, and the shim only creates insecure
// server credentials.
let staticGRPC = Context.environment["GLUSTERFS_CSI_STATIC_GRPC"] == "1"
let staticLink = "\(Context.packageDirectory)/Sources/CGRPCShim/static-link"
// With GLUSTERFS_CSI_STATIC_GRPC=1 (and --static-swift-stdlib, whose runtime brings the -lstdc++
// that static-link/libstdc++.so turns static), the link that includes the shim:
// - takes gRPC core (without TLS), its closure, zlib and libstdc++ from Debian's static archives,
//   through the linker scripts in static-link/;
// - uses lld (part of the Swift toolchain), which the scripts need (gold resolves archives in
//   command-line order) and which packs the ~94,000 relative relocations of a position-independent
//   executable into a few KiB (DT_RELR) instead of 2.2 MiB the loader reads at every start;
// - exports no symbols: the static Swift runtime's link exports those of our objects, but nothing
//   looks them up (the backtracer reads the full symbol table);
// - places the functions a starting and idle driver runs together (bench/link-order), so they fill
//   a few MiB instead of being spread over all of the code.
// What each step saves: bench/README.md, identity-probe.
let grpcLinkerSettings: [LinkerSetting] =
    staticGRPC
    ? [
        .unsafeFlags([
            "-L\(staticLink)", "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs", "-Xlinker",
            "--no-export-dynamic", "-Xlinker", "--symbol-ordering-file=\(staticLink)/symbol-order.txt", "-Xlinker",
            "--no-warn-symbol-ordering",
        ]),
        .linkedLibrary("cgrpcshim_grpc"),
    ]
    : [.linkedLibrary("grpc_unsecure"), .linkedLibrary("gpr")]

// Targets follow ../shared/STYLE.md: arrows point down only, and only the shim owners (GRPCServer,
// CurlTransport, ProcessSpawn and SystemdBus) import C. Everything else builds and tests
// without libgrpc, libcurl or libsystemd.
let package = Package(
    name: "glusterfs-csi",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "glusterfs-csi", targets: ["glusterfs-csi"])
    ],
    dependencies: [
        // Traits off: the default ones pull in Foundation streams we do not use.
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
    ],
    targets: [
        // C shim over gRPC core. Linked by name, not pkg-config: see grpc-core-notes.md.
        .target(
            name: "CGRPCShim",
            exclude: ["static-link"],
            linkerSettings: grpcLinkerSettings
        ),
        // C helpers over libcurl (curl_easy_setopt is variadic, so Swift cannot call it directly).
        // Not linked against libcurl: the shim dlopens libcurl.so.4 on the first HTTP request, so
        // the node plugin and an idle controller never load it and its ~27 libraries. Only the
        // headers (libcurl4-openssl-dev) are needed to build; dlopen is in glibc's libc.
        .target(name: "CCurlShim"),
        // C helpers over libsystemd's sd-bus (its calls are variadic). Not linked: the shim dlopens
        // libsystemd.so.0 on the first call, so a node without it still starts (and places its
        // mounts another way). Only the headers (libsystemd-dev) are needed to build.
        .target(name: "CSystemdShim"),
        // fork/exec of a child that joins cgroups and waits at a gate before it execs: what must
        // happen between fork and exec cannot be written in Swift (only async-signal-safe calls).
        .target(name: "CSpawnShim"),
        .target(
            name: "CSIProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        .target(
            name: "CSICore",
            dependencies: [
                "CSIProto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .target(
            name: "GRPCServer",
            dependencies: [
                "CGRPCShim", "CSICore", "CSIProto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .target(
            name: "CurlTransport",
            dependencies: ["CCurlShim", "CSICore"]
        ),
        .target(
            name: "ProcessSpawn",
            dependencies: ["CSpawnShim"]
        ),
        .target(
            name: "SystemdBus",
            dependencies: ["CSystemdShim"]
        ),
        .target(
            name: "Heketi",
            dependencies: ["CSICore", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "Kubernetes",
            dependencies: ["CSICore", "Heketi", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "Controller",
            dependencies: [
                "CSICore", "CSIProto", "Heketi", .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .target(
            name: "Node",
            dependencies: [
                "CSICore", "CSIProto", "ProcessSpawn", .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // `glusterfs-csi migrate`: in-tree GlusterFS PVs into manifests of this driver. Reads Kubernetes
        // JSON with Heketi's JSON reader and checks with the controller's and node's own rules.
        .target(
            name: "Migration",
            dependencies: ["CSICore", "Controller", "Heketi", "Node"]
        ),
        .executableTarget(
            name: "glusterfs-csi",
            dependencies: [
                "CSICore", "CSIProto", "GRPCServer", "Controller", "Node", "Heketi", "CurlTransport", "SystemdBus",
                "Migration",
                "Kubernetes", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "KubernetesTests",
            dependencies: ["Kubernetes", "CSICore", "Heketi", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "CSICoreTests",
            dependencies: [
                "CSICore", "CSIProto", .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .testTarget(
            name: "GRPCServerTests",
            dependencies: [
                "GRPCServer", "CSICore", "CSIProto", .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .testTarget(
            name: "HeketiTests",
            dependencies: ["Heketi", "CSICore", "CurlTransport", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "ControllerTests",
            dependencies: [
                "Controller", "Heketi", "CSICore", "CSIProto", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "NodeTests",
            dependencies: [
                "Node", "CSICore", "CSIProto", "ProcessSpawn", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ProcessSpawnTests",
            dependencies: ["ProcessSpawn"]
        ),
        .testTarget(
            name: "SystemdBusTests",
            dependencies: ["SystemdBus"]
        ),
        .testTarget(
            name: "MigrationTests",
            dependencies: ["Migration", "CSICore", "Controller", "Heketi", "Node"],
            // Inputs and golden outputs, read by path (#filePath): not resources of the bundle.
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "DriverTests",
            dependencies: ["glusterfs-csi", "CSICore", "Controller", .product(name: "Logging", package: "swift-log")]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// Fuzz targets (Sources/FuzzTargets, one executable for all; bench/fuzz and scripts/test build it).
// They exist only with GLUSTERFS_CSI_FUZZ=1, which those scripts set together with their own scratch
// path (.build-fuzz), -sanitize=fuzzer,address and -DGLUSTERFS_CSI_FUZZ: the targets import the
// parsers' modules @testable, which a release build of the whole package could not compile, and
// the plain build has no use for them.
if Context.environment["GLUSTERFS_CSI_FUZZ"] == "1" {
    package.targets.append(
        .executableTarget(
            name: "glusterfs-csi-fuzz",
            dependencies: [
                "CSICore", "CSIProto", "Controller", "Heketi", "Node", .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Sources/FuzzTargets",
            // @_extern(c): LLVMFuzzerRunDriver is declared in Swift, without a C header target.
            swiftSettings: [.enableExperimentalFeature("Extern")]
        )
    )
}
