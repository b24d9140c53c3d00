import CSICore
import Controller
import GRPCServer
import Kubernetes
import Logging
import Node

#if canImport(Glibc)
import Glibc
#endif

/// The driver's settings after flags, environment variables and defaults were combined and checked.
///
/// A flag wins over its environment variable (so manifests can set variables and a person can
/// still override one on the command line); every value is validated with a message that names
/// the flag and the variable.
struct DriverConfiguration: Sendable {
    var endpoint: Endpoint
    var mode: DriverMode
    var nodeID: String
    var driverName: String
    var logLevel: Logger.Level
    var logFormat: LogFormat
    var maxMessageBytes: Int
    var shutdownGrace: Duration
    var shutdownHardLimit: Duration
    /// Calls of each service that may run at once; more wait briefly, then are refused (CallLimit).
    var maxControllerCalls: Int
    var maxNodeCalls: Int
    var testHooks: Bool
    /// Controller: the default Heketi and its credentials (see ControllerConfiguration).
    var heketiURL: String?
    var heketiUser: String
    var heketiKeyFile: String?
    var heketiCAFile: String?
    var heketiMaxOperations: Int
    var heketiOperationTimeout: Duration
    /// Node: where each volume's glusterfs client log goes.
    var mountLogDirectory: String
    /// Node: where each volume's glusterfs client runs, and the host pieces each placement uses.
    var mountPlacement: MountPlacement
    var cgroupRoot: String
    var systemdSocket: String
    /// Node: kubelet's root directory; staging and target paths must lie under it.
    var kubeletDirectory: String
    /// Controller: keep pv.beta.kubernetes.io/gid on this driver's PVs (GIDAnnotationReconciler),
    /// with the service account in this directory; off by itself outside a cluster.
    var annotateGID: Bool
    var kubeServiceAccountDirectory: String

    /// Environment variable names, one per flag.
    enum Variable {
        static let endpoint = "GLUSTERFS_CSI_ENDPOINT"
        static let mode = "GLUSTERFS_CSI_MODE"
        static let nodeID = "GLUSTERFS_CSI_NODE_ID"
        static let driverName = "GLUSTERFS_CSI_DRIVER_NAME"
        static let logLevel = "GLUSTERFS_CSI_LOG_LEVEL"
        static let logFormat = "GLUSTERFS_CSI_LOG_FORMAT"
        static let maxMessageSize = "GLUSTERFS_CSI_MAX_MESSAGE_SIZE"
        static let shutdownGrace = "GLUSTERFS_CSI_SHUTDOWN_GRACE"
        static let maxControllerCalls = "GLUSTERFS_CSI_MAX_CONTROLLER_CALLS"
        static let maxNodeCalls = "GLUSTERFS_CSI_MAX_NODE_CALLS"
        static let heketiURL = "GLUSTERFS_CSI_HEKETI_URL"
        static let heketiUser = "GLUSTERFS_CSI_HEKETI_USER"
        static let heketiKeyFile = "GLUSTERFS_CSI_HEKETI_KEY_FILE"
        static let heketiCAFile = "GLUSTERFS_CSI_HEKETI_CA_FILE"
        static let heketiMaxOperations = "GLUSTERFS_CSI_HEKETI_MAX_OPERATIONS"
        static let heketiOperationTimeout = "GLUSTERFS_CSI_HEKETI_OPERATION_TIMEOUT"
        static let mountLogDirectory = "GLUSTERFS_CSI_MOUNT_LOG_DIR"
        static let mountPlacement = "GLUSTERFS_CSI_MOUNT_PLACEMENT"
        static let cgroupRoot = "GLUSTERFS_CSI_CGROUP_ROOT"
        static let systemdSocket = "GLUSTERFS_CSI_SYSTEMD_SOCKET"
        static let kubeletDirectory = "GLUSTERFS_CSI_KUBELET_DIR"
        static let annotateGID = "GLUSTERFS_CSI_ANNOTATE_GID"
        static let kubeServiceAccountDirectory = "GLUSTERFS_CSI_KUBE_SERVICE_ACCOUNT_DIR"
    }

    static let defaultEndpoint = "unix:///csi/csi.sock"
    static let defaultMaxMessageBytes = 4 << 20
    static let defaultShutdownGraceSeconds = 25
    /// Each running call holds a thread (a Heketi request, a mount), and csi-provisioner sends at most
    /// 100 calls at once (--worker-threads), kubelet one per volume operation: 64 controller calls keep
    /// Heketi's 8 operation slots (--heketi-max-operations) busy with room for lookups and deletes;
    /// 32 node calls cover a node starting dozens of pods at once.
    static let defaultMaxControllerCalls = 64
    static let defaultMaxNodeCalls = 32
    /// Above this a cap no longer bounds much: each call may hold a thread and a message.
    static let maxCallsLimit = 1024
    static let defaultHeketiMaxOperations = 8
    static let defaultHeketiOperationTimeoutSeconds = 600

    /// Raw values as given by flags (nil when the flag was absent).
    struct Flags: Sendable {
        var endpoint: String?
        var mode: String?
        var nodeID: String?
        var driverName: String?
        var logLevel: String?
        var logFormat: String?
        var maxMessageSize: String?
        var shutdownGrace: String?
        var maxControllerCalls: String?
        var maxNodeCalls: String?
        var testHooks = false
        var heketiURL: String?
        var heketiUser: String?
        var heketiKeyFile: String?
        var heketiCAFile: String?
        var heketiMaxOperations: String?
        var heketiOperationTimeout: String?
        var mountLogDirectory: String?
        var mountPlacement: String?
        var cgroupRoot: String?
        var systemdSocket: String?
        var kubeletDirectory: String?
        var annotateGID: String?
        var kubeServiceAccountDirectory: String?
    }

    static let defaultMountLogDirectory = "/var/log/glusterfs-csi"
    static let defaultCgroupRoot = "/sys/fs/cgroup"
    static let defaultSystemdSocket = "/run/systemd/private"
    static let defaultKubeletDirectory = "/var/lib/kubelet"

    init(
        flags: Flags, environment: [String: String], hostName: () -> String = DriverConfiguration.hostName
    )
        throws(CSIError)
    {
        func value(_ flag: String?, _ variable: String) -> String? {
            flag ?? environment[variable].flatMap { $0.isEmpty ? nil : $0 }
        }
        endpoint = try Endpoint(parsing: value(flags.endpoint, Variable.endpoint) ?? Self.defaultEndpoint)

        let modeText = value(flags.mode, Variable.mode) ?? DriverMode.all.rawValue
        guard let mode = DriverMode(rawValue: modeText) else {
            throw Self.invalid("--mode", Variable.mode, modeText, DriverMode.allCases.map(\.rawValue))
        }
        self.mode = mode

        nodeID = value(flags.nodeID, Variable.nodeID) ?? hostName()
        do {
            try NodeService.check(nodeID: nodeID)
        } catch {
            throw CSIError(
                .invalidArgument, "--node-id (\(Variable.nodeID)): \(error); set it to the Kubernetes node name")
        }

        driverName = value(flags.driverName, Variable.driverName) ?? DriverInfo.defaultName
        try DriverInfo.validate(name: driverName)

        let levelText = value(flags.logLevel, Variable.logLevel) ?? "info"
        guard let level = Logger.Level(rawValue: levelText.lowercased()) else {
            throw Self.invalid("--log-level", Variable.logLevel, levelText, Logger.Level.allCases.map(\.rawValue))
        }
        logLevel = level

        let formatText = value(flags.logFormat, Variable.logFormat) ?? LogFormat.text.rawValue
        guard let format = LogFormat(rawValue: formatText.lowercased()) else {
            throw Self.invalid("--log-format", Variable.logFormat, formatText, LogFormat.allCases.map(\.rawValue))
        }
        logFormat = format

        maxMessageBytes = try Self.integer(
            "--max-message-size", Variable.maxMessageSize, value(flags.maxMessageSize, Variable.maxMessageSize),
            default: Self.defaultMaxMessageBytes, in: (64 << 10)...(1 << 30), unit: "a byte count")
        shutdownGrace = .seconds(
            try Self.integer(
                "--shutdown-grace", Variable.shutdownGrace, value(flags.shutdownGrace, Variable.shutdownGrace),
                default: Self.defaultShutdownGraceSeconds, in: 0...3600, unit: "whole seconds",
                note: "; keep it below the pod's terminationGracePeriodSeconds"))
        shutdownHardLimit = .seconds(5)
        maxControllerCalls = try Self.integer(
            "--max-controller-calls", Variable.maxControllerCalls,
            value(flags.maxControllerCalls, Variable.maxControllerCalls), default: Self.defaultMaxControllerCalls,
            in: 1...Self.maxCallsLimit, unit: "a number of calls")
        maxNodeCalls = try Self.integer(
            "--max-node-calls", Variable.maxNodeCalls, value(flags.maxNodeCalls, Variable.maxNodeCalls),
            default: Self.defaultMaxNodeCalls, in: 1...Self.maxCallsLimit, unit: "a number of calls")
        testHooks = flags.testHooks

        heketiURL = try value(flags.heketiURL, Variable.heketiURL).map { text throws(CSIError) in
            try ControllerConfiguration.validatedHeketiURL(text, source: "--heketi-url (\(Variable.heketiURL))")
        }
        heketiUser = value(flags.heketiUser, Variable.heketiUser) ?? "admin"
        heketiKeyFile = try value(flags.heketiKeyFile, Variable.heketiKeyFile).map { path throws(CSIError) in
            try Self.absolutePath(path, "--heketi-key-file (\(Variable.heketiKeyFile))")
        }
        heketiCAFile = try value(flags.heketiCAFile, Variable.heketiCAFile).map { path throws(CSIError) in
            try Self.absolutePath(path, "--heketi-ca-file (\(Variable.heketiCAFile))")
        }
        heketiMaxOperations = try Self.integer(
            "--heketi-max-operations", Variable.heketiMaxOperations,
            value(flags.heketiMaxOperations, Variable.heketiMaxOperations),
            default: Self.defaultHeketiMaxOperations, in: 1...64, unit: "a number", note: ", Heketi's own limit")
        heketiOperationTimeout = .seconds(
            try Self.integer(
                "--heketi-operation-timeout", Variable.heketiOperationTimeout,
                value(flags.heketiOperationTimeout, Variable.heketiOperationTimeout),
                default: Self.defaultHeketiOperationTimeoutSeconds, in: 10...86400, unit: "whole seconds"))
        mountLogDirectory =
            value(flags.mountLogDirectory, Variable.mountLogDirectory) ?? Self.defaultMountLogDirectory
        do {
            try NodeService.check(logDirectory: mountLogDirectory)
        } catch {
            throw CSIError(.invalidArgument, "--mount-log-dir (\(Variable.mountLogDirectory)): \(error)")
        }
        let placementText = value(flags.mountPlacement, Variable.mountPlacement) ?? MountPlacement.auto.rawValue
        guard let placement = MountPlacement(rawValue: placementText.lowercased()) else {
            throw Self.invalid(
                "--mount-placement", Variable.mountPlacement, placementText, MountPlacement.allCases.map(\.rawValue))
        }
        mountPlacement = placement
        cgroupRoot = try Self.absolutePath(
            value(flags.cgroupRoot, Variable.cgroupRoot) ?? Self.defaultCgroupRoot,
            "--cgroup-root (\(Variable.cgroupRoot))")
        systemdSocket = try Self.absolutePath(
            value(flags.systemdSocket, Variable.systemdSocket) ?? Self.defaultSystemdSocket,
            "--systemd-socket (\(Variable.systemdSocket))")
        kubeletDirectory = try Self.absolutePath(
            value(flags.kubeletDirectory, Variable.kubeletDirectory) ?? Self.defaultKubeletDirectory,
            "--kubelet-dir (\(Variable.kubeletDirectory))")
        let annotateText = value(flags.annotateGID, Variable.annotateGID) ?? "true"
        switch annotateText.lowercased() {
        case "true": annotateGID = true
        case "false": annotateGID = false
        default: throw Self.invalid("--annotate-gid", Variable.annotateGID, annotateText, ["true", "false"])
        }
        kubeServiceAccountDirectory = try Self.absolutePath(
            value(flags.kubeServiceAccountDirectory, Variable.kubeServiceAccountDirectory)
                ?? InClusterConfig.defaultServiceAccountDirectory,
            "--kube-service-account-dir (\(Variable.kubeServiceAccountDirectory))")
    }

    /// An integer flag's value (`text`, or `default` when it is not set) within `range`; otherwise
    /// an error naming the flag and its variable, the value, what is accepted and the default.
    private static func integer(
        _ flag: String, _ variable: String, _ text: String?, default defaultValue: Int, in range: ClosedRange<Int>,
        unit: String, note: String = ""
    ) throws(CSIError) -> Int {
        guard let text else { return defaultValue }
        guard let number = Int(text), range.contains(number) else {
            throw CSIError(
                .invalidArgument,
                "\(flag) (\(variable)) '\(text)': expected \(unit) from \(range.lowerBound) to \(range.upperBound) "
                    + "(default \(defaultValue)\(note))")
        }
        return number
    }

    private static func absolutePath(_ path: String, _ name: String) throws(CSIError) -> String {
        guard path.hasPrefix("/"), !path.split(separator: "/").contains("..") else {
            throw CSIError(.invalidArgument, "\(name) '\(path)': expected an absolute path without '..'")
        }
        return path
    }

    private static func invalid(_ flag: String, _ variable: String, _ value: String, _ accepted: [String]) -> CSIError {
        CSIError(
            .invalidArgument,
            "\(flag) (\(variable)) '\(value)': expected one of \(accepted.joined(separator: ", "))")
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            entry += 1
        }
        return result
    }
}
