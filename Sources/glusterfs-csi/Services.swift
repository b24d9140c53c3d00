import CSICore
import Controller
import CurlTransport
import Heketi
import Logging
import Node
import Synchronization
import SystemdBus

#if canImport(Glibc)
import Glibc
#endif

/// The CSI services this process serves, built from its configuration.
struct Services {
    let controller: ControllerService?
    let node: NodeService?

    init(configuration: DriverConfiguration, logger: Logger) throws(CSIError) {
        controller = configuration.mode.servesController ? try Self.controller(configuration, logger: logger) : nil
        node = configuration.mode.servesNode ? try Self.node(configuration, logger: logger) : nil
    }

    private static func controller(
        _ configuration: DriverConfiguration, logger: Logger
    ) throws(CSIError)
        -> ControllerService
    {
        let key = try configuration.heketiKeyFile.map { path throws(CSIError) in try readKey(path) }
        let transport = LazyTransport(caBundlePath: configuration.heketiCAFile, logger: logger)
        let limiters = HeketiLimiters(perServer: configuration.heketiMaxOperations)
        var clientLogger = logger
        clientLogger[metadataKey: "component"] = "heketi"
        let operationTimeout = configuration.heketiOperationTimeout
        return ControllerService(
            configuration: ControllerConfiguration(
                defaultHeketiURL: configuration.heketiURL, defaultUser: configuration.heketiUser, defaultKey: key),
            makeClient: { [clientLogger] endpoint in
                HeketiClient(
                    endpoint: endpoint, transport: transport.instance, logger: clientLogger,
                    limiter: limiters.limiter(for: endpoint.url), operationTimeout: operationTimeout)
            })
    }

    private static func node(_ configuration: DriverConfiguration, logger: Logger) throws(CSIError) -> NodeService {
        let kubeletDirectory: KubeletDirectory
        do {
            kubeletDirectory = try KubeletDirectory(configuration.kubeletDirectory)
        } catch {
            throw CSIError(
                .invalidArgument,
                "--kubelet-dir (\(DriverConfiguration.Variable.kubeletDirectory)): \(error.description)")
        }
        let choice = PlacementSelector.choose(
            requested: configuration.mountPlacement, cgroupRoot: configuration.cgroupRoot,
            connectSystemd: { connectSystemd(socketPath: configuration.systemdSocket) })
        choice.log(to: logger)
        let inventory = choice.placement.reconcile()
        if !inventory.running.isEmpty || !inventory.removed.isEmpty {
            logger.info(
                "found the glusterfs clients of earlier instances",
                metadata: [
                    "running": "\(inventory.running.count)",
                    "removed_empty_units": "\(inventory.removed.joined(separator: ","))",
                ])
        }
        do {
            return try NodeService(
                nodeID: configuration.nodeID, mounter: SystemMounter(), placement: choice.placement,
                kubeletDirectory: kubeletDirectory, logDirectory: configuration.mountLogDirectory)
        } catch {
            throw CSIError(.invalidArgument, "node service: \(error.description)")
        }
    }

    /// A connection to the host's systemd, if it answers on `socketPath` and sees the PIDs this
    /// process sees (the scope it starts holds the PID it is given, in its own PID namespace).
    private static func connectSystemd(socketPath: String) -> Result<any SystemdScopes, PlacementError> {
        do {
            let connection = try SystemdConnection(socketPath: socketPath, timeout: .seconds(2))
            guard try connection.sharesPIDNamespace() else {
                return .failure(
                    PlacementError(
                        "systemd on \(socketPath) runs in another PID namespace than the node plugin "
                            + "(the pod does not set hostPID: true)"))
            }
            return .success(connection)
        } catch {
            return .failure(PlacementError("systemd does not answer on \(socketPath): \(error)"))
        }
    }

    /// Reads the Heketi key from a file (a mounted Secret), so it never appears in argv or the
    /// environment of the process.
    private static func readKey(_ path: String) throws(CSIError) -> String {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw CSIError(
                .failedPrecondition,
                "cannot read --heketi-key-file \(path): \(String(cString: strerror(errno))); mount the Secret there")
        }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            bytes += buffer[..<count]
            guard bytes.count <= 64 << 10 else {
                throw CSIError(
                    .failedPrecondition, "--heketi-key-file \(path) is larger than 64 KiB; it should hold only the key")
            }
        }
        // Secrets mounted from files often end with a newline that is not part of the key.
        while let last = bytes.last, last == 0x0A || last == 0x0D || last == 0x20 { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The sd-bus connection is what the systemd placement needs of systemd.
extension SystemdConnection: SystemdScopes {
    public func unitNames(matching pattern: String, timeout: Duration) throws -> [String] {
        try units(matching: pattern, timeout: timeout).map(\.name)
    }
}

/// Creates the libcurl transport on first use: that loads libcurl (the shim `dlopen`s it; the
/// binary does not link it) and runs `curl_global_init`, which sets up OpenSSL. A node plugin, or
/// a controller not talking to Heketi yet, thus never maps libcurl and its ~27 libraries (3.8 MiB
/// resident, milliseconds of start-up; bench/README.md).
private final class LazyTransport: Sendable {
    private let caBundlePath: String?
    private let logger: Logger
    private let transport = Mutex<CurlHTTPTransport?>(nil)

    init(caBundlePath: String?, logger: Logger) {
        self.caBundlePath = caBundlePath
        self.logger = logger
    }

    var instance: CurlHTTPTransport {
        transport.withLock { transport in
            if let transport { return transport }
            let created = CurlHTTPTransport(caBundlePath: caBundlePath)
            // Every Heketi request will fail with this error (as UNAVAILABLE); say why once, loudly,
            // rather than only in each RPC's answer.
            if let failure = created.initialisationFailure {
                logger.error("libcurl is unusable; no Heketi request can be made", metadata: ["error": "\(failure)"])
            }
            transport = created
            return created
        }
    }
}
