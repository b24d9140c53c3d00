import CSICore
import CSIProto
import Glibc
import Heketi
import Logging
import SwiftProtobuf

/// Snapshots are Heketi clones (`POST /volumes/{id}/clone`): Heketi clones through a gluster
/// snapshot of thin bricks, so a clone is a point-in-time, copy-on-write copy. The clone's name
/// (HeketiSnapshotName) carries what Heketi does not store: the creation time and the source.
extension ControllerService {
    /// CreateSnapshot. Idempotent like CreateVolume: the clone is found by the part of its name
    /// derived from the CSI name, so a retry, a restarted controller or a restarted Heketi answer the
    /// same snapshot ID and creation time. Same name, other source → ALREADY_EXISTS; unknown source
    /// → NOT_FOUND.
    public func createSnapshot(
        _ request: Csi_V1_CreateSnapshotRequest, context: RequestContext
    ) async throws -> Csi_V1_CreateSnapshotResponse {
        guard !request.name.isEmpty else { throw CSIError.missingField("name") }
        guard !request.sourceVolumeID.isEmpty else { throw CSIError.missingField("source_volume_id") }
        try Self.checkSnapshotParameters(request.parameters)
        guard let source = VolumeID(parsing: request.sourceVolumeID) else {
            throw CSIError(.notFound, "source volume '\(request.sourceVolumeID)' does not exist")
        }
        let endpoint = try connections.endpoint(for: source, secrets: request.secrets)
        let heketi = connections.client(for: endpoint)
        let index = connections.index(for: endpoint)
        let lookupPrefix = HeketiSnapshotName.lookupPrefix(csiName: request.name)
        var logger = context.logger
        logger[metadataKey: "heketi.url"] = "\(endpoint.url)"
        logger[metadataKey: "source.heketi.id"] = "\(source.heketiID)"

        // A repeat of a request that already succeeded: one lookup, no scan.
        if let known = await index.snapshot(lookupPrefix: lookupPrefix) {
            if let current = try await heketi.volumeIfExists(id: known.id) {
                await index.record(current)
                return try snapshotResponse(current, request: request, source: source)
            }
            await index.remove(id: known.id)
        }
        let clone = try await creates.run(
            key: "snapshot|" + endpoint.url + "|" + lookupPrefix,
            subject: "snapshot \(request.name) of volume \(source.heketiID) on Heketi \(endpoint.url)",
            deadline: waitDeadline(context)
        ) { [logger, name = request.name, indexMaxAge = configuration.indexMaxAge] in
            try await Self.cloneForSnapshot(
                name: name, lookupPrefix: lookupPrefix, source: source, heketi: heketi, index: index,
                indexMaxAge: indexMaxAge, logger: logger)
        }
        return try snapshotResponse(clone, request: request, source: source)
    }

    /// Clones the source unless Heketi already has a clone for this snapshot name. Runs in the
    /// background task of the operation tracker.
    private static func cloneForSnapshot(
        name: String, lookupPrefix: String, source: VolumeID, heketi: any HeketiAPI, index: VolumeIndex,
        indexMaxAge: Duration, logger: Logger
    ) async throws -> HeketiVolume {
        // Heketi does not refuse a second clone with one name: only a settled index can tell (see
        // VolumeIndex).
        try await index.catchUp(with: heketi, ifOlderThan: indexMaxAge)
        if let existing = await index.snapshot(lookupPrefix: lookupPrefix) {
            logger.info("adopting existing snapshot clone", metadata: ["heketi.id": "\(existing.id)"])
            return existing
        }
        try await requireSettled(index, before: "snapshot \(name)")
        // Normally the index knows the source, so no request is needed (a source deleted since
        // makes the clone fail with "Id not found" below); one made outside the driver since the
        // last catch-up (a static volume) is asked for.
        guard let sourceVolume = try await index.volume(id: source.heketiID, askingIfUnknown: heketi),
            HeketiSnapshotName(parsing: sourceVolume.name) == nil
        else {
            throw CSIError(.notFound, "source volume \(source) does not exist in Heketi")
        }
        let snapshotName = HeketiSnapshotName(
            csiName: name, createdSeconds: Self.unixSeconds(), sourceHeketiID: source.heketiID)
        do throws(HeketiError) {
            let clone = try await heketi.cloneVolume(id: source.heketiID, name: snapshotName.value)
            await index.record(clone)
            logger.info(
                "snapshot clone created",
                metadata: ["heketi.id": "\(clone.id)", "heketi.name": "\(clone.name)", "size_gib": "\(clone.sizeGiB)"])
            return clone
        } catch {
            if error.leavesCreateOutcomeUnknown {
                await index.cloneOutcomeUnknown()
            }
            if case .notFound = error {
                throw CSIError(.notFound, "source volume \(source) does not exist in Heketi")
            }
            throw error
        }
    }

    /// Clones wait until the index is settled (see VolumeIndex): until then a clone an earlier
    /// controller started may still finish, and cloning again would leave two.
    static func requireSettled(_ index: VolumeIndex, before what: String) async throws(CSIError) {
        guard await index.isSettled else {
            throw CSIError.aborted(
                "Heketi has operations in flight that this controller did not start (perhaps the clone for \(what), "
                    + "left running by a controller that stopped); retry once they finish. A stale operation left "
                    + "by a Heketi restart keeps this until POST /operations/pending/cleanup on Heketi")
        }
    }

    /// DeleteSnapshot. Idempotent: an ID this driver did not produce, or a clone Heketi no longer
    /// knows, counts as deleted. Only clones named as snapshots are deleted: an ID naming a volume
    /// deletes nothing.
    public func deleteSnapshot(
        _ request: Csi_V1_DeleteSnapshotRequest, context: RequestContext
    ) async throws -> Csi_V1_DeleteSnapshotResponse {
        guard !request.snapshotID.isEmpty else { throw CSIError.missingField("snapshot_id") }
        guard let id = SnapshotID(parsing: request.snapshotID) else {
            context.logger.info("delete of a snapshot ID this driver never issued; nothing to do")
            return Csi_V1_DeleteSnapshotResponse()
        }
        let endpoint = try connections.endpoint(for: id.asVolumeID, secrets: request.secrets)
        let heketi = connections.client(for: endpoint)
        let index = connections.index(for: endpoint)
        let key = endpoint.url + "|" + id.heketiID
        return try await volumeLocks.withLock(key) {
            _ = try await deletes.run(
                key: key, subject: "snapshot \(id.heketiID) on Heketi \(endpoint.url)", deadline: waitDeadline(context)
            ) { [logger = context.logger] in
                // The index tells a snapshot's clone from a volume without a request when it knows it.
                guard let clone = try await index.volume(id: id.heketiID, askingIfUnknown: heketi) else {
                    await index.remove(id: id.heketiID)
                    return true
                }
                guard HeketiSnapshotName(parsing: clone.name) != nil else {
                    logger.warning(
                        "snapshot ID names a Heketi volume that is not a snapshot; nothing deleted",
                        metadata: ["heketi.id": "\(id.heketiID)", "heketi.name": "\(clone.name)"])
                    return false
                }
                try await heketi.deleteVolumeIfExists(id: id.heketiID)
                await index.remove(id: id.heketiID)
                logger.info("snapshot clone deleted", metadata: ["heketi.id": "\(id.heketiID)"])
                return true
            }
            return Csi_V1_DeleteSnapshotResponse()
        }
    }

    /// GetSnapshot: the snapshot as Heketi describes it now; NOT_FOUND when it is gone.
    public func getSnapshot(
        _ request: Csi_V1_GetSnapshotRequest, context: RequestContext
    ) async throws -> Csi_V1_GetSnapshotResponse {
        guard !request.snapshotID.isEmpty else { throw CSIError.missingField("snapshot_id") }
        guard let id = SnapshotID(parsing: request.snapshotID),
            let (clone, name) = try await existingSnapshot(id, secrets: request.secrets)
        else {
            throw CSIError(.notFound, "snapshot '\(request.snapshotID)' does not exist")
        }
        var response = Csi_V1_GetSnapshotResponse()
        response.snapshot = try csiSnapshot(clone, name: name, recordedURL: id.heketiURL)
        return response
    }

    /// ListSnapshots: by snapshot_id (zero or one entry), by source_volume_id, or every snapshot of
    /// the default Heketi; sorted by Heketi ID, paged with offset tokens like ListVolumes. A filter
    /// naming nothing this driver made gives an empty list.
    public func listSnapshots(
        _ request: Csi_V1_ListSnapshotsRequest, context: RequestContext
    ) async throws -> Csi_V1_ListSnapshotsResponse {
        let page = try ListPage(startingToken: request.startingToken, maxEntries: request.maxEntries)
        var snapshots: [(HeketiVolume, HeketiSnapshotName)] = []
        var recordedURL = ""
        if !request.snapshotID.isEmpty {
            guard let id = SnapshotID(parsing: request.snapshotID),
                let found = try await existingSnapshot(id, secrets: request.secrets)
            else { return Csi_V1_ListSnapshotsResponse() }
            if !request.sourceVolumeID.isEmpty,
                VolumeID(parsing: request.sourceVolumeID)?.heketiID != found.1.sourceHeketiID
            {
                return Csi_V1_ListSnapshotsResponse()
            }
            snapshots = [found]
            recordedURL = id.heketiURL
        } else {
            let endpoint: HeketiEndpoint
            var sourceFilter: String?
            if !request.sourceVolumeID.isEmpty {
                guard let source = VolumeID(parsing: request.sourceVolumeID) else {
                    return Csi_V1_ListSnapshotsResponse()
                }
                endpoint = try connections.endpoint(for: source, secrets: request.secrets)
                sourceFilter = source.heketiID
                recordedURL = source.heketiURL
            } else {
                guard configuration.defaultHeketiURL != nil else {
                    throw CSIError(
                        .failedPrecondition,
                        "listing every snapshot needs the controller's default Heketi (--heketi-url); filter by "
                            + "snapshot_id or source_volume_id instead")
                }
                endpoint = try connections.endpoint(url: nil)
                recordedURL = endpoint.url
            }
            let index = connections.index(for: endpoint)
            try await index.catchUp(with: connections.client(for: endpoint))
            snapshots = await index.allVolumes().compactMap { volume in
                guard let name = HeketiSnapshotName(parsing: volume.name),
                    sourceFilter == nil || name.sourceHeketiID == sourceFilter
                else { return nil }
                return (volume, name)
            }
        }
        let (range, nextToken) = try page.entries(of: snapshots.count)
        var response = Csi_V1_ListSnapshotsResponse()
        response.entries = try snapshots[range].map { clone, name throws(CSIError) in
            var entry = Csi_V1_ListSnapshotsResponse.Entry()
            entry.snapshot = try csiSnapshot(clone, name: name, recordedURL: recordedURL)
            return entry
        }
        response.nextToken = nextToken
        return response
    }

    /// The clone behind a snapshot ID and its parsed name; nil when Heketi does not know it or it
    /// is not a snapshot's clone.
    private func existingSnapshot(
        _ id: SnapshotID, secrets: [String: String]
    ) async throws -> (HeketiVolume, HeketiSnapshotName)? {
        let endpoint = try connections.endpoint(for: id.asVolumeID, secrets: secrets)
        guard let clone = try await connections.client(for: endpoint).volumeIfExists(id: id.heketiID),
            let name = HeketiSnapshotName(parsing: clone.name)
        else { return nil }
        return (clone, name)
    }

    /// The answer for a clone that exists: checks that it is a snapshot of this request's source.
    private func snapshotResponse(
        _ clone: HeketiVolume, request: Csi_V1_CreateSnapshotRequest, source: VolumeID
    ) throws(CSIError) -> Csi_V1_CreateSnapshotResponse {
        guard let name = HeketiSnapshotName(parsing: clone.name) else {
            throw CSIError(.internal, "Heketi volume \(clone.id) ('\(clone.name)') is not a snapshot clone")
        }
        guard name.sourceHeketiID == source.heketiID else {
            throw CSIError(
                .alreadyExists,
                "snapshot \(request.name) already exists, of Heketi volume \(name.sourceHeketiID), not of "
                    + "\(source.heketiID); use another snapshot name")
        }
        var response = Csi_V1_CreateSnapshotResponse()
        response.snapshot = try csiSnapshot(clone, name: name, recordedURL: source.heketiURL)
        return response
    }

    /// The CSI snapshot for a clone. Its size is the source's at the time of the snapshot (a clone
    /// copies the size), which is what a restore needs at least.
    func csiSnapshot(
        _ clone: HeketiVolume, name: HeketiSnapshotName, recordedURL: String
    ) throws(CSIError)
        -> Csi_V1_Snapshot
    {
        var snapshot = Csi_V1_Snapshot()
        snapshot.snapshotID = try SnapshotID(heketiID: clone.id, heketiURL: recordedURL).description
        snapshot.sourceVolumeID = try VolumeID(heketiID: name.sourceHeketiID, heketiURL: recordedURL).description
        snapshot.sizeBytes = Int64(clone.sizeGiB) * Self.gibibyte
        snapshot.creationTime = Google_Protobuf_Timestamp(seconds: name.createdSeconds, nanos: 0)
        snapshot.readyToUse = true
        return snapshot
    }

    /// A VolumeSnapshotClass takes no parameters of its own; the sidecar's (`csi.storage.k8s.io/`)
    /// are ignored.
    static func checkSnapshotParameters(_ parameters: [String: String]) throws(CSIError) {
        for key in parameters.keys.sorted() where !key.hasPrefix("csi.storage.k8s.io/") {
            throw CSIError(
                .invalidArgument,
                "unknown VolumeSnapshotClass parameter '\(printable(key))': this driver takes none (the Heketi "
                    + "secret goes in csi.storage.k8s.io/snapshotter-secret-name and -namespace); remove it")
        }
    }

    /// Wall-clock seconds since 1970: a snapshot's creation time.
    static func unixSeconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec)
    }
}

extension SnapshotID {
    /// The clone as a volume ID, for what treats it as a Heketi volume (endpoint, credentials).
    var asVolumeID: VolumeID {
        // Built from a valid SnapshotID, whose parts are valid volume ID parts.
        VolumeID(parsing: "v1:\(heketiID):\(heketiURL)")!
    }
}
