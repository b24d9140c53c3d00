import CSICore
import CSIProto
import Heketi

extension ControllerService {
    /// DeleteVolume. Idempotent: an ID this driver did not produce, or a volume Heketi no longer
    /// knows ("Id not found"), counts as deleted. A delete still running (ours, or Heketi's own
    /// pending one) → ABORTED, retry later. Needs only the ID and the secrets, never the
    /// StorageClass, which may be gone by now.
    public func deleteVolume(
        _ request: Csi_V1_DeleteVolumeRequest, context: RequestContext
    ) async throws
        -> Csi_V1_DeleteVolumeResponse
    {
        guard !request.volumeID.isEmpty else { throw CSIError.missingField("volume_id") }
        guard let id = VolumeID(parsing: request.volumeID) else {
            context.logger.info("delete of a volume ID this driver never issued; nothing to do")
            return Csi_V1_DeleteVolumeResponse()
        }
        let endpoint = try connections.endpoint(for: id, secrets: request.secrets)
        let heketi = connections.client(for: endpoint)
        let index = connections.index(for: endpoint)
        let key = endpoint.url + "|" + id.heketiID
        if let known = await index.volume(id: id.heketiID), HeketiSnapshotName(parsing: known.name) != nil {
            context.logger.warning(
                "volume ID names a snapshot's clone; nothing deleted (DeleteSnapshot deletes snapshots)",
                metadata: ["heketi.id": "\(id.heketiID)"])
            return Csi_V1_DeleteVolumeResponse()
        }
        return try await volumeLocks.withLock(key) {
            _ = try await deletes.run(
                key: key, subject: "volume \(id.heketiID) on Heketi \(endpoint.url)", deadline: waitDeadline(context)
            ) {
                // Already gone is the outcome a retry of a finished delete expects.
                try await heketi.deleteVolumeIfExists(id: id.heketiID)
                await index.remove(id: id.heketiID)
                return true
            }
            context.logger.info("heketi volume deleted", metadata: ["heketi.id": "\(id.heketiID)"])
            return Csi_V1_DeleteVolumeResponse()
        }
    }
}
