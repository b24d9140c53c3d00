import CSICore
import CSIProto
import Logging

extension NodeService {
    /// NodeGetVolumeStats: bytes and inodes (available, total, used) of the volume at
    /// `volume_path`, from `statvfs`, plus its condition.
    ///
    /// A path that does not exist → NOT_FOUND. A dead mount is not an error: the response has no
    /// usage and `volume_condition` abnormal with the reason, so kubelet can surface it as an event.
    public func getVolumeStats(
        _ request: Csi_V1_NodeGetVolumeStatsRequest, context: RequestContext
    ) async throws
        -> Csi_V1_NodeGetVolumeStatsResponse
    {
        let volumeID = try NodeRequestValidation.volumeID(request.volumeID)
        guard !request.volumePath.isEmpty else { throw CSIError.missingField("volume_path") }
        guard request.volumePath.hasPrefix("/") else {
            // Nothing can be published at a relative path: the volume is not there.
            throw CSIError(
                .notFound, "volume_path '\(request.volumePath)' does not exist: volumes are published at absolute paths"
            )
        }
        let volumePath = try NodeRequestValidation.path(request.volumePath, field: "volume_path")
        if !request.stagingTargetPath.isEmpty {
            _ = try NodeRequestValidation.path(request.stagingTargetPath, field: "staging_target_path")
        }
        // This driver publishes only under the kubelet directory: elsewhere none of its volumes is.
        do throws(CSIError) {
            try await confine(volumePath, field: "volume_path")
        } catch {
            throw error.code == .invalidArgument ? CSIError(.notFound, error.message) : error
        }

        var response = Csi_V1_NodeGetVolumeStatsResponse()
        func abnormal(_ message: String) -> Csi_V1_NodeGetVolumeStatsResponse {
            logger(context, volumeID: volumeID).warning(
                "volume is abnormal", metadata: ["volume_path": "\(volumePath)", "reason": "\(message)"])
            response.volumeCondition.abnormal = true
            response.volumeCondition.message = message
            return response
        }
        let repair = "it is mounted again by the next NodeStageVolume or NodePublishVolume; restart the pod"

        // One stat and one statvfs: the statvfs that proves the mount answers is also the usage.
        let (health, probedUsage) = await probe.healthAndUsage(of: volumePath, timeout: timeouts.probe)
        let usage: FilesystemUsage
        switch health {
        case .healthy:
            guard let probedUsage else {
                throw CSIError(.internal, "the probe of volume_path \(volumePath) returned no usage")
            }
            usage = probedUsage
        case .missing:
            throw CSIError.notFound(
                "volume_path \(volumePath) does not exist; volume \(volumeID) is not published there")
        case .corrupted(let reason):
            return abnormal("the GlusterFS mount at \(volumePath) is dead (\(reason)); \(repair)")
        case .failed(let code):
            throw CSIError(.internal, "cannot stat volume_path \(volumePath): \(systemErrorDescription(code))")
        }
        guard let mounted = try mountPoint(at: volumePath) else {
            return abnormal("nothing is mounted at \(volumePath); volume \(volumeID) is not published there")
        }
        guard mounted.fsType == Self.glusterFSType else {
            return abnormal("\(volumePath) has \(mounted.fsType) '\(mounted.source)' mounted, not a GlusterFS volume")
        }

        var bytes = Csi_V1_VolumeUsage()
        bytes.unit = .bytes
        bytes.total = usage.totalBytes
        bytes.available = usage.availableBytes
        bytes.used = usage.usedBytes
        var inodes = Csi_V1_VolumeUsage()
        inodes.unit = .inodes
        inodes.total = usage.totalInodes
        inodes.available = usage.availableInodes
        inodes.used = usage.usedInodes
        response.usage = [bytes, inodes]
        response.volumeCondition.abnormal = false
        response.volumeCondition.message = "volume is mounted and answering"
        return response
    }
}
