import CSICore
import CSIProto
import Heketi

extension ControllerService {
    /// ControllerExpandVolume. Heketi expands by a delta (a new brick set), so the delta is
    /// computed from Heketi's current size; a volume already at least as large succeeds without a
    /// call. Online: GlusterFS clients see the new size at once, so no node expansion is needed.
    public func expandVolume(
        _ request: Csi_V1_ControllerExpandVolumeRequest, context: RequestContext
    ) async throws
        -> Csi_V1_ControllerExpandVolumeResponse
    {
        guard !request.volumeID.isEmpty else { throw CSIError.missingField("volume_id") }
        guard request.hasCapacityRange else { throw CSIError.missingField("capacity_range") }
        if request.hasVolumeCapability {
            try VolumeCapabilities.check(request.volumeCapability)
        }
        guard let id = VolumeID(parsing: request.volumeID) else {
            throw CSIError(.notFound, "volume '\(request.volumeID)' does not exist")
        }
        let target = try Self.sizeGiB(for: request.capacityRange, durability: .none)
        let endpoint = try connections.endpoint(for: id, secrets: request.secrets)
        let heketi = connections.client(for: endpoint)
        let index = connections.index(for: endpoint)
        let key = endpoint.url + "|" + id.heketiID
        return try await volumeLocks.withLock(key) {
            var volume = try await existingVolume(id, heketi: heketi)
            if volume.sizeGiB < target {
                let delta = target - volume.sizeGiB
                volume = try await expansions.run(
                    key: key + "|\(target)", subject: "volume \(id.heketiID) to \(target) GiB",
                    deadline: waitDeadline(context)
                ) {
                    let expanded = try await heketi.expandVolume(id: id.heketiID, deltaGiB: delta)
                    await index.record(expanded)
                    return expanded
                }
                context.logger.info(
                    "heketi volume expanded",
                    metadata: ["heketi.id": "\(id.heketiID)", "size_gib": "\(volume.sizeGiB)"])
            }
            var response = Csi_V1_ControllerExpandVolumeResponse()
            response.capacityBytes = Int64(volume.sizeGiB) * Self.gibibyte
            response.nodeExpansionRequired = false
            return response
        }
    }

    /// The volume as Heketi knows it now; NOT_FOUND with the CSI ID when Heketi does not.
    func existingVolume(_ id: VolumeID, heketi: any HeketiAPI) async throws -> HeketiVolume {
        // A snapshot's clone is a Heketi volume too, but never a CSI volume.
        guard let volume = try await heketi.volumeIfExists(id: id.heketiID),
            HeketiSnapshotName(parsing: volume.name) == nil
        else {
            throw CSIError(.notFound, "volume \(id) does not exist in Heketi")
        }
        return volume
    }
}
