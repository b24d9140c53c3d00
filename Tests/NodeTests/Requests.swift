import CSICore
import CSIProto

@testable import Node

typealias Mode = Csi_V1_VolumeCapability.AccessMode.Mode

/// A mount capability with `mode` and `flags`.
func capability(
    _ mode: Mode = .multiNodeMultiWriter, flags: [String] = [], fsType: String = ""
)
    -> Csi_V1_VolumeCapability
{
    var capability = Csi_V1_VolumeCapability()
    var mount = Csi_V1_VolumeCapability.MountVolume()
    mount.mountFlags = flags
    mount.fsType = fsType
    capability.mount = mount
    capability.accessMode.mode = mode
    return capability
}

let controllerContext = [
    VolumeContextKey.glusterVolume: "gv0", VolumeContextKey.glusterHosts: "s1.example.com,s2.example.com,10.0.0.3",
    VolumeContextKey.gid: "2001", VolumeContextKey.heketiVolumeID: "0123abcd", VolumeContextKey.heketiClusterID: "c1",
]

/// A service over a fake mounter and probe, in a fresh temporary directory.
final class Fixture {
    let directory = makeTemporaryDirectory()
    let mounter = FakeMounter()
    let probe = FakeProbe()
    let logs = RecordingLogHandler.Store()
    let service: NodeService

    var staging: String { directory + "/plugins/globalmount" }
    var target: String { directory + "/pods/p1/mount" }
    var target2: String { directory + "/pods/p2/mount" }
    var logDirectory: String { directory + "/logs" }
    var context: RequestContext { testContext(logs) }

    init(nodeID: String = "node-a", placement: any ClientPlacement = NoPlacement()) {
        service = try! NodeService(
            nodeID: nodeID, mounter: mounter, probe: probe, placement: placement,
            kubeletDirectory: try! KubeletDirectory(directory), logDirectory: directory + "/logs",
            timeouts: NodeTimeouts(mount: .seconds(5), bind: .seconds(1), unmount: .seconds(1), probe: .seconds(1)))
    }

    deinit { removeTree(directory) }

    func stageRequest(
        volumeID: String = "vol-1", context: [String: String] = controllerContext,
        capability: Csi_V1_VolumeCapability = capability()
    ) -> Csi_V1_NodeStageVolumeRequest {
        var request = Csi_V1_NodeStageVolumeRequest()
        request.volumeID = volumeID
        request.stagingTargetPath = staging
        request.volumeCapability = capability
        request.volumeContext = context
        request.secrets = ["key": "s3ntinel-secret"]
        return request
    }

    func publishRequest(
        target: String? = nil, volumeID: String = "vol-1", readOnly: Bool = false,
        capability: Csi_V1_VolumeCapability = capability(), context: [String: String] = controllerContext
    ) -> Csi_V1_NodePublishVolumeRequest {
        var request = Csi_V1_NodePublishVolumeRequest()
        request.volumeID = volumeID
        request.stagingTargetPath = staging
        request.targetPath = target ?? self.target
        request.volumeCapability = capability
        request.readonly = readOnly
        request.volumeContext = context
        return request
    }

    func unpublishRequest(target: String? = nil, volumeID: String = "vol-1") -> Csi_V1_NodeUnpublishVolumeRequest {
        var request = Csi_V1_NodeUnpublishVolumeRequest()
        request.volumeID = volumeID
        request.targetPath = target ?? self.target
        return request
    }

    func unstageRequest(volumeID: String = "vol-1") -> Csi_V1_NodeUnstageVolumeRequest {
        var request = Csi_V1_NodeUnstageVolumeRequest()
        request.volumeID = volumeID
        request.stagingTargetPath = staging
        return request
    }

    func statsRequest(path: String? = nil, volumeID: String = "vol-1") -> Csi_V1_NodeGetVolumeStatsRequest {
        var request = Csi_V1_NodeGetVolumeStatsRequest()
        request.volumeID = volumeID
        request.volumePath = path ?? target
        return request
    }

    @discardableResult
    func stage(_ request: Csi_V1_NodeStageVolumeRequest? = nil) async throws -> Csi_V1_NodeStageVolumeResponse {
        try await service.stageVolume(request ?? stageRequest(), context: context)
    }

    @discardableResult
    func publish(_ request: Csi_V1_NodePublishVolumeRequest? = nil) async throws -> Csi_V1_NodePublishVolumeResponse {
        try await service.publishVolume(request ?? publishRequest(), context: context)
    }

    /// The options of the last mount call.
    var lastMountOptions: [String] {
        for call in mounter.calls.reversed() {
            if case .mount(_, _, _, let options) = call { return options }
        }
        return []
    }

    var mountCalls: [FakeMounter.Call] {
        mounter.calls.filter { if case .mount = $0 { true } else { false } }
    }
}

/// Runs `body` and returns the CSIError it threw, or nil.
func csiError(_ body: () async throws -> Void) async -> CSIError? {
    do {
        try await body()
        return nil
    } catch let error as CSIError {
        return error
    } catch {
        return CSIError(.unknown, "not a CSIError: \(error)")
    }
}
