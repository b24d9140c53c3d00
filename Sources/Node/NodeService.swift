import CSICore
import CSIProto
import Logging

/// The CSI Node service for GlusterFS: one FUSE client per (node, volume) at the staging path,
/// bind-mounted into each pod's target path.
///
/// Stateless: everything it knows about mounts comes from the kernel's mount table, so it picks
/// up where it left off after a restart. Every RPC validates its request first, then takes a
/// try-lock (contention → ABORTED, as the spec asks) and only then touches the system.
///
/// Lock scheme: staging and unstaging hold the volume exclusively; publishing and unpublishing
/// hold their target path exclusively and the volume shared, so many pods can publish one staged
/// volume at once. Publishing a SINGLE_NODE_* (one-publication) volume holds the volume
/// exclusively, so that its "already published elsewhere" check cannot race.
public final class NodeService: Sendable {
    /// The ID reported by NodeGetInfo and used to spread primaries across storage hosts.
    public let nodeID: String
    /// Where the per-volume glusterfs client logs are written.
    public let logDirectory: String
    /// How long each kind of outside call may take.
    public let timeouts: NodeTimeouts

    /// Where each volume's glusterfs client runs (see `MountPlacement`).
    public let placement: any ClientPlacement
    /// The only directory staging and target paths may lie under.
    public let kubeletDirectory: KubeletDirectory

    let mounter: any Mounter
    let probe: any FileSystemProbe
    let locks = KeyedTryLock<NodeLockKey>()

    /// - Parameters:
    ///   - nodeID: this node's ID (Kubernetes uses the node name).
    ///   - mounter: the mounter; `SystemMounter()` in production, a fake in tests.
    ///   - probe: stat/statvfs with timeouts; `SystemFileSystemProbe()` in production.
    ///   - placement: where clients run; `PlacementSelector.choose` picks it in production.
    ///   - kubeletDirectory: kubelet's root directory (`--kubelet-dir`).
    ///   - logDirectory: absolute directory for client logs; created on first use.
    ///   - timeouts: bounds for mounts, unmounts and probes.
    /// - Throws: `NodeConfigurationError` for an empty node ID or an unusable log directory.
    public init(
        nodeID: String, mounter: any Mounter, probe: any FileSystemProbe = SystemFileSystemProbe(),
        placement: any ClientPlacement = NoPlacement(), kubeletDirectory: KubeletDirectory, logDirectory: String,
        timeouts: NodeTimeouts = NodeTimeouts()
    ) throws(NodeConfigurationError) {
        try Self.check(nodeID: nodeID)
        try Self.check(logDirectory: logDirectory)
        self.kubeletDirectory = kubeletDirectory
        self.nodeID = nodeID
        self.mounter = mounter
        self.probe = probe
        self.placement = placement
        self.logDirectory = logDirectory
        self.timeouts = timeouts
    }

    /// NodeGetInfo: this node's ID. No topology (any node can reach the storage network) and no
    /// volume limit (FUSE mounts are not a scarce attachment resource).
    public func getInfo(
        _ request: Csi_V1_NodeGetInfoRequest, context: RequestContext
    ) async throws
        -> Csi_V1_NodeGetInfoResponse
    {
        var response = Csi_V1_NodeGetInfoResponse()
        response.nodeID = nodeID
        return response
    }

    /// NodeGetCapabilities: exactly what this service implements — staging, stats, volume
    /// condition, and SINGLE_NODE_MULTI_WRITER. Not EXPAND_VOLUME: a GlusterFS client sees a
    /// volume's new size without any node-side step.
    public func getCapabilities(
        _ request: Csi_V1_NodeGetCapabilitiesRequest, context: RequestContext
    ) async throws
        -> Csi_V1_NodeGetCapabilitiesResponse
    {
        var response = Csi_V1_NodeGetCapabilitiesResponse()
        let types: [Csi_V1_NodeServiceCapability.RPC.TypeEnum] = [
            .stageUnstageVolume, .getVolumeStats, .volumeCondition, .singleNodeMultiWriter,
        ]
        response.capabilities = types.map { type in
            var capability = Csi_V1_NodeServiceCapability()
            capability.rpc.type = type
            return capability
        }
        return response
    }

    /// NodeExpandVolume: not offered (see `getCapabilities`), so UNIMPLEMENTED.
    public func expandVolume(
        _ request: Csi_V1_NodeExpandVolumeRequest, context: RequestContext
    ) async throws
        -> Csi_V1_NodeExpandVolumeResponse
    {
        throw CSIError.unimplemented(
            "NodeExpandVolume is not needed for GlusterFS: clients see the new size once the controller expands it")
    }

    /// A child logger with the volume ID, for one RPC.
    func logger(_ context: RequestContext, volumeID: String) -> Logger {
        var logger = context.logger
        logger[metadataKey: "volume_id"] = "\(volumeID)"
        return logger
    }

    /// Refuses `path` (the request's `field`) unless it lies under the kubelet directory.
    func confine(_ path: String, field: String) async throws(CSIError) {
        try await kubeletDirectory.confine(path, field: field, timeout: timeouts.probe)
    }

    /// `limit`, shortened to what is left of the caller's deadline; DEADLINE_EXCEEDED if none is.
    func budget(_ limit: Duration, _ context: RequestContext) throws(CSIError) -> Duration {
        let remaining = context.remaining(atMost: limit)
        guard remaining > .zero else {
            throw CSIError(.deadlineExceeded, "the caller's deadline passed before the operation could start")
        }
        return remaining
    }
}

/// What NodeService locks: a volume, or one target path.
enum NodeLockKey: Hashable, Sendable, CustomStringConvertible {
    case volume(String)
    case target(String)

    var description: String {
        switch self {
        case .volume(let id): "volume \(id)"
        case .target(let path): "target path \(path)"
        }
    }
}

/// Bounds on the outside calls the node service makes.
public struct NodeTimeouts: Sendable, Equatable {
    /// A glusterfs mount (volfile fetch from the primary, then the backups).
    public var mount: Duration
    /// A bind mount or a read-only remount (local, fast).
    public var bind: Duration
    /// The whole normal → forced → lazy unmount escalation of one path.
    public var unmount: Duration
    /// A stat or statvfs of a mounted path (a dead FUSE mount may never answer).
    public var probe: Duration
    /// How long a client may take to exit by itself once its mount is gone, before its unit's
    /// remaining processes get SIGTERM (then SIGKILL, 2 s each).
    public var clientExit: Duration

    /// Bounds with production defaults: 60 s mount, 10 s bind, 20 s unmount escalation, 5 s probe,
    /// 5 s client exit.
    public init(
        mount: Duration = .seconds(60), bind: Duration = .seconds(10), unmount: Duration = .seconds(20),
        probe: Duration = .seconds(5), clientExit: Duration = .seconds(5)
    ) {
        self.mount = mount
        self.bind = bind
        self.unmount = unmount
        self.probe = probe
        self.clientExit = clientExit
    }
}

/// The node service cannot start with this configuration.
extension NodeService {
    /// The node ID rule (`init` applies it; the command line checks its flag with it too).
    public static func check(nodeID: String) throws(NodeConfigurationError) {
        guard !nodeID.isEmpty, nodeID.utf8.count <= NodeRequestValidation.maxIDLength else {
            throw NodeConfigurationError("node ID must be 1 to \(NodeRequestValidation.maxIDLength) bytes")
        }
    }

    /// The client-log directory rule (`init` applies it; the command line checks its flag with it).
    /// The directory becomes part of a mount option (log-file=...), so it is held to the same
    /// character rules as option values, plus '/'.
    public static func check(logDirectory: String) throws(NodeConfigurationError) {
        let valid =
            (try? NodeRequestValidation.path(logDirectory, field: "log directory")) != nil
            && logDirectory.utf8.allSatisfy {
                isASCIIAlphanumeric($0) || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "_")
                    || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
            }
        guard valid else {
            throw NodeConfigurationError(
                "log directory must be an absolute, clean path of A-Z a-z 0-9 / _ . -, got '\(printable(logDirectory))'"
            )
        }
    }
}

public struct NodeConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong with the configuration and what to change.
    public var description: String
    /// Creates the error with its message.
    public init(_ description: String) { self.description = description }
}
