import ArgumentParser
import CSICore
import Dispatch
import GRPCServer
import Kubernetes
import Logging
import ProcessSpawn

#if canImport(Glibc)
import Glibc
#endif

/// The `glusterfs-csi` command: flags, wiring and signals; the services live in their own targets.
@main
struct GlusterFSCSI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "glusterfs-csi",
        abstract: "A CSI driver that provisions GlusterFS volumes through Heketi and mounts them into pods.",
        discussion: """
            Every option can also be set with an environment variable (the flag wins):
              GLUSTERFS_CSI_ENDPOINT, GLUSTERFS_CSI_MODE, GLUSTERFS_CSI_NODE_ID, GLUSTERFS_CSI_DRIVER_NAME,
              GLUSTERFS_CSI_LOG_LEVEL, GLUSTERFS_CSI_LOG_FORMAT, GLUSTERFS_CSI_MAX_MESSAGE_SIZE,
              GLUSTERFS_CSI_SHUTDOWN_GRACE, GLUSTERFS_CSI_MAX_CONTROLLER_CALLS, GLUSTERFS_CSI_MAX_NODE_CALLS,
              GLUSTERFS_CSI_HEKETI_URL, GLUSTERFS_CSI_HEKETI_USER,
              GLUSTERFS_CSI_HEKETI_KEY_FILE, GLUSTERFS_CSI_HEKETI_CA_FILE, GLUSTERFS_CSI_HEKETI_MAX_OPERATIONS,
              GLUSTERFS_CSI_HEKETI_OPERATION_TIMEOUT, GLUSTERFS_CSI_MOUNT_LOG_DIR, GLUSTERFS_CSI_MOUNT_PLACEMENT,
              GLUSTERFS_CSI_CGROUP_ROOT, GLUSTERFS_CSI_SYSTEMD_SOCKET, GLUSTERFS_CSI_KUBELET_DIR,
              GLUSTERFS_CSI_ANNOTATE_GID, GLUSTERFS_CSI_KUBE_SERVICE_ACCOUNT_DIR.
            SIGTERM or SIGINT stops accepting calls, lets calls in flight finish within the grace period,
            and exits 0 when all were answered.
            """,
        version: DriverInfo.version,
        // Runs only when named (`glusterfs-csi migrate ...`); without a subcommand this command
        // serves CSI, with the same flags as before.
        subcommands: [MigrateCommand.self])

    @Option(
        help:
            "The Unix socket to serve on: unix:///path or a plain path. (default: \(DriverConfiguration.defaultEndpoint))"
    )
    var endpoint: String?

    @Option(help: "Which services to serve: controller, node or all. (default: all)")
    var mode: String?

    @Option(
        name: .customLong("node-id"),
        help: "This node's ID, normally the Kubernetes node name. (default: the host name)")
    var nodeID: String?

    @Option(help: "The CSI driver name; must match the CSIDriver object. (default: \(DriverInfo.defaultName))")
    var driverName: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical. (default: info)")
    var logLevel: String?

    @Option(help: "text or json. (default: text)")
    var logFormat: String?

    @Option(help: "The largest request or response in bytes. (default: \(DriverConfiguration.defaultMaxMessageBytes))")
    var maxMessageSize: String?

    @Option(
        help:
            "Seconds to let calls in flight finish after SIGTERM before cancelling them. (default: \(DriverConfiguration.defaultShutdownGraceSeconds))"
    )
    var shutdownGrace: String?

    @Option(
        help: """
            Controller: how many calls may run at once (Identity and capability calls are not counted); \
            more wait up to 1 s for one to finish, then are refused with ABORTED or RESOURCE_EXHAUSTED, \
            which the sidecars retry. (default: \(DriverConfiguration.defaultMaxControllerCalls))
            """)
    var maxControllerCalls: String?

    @Option(
        help: """
            Node: how many calls may run at once (NodeGetInfo and NodeGetCapabilities are not counted); \
            more wait up to 1 s, then are refused likewise. (default: \(DriverConfiguration.defaultMaxNodeCalls))
            """)
    var maxNodeCalls: String?

    @Option(
        help: "Controller: the Heketi used when a StorageClass has no resturl, and for ListVolumes. (default: none)")
    var heketiURL: String?

    @Option(help: "Controller: the Heketi JWT issuer; must be admin. (default: admin)")
    var heketiUser: String?

    @Option(
        help: "Controller: a file holding the Heketi admin key, used when a request carries no secret. (default: none)")
    var heketiKeyFile: String?

    @Option(
        help: "Controller: a PEM file of CAs to trust for https Heketi URLs, besides the system store. (default: none)")
    var heketiCAFile: String?

    @Option(
        help:
            "Controller: how many creates, deletes and expansions may run in Heketi at once. (default: \(DriverConfiguration.defaultHeketiMaxOperations))"
    )
    var heketiMaxOperations: String?

    @Option(
        help:
            "Controller: seconds one Heketi operation may take before the driver stops following it. (default: \(DriverConfiguration.defaultHeketiOperationTimeoutSeconds))"
    )
    var heketiOperationTimeout: String?

    @Option(
        name: .customLong("mount-log-dir"),
        help:
            "Node: where each volume's glusterfs client log is written. (default: \(DriverConfiguration.defaultMountLogDirectory))"
    )
    var mountLogDirectory: String?

    @Option(
        help: """
            Node: where each volume's glusterfs client runs: systemd (a scope of the host's systemd), cgroup \
            (a cgroup outside the container), none (inside the plugin: a restart kills the node's mounts), or auto \
            (the first of systemd, cgroup, none that works). (default: auto)
            """)
    var mountPlacement: String?

    @Option(
        help:
            "Node: the host's cgroup tree, for the cgroup placement. (default: \(DriverConfiguration.defaultCgroupRoot))"
    )
    var cgroupRoot: String?

    @Option(
        help: """
            Node: the host systemd's private socket, for the systemd placement (a path ending in \
            dbus/system_bus_socket is used as the system bus). (default: \(DriverConfiguration.defaultSystemdSocket))
            """)
    var systemdSocket: String?

    @Option(
        name: .customLong("kubelet-dir"),
        help: """
            Node: kubelet's root directory; the node plugin mounts and unmounts only below it. \
            (default: \(DriverConfiguration.defaultKubeletDirectory))
            """)
    var kubeletDirectory: String?

    @Option(
        name: .customLong("annotate-gid"),
        help: """
            Controller: keep the annotation pv.beta.kubernetes.io/gid on this driver's PVs whose volume has a GID, \
            so kubelet gives pods that group (needs patch on persistentvolumes; off outside a cluster). \
            true or false. (default: true)
            """)
    var annotateGID: String?

    @Option(
        name: .customLong("kube-service-account-dir"),
        help: """
            Controller: the service account token and CA bundle for the Kubernetes API. \
            (default: \(InClusterConfig.defaultServiceAccountDirectory))
            """)
    var kubeServiceAccountDirectory: String?

    @Flag(help: .private)
    var enableTestHooks = false

    var flags: DriverConfiguration.Flags {
        DriverConfiguration.Flags(
            endpoint: endpoint, mode: mode, nodeID: nodeID, driverName: driverName, logLevel: logLevel,
            logFormat: logFormat, maxMessageSize: maxMessageSize, shutdownGrace: shutdownGrace,
            maxControllerCalls: maxControllerCalls, maxNodeCalls: maxNodeCalls, testHooks: enableTestHooks,
            heketiURL: heketiURL, heketiUser: heketiUser, heketiKeyFile: heketiKeyFile,
            heketiCAFile: heketiCAFile, heketiMaxOperations: heketiMaxOperations,
            heketiOperationTimeout: heketiOperationTimeout, mountLogDirectory: mountLogDirectory,
            mountPlacement: mountPlacement, cgroupRoot: cgroupRoot, systemdSocket: systemdSocket,
            kubeletDirectory: kubeletDirectory, annotateGID: annotateGID,
            kubeServiceAccountDirectory: kubeServiceAccountDirectory)
    }

    func resolvedConfiguration() throws -> DriverConfiguration {
        do {
            return try DriverConfiguration(flags: flags, environment: DriverConfiguration.processEnvironment())
        } catch {
            throw ValidationError(error.message)
        }
    }

    func validate() throws {
        _ = try resolvedConfiguration()
    }

    func run() async throws {
        let configuration = try resolvedConfiguration()
        LoggingSystem.bootstrap { label in
            DriverLogHandler(logLevel: configuration.logLevel, format: configuration.logFormat, label: label)
        }
        var logger = Logger(label: "glusterfs-csi")
        logger.logLevel = configuration.logLevel
        GRPCLogBridge.install(logger)
        let signals = SignalWaiter(signals: [SIGTERM, SIGINT])
        // As its container's init (no hostPID), the plugin inherits every process that daemonises
        // under it — the glusterfs clients among them — and must reap them when they end.
        if OrphanReaper.startIfInit() {
            logger.info("running as PID 1 of its PID namespace: reaping orphaned processes")
        }

        let server: UnaryServer
        let services: Services
        do {
            services = try Services(configuration: configuration, logger: logger)
            server = try UnaryServer(
                endpoint: configuration.endpoint,
                router: Routes.router(for: configuration, controller: services.controller, node: services.node),
                logger: logger, maxMessageBytes: configuration.maxMessageBytes)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error.message)"])
            throw ExitCode(1)
        }
        logger.info(
            "serving",
            metadata: [
                "endpoint": "\(configuration.endpoint)", "mode": "\(configuration.mode.rawValue)",
                "driver": "\(configuration.driverName)", "node_id": "\(configuration.nodeID)",
                "version": "\(DriverInfo.version)",
            ])
        services.controller?.buildIndexInBackground(logger: logger)
        let gidAnnotation = services.controller == nil ? nil : GIDAnnotation.start(configuration, logger: logger)

        let signal = await signals.next()
        logger.info(
            "shutting down", metadata: ["signal": "\(signal)", "grace": "\(configuration.shutdownGrace)"])
        gidAnnotation?.cancel()
        let clean = await server.shutdown(
            grace: configuration.shutdownGrace, hardLimit: configuration.shutdownHardLimit)
        if clean {
            logger.info("stopped: every call was answered")
        } else {
            logger.error("stopped with calls still unanswered after the hard limit")
            throw ExitCode(1)
        }
    }
}
