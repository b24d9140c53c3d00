import CSICore
import CSIProto
import Logging

extension NodeService {
    /// NodePublishVolume: bind-mounts the staged volume at `target_path` (created if missing),
    /// read-only when the request or the access mode says so.
    ///
    /// - Idempotent: already bound there from this staging mount with the same read-only-ness → OK;
    ///   with the other one → ALREADY_EXISTS. Something unrelated there → FAILED_PRECONDITION.
    /// - Not staged → FAILED_PRECONDITION. A one-publication mode (SINGLE_NODE_WRITER,
    ///   SINGLE_NODE_READER_ONLY, SINGLE_NODE_SINGLE_WRITER) already published at another target
    ///   → FAILED_PRECONDITION naming it.
    /// - A dead staging client is replaced (from this request's volume context and capability)
    ///   and a stale bind at the target is re-bound; logged as a recovery.
    public func publishVolume(
        _ request: Csi_V1_NodePublishVolumeRequest, context: RequestContext
    ) async throws
        -> Csi_V1_NodePublishVolumeResponse
    {
        let volumeID = try NodeRequestValidation.volumeID(request.volumeID)
        let targetPath = try NodeRequestValidation.path(request.targetPath, field: "target_path")
        let capability = try NodeRequestValidation.capability(
            request.volumeCapability, present: request.hasVolumeCapability)
        // This plugin advertises STAGE_UNSTAGE_VOLUME, so publishing needs a staged volume: the spec
        // answers a missing staging path with FAILED_PRECONDITION (checked after the fields above,
        // which are INVALID_ARGUMENT whatever the staging path).
        guard !request.stagingTargetPath.isEmpty else {
            throw CSIError(
                .failedPrecondition,
                "staging_target_path is required: this driver stages volumes (NodeStageVolume) before publishing them")
        }
        let stagingPath = try NodeRequestValidation.mountHelperPath(
            request.stagingTargetPath, field: "staging_target_path")
        guard targetPath != stagingPath else {
            throw CSIError.invalidArgument("target_path must differ from staging_target_path, both are \(targetPath)")
        }
        let options = try GlusterMountOptions(
            mountFlags: capability.mountFlags, readOnlyAccessMode: capability.isReadOnlyMode)
        let readOnly = request.readonly || capability.isReadOnlyMode
        try await confine(targetPath, field: "target_path")
        try await confine(stagingPath, field: "staging_target_path")
        var logger = logger(context, volumeID: volumeID)
        logger[metadataKey: "target_path"] = "\(targetPath)"
        logger[metadataKey: "staging_target_path"] = "\(stagingPath)"

        // Repairing the staging mount, and checking for other publications, need the volume to
        // ourselves; plain publishes share it so that many pods can publish at once. The health
        // check here only chooses the lock; it is repeated under the lock.
        let stagingDead = await probe.health(of: stagingPath, timeout: timeouts.probe).isCorrupted
        let exclusive = stagingDead || capability.allowsOnePublication
        let publish = { () async throws -> Void in
            try await self.publish(
                PublishPlan(
                    volumeID: volumeID, stagingPath: stagingPath, targetPath: targetPath, readOnly: readOnly,
                    capability: capability, options: options, volumeContext: request.volumeContext,
                    mayRepairStaging: exclusive),
                logger: logger, context: context)
        }
        try await locks.withLock(.target(targetPath)) {
            if exclusive {
                try await locks.withLock(.volume(volumeID), publish)
            } else {
                try await locks.withSharedLock(.volume(volumeID), publish)
            }
        }
        return Csi_V1_NodePublishVolumeResponse()
    }

    /// NodeUnpublishVolume: unmounts `target_path` and removes it.
    ///
    /// Idempotent: nothing mounted, or the path gone → OK. Works while the client is dead or the
    /// servers are unreachable (forced, then lazy unmount within the timeout).
    public func unpublishVolume(
        _ request: Csi_V1_NodeUnpublishVolumeRequest, context: RequestContext
    ) async throws
        -> Csi_V1_NodeUnpublishVolumeResponse
    {
        let volumeID = try NodeRequestValidation.volumeID(request.volumeID)
        let targetPath = try NodeRequestValidation.path(request.targetPath, field: "target_path")
        try await confine(targetPath, field: "target_path")
        var logger = logger(context, volumeID: volumeID)
        logger[metadataKey: "target_path"] = "\(targetPath)"

        try await locks.withLock(.target(targetPath)) {
            try await locks.withSharedLock(.volume(volumeID)) {
                try await unmountAll(targetPath, logger: logger, context: context)
                do throws(FileIOError) {
                    try FileIO.removeDirectory(targetPath)
                } catch {
                    throw CSIError(.internal, "unmounted, but cannot remove target_path: \(error)")
                }
                logger.info("unpublished volume")
            }
        }
        return Csi_V1_NodeUnpublishVolumeResponse()
    }

    /// Everything `publish` needs, validated.
    struct PublishPlan {
        var volumeID: String
        var stagingPath: String
        var targetPath: String
        var readOnly: Bool
        var capability: NodeRequestValidation.Capability
        var options: GlusterMountOptions
        var volumeContext: [String: String]
        /// Whether we hold the volume exclusively and may replace a dead staging client.
        var mayRepairStaging: Bool
    }

    private func publish(_ plan: PublishPlan, logger: Logger, context: RequestContext) async throws(CSIError) {
        // One read of the mount table serves every check below (again only after a repair).
        var table = try mountTable()
        guard var staging = table.last(where: { $0.mountPoint == plan.stagingPath }) else {
            throw CSIError(
                .failedPrecondition,
                "volume \(plan.volumeID) is not staged at \(plan.stagingPath); NodeStageVolume must succeed first")
        }
        guard staging.fsType == Self.glusterFSType else {
            throw CSIError(
                .failedPrecondition,
                "staging_target_path \(plan.stagingPath) has \(staging.fsType) '\(staging.source)' mounted, "
                    + "not a GlusterFS volume")
        }
        switch await probe.health(of: plan.stagingPath, timeout: timeouts.probe) {
        case .healthy:
            break
        case .corrupted(let reason):
            guard plan.mayRepairStaging else {
                throw CSIError.aborted(
                    "the staging mount of volume \(plan.volumeID) died during this call; retry to repair it")
            }
            logger.warning("staging mount is dead; mounting it again", metadata: ["reason": "\(reason)"])
            let source = try GlusterVolumeSource(volumeContext: plan.volumeContext)
            guard source.matches(mountSource: staging.source) else {
                throw CSIError(
                    .failedPrecondition,
                    "staging_target_path \(plan.stagingPath) has '\(staging.source)' mounted, not Gluster volume "
                        + "\(source.volume) of this request")
            }
            staging = try await recoverStaging(
                staging, source: source, options: plan.options, volumeID: plan.volumeID,
                stagingPath: plan.stagingPath, except: plan.targetPath, logger: logger, context: context)
            table = try mountTable()
        case .missing, .failed:
            throw CSIError(.internal, "staging_target_path \(plan.stagingPath) is mounted but cannot be stat'ed")
        }

        if let existing = table.last(where: { $0.mountPoint == plan.targetPath }) {
            if existing.sharesFilesystem(with: staging) {
                guard existing.isReadOnly == plan.readOnly else {
                    throw CSIError(
                        .alreadyExists,
                        "volume \(plan.volumeID) is already published at \(plan.targetPath) "
                            + "\(Self.modeName(existing.isReadOnly)), but this request asks for "
                            + "\(Self.modeName(plan.readOnly)); unpublish it first")
                }
                logger.debug("volume already published")
                return
            }
            guard existing.fsType == Self.glusterFSType, existing.source == staging.source else {
                throw CSIError(
                    .failedPrecondition,
                    "target_path \(plan.targetPath) already has \(existing.fsType) '\(existing.source)' mounted; "
                        + "unpublish what is mounted there first")
            }
            // A bind of an earlier client of this same volume: that client is gone, so the bind
            // is dead. Replace it.
            logger.warning("target has a stale bind of an earlier client; binding it again")
            try await unmountAll(plan.targetPath, logger: logger, context: context)
        }

        if plan.capability.allowsOnePublication {
            // The table may still list a stale bind at the target, unmounted above: not another one.
            let others = publications(of: staging, stagingPath: plan.stagingPath, in: table)
                .filter { $0.mountPoint != plan.targetPath }
            if !others.isEmpty {
                throw CSIError(
                    .failedPrecondition,
                    "volume \(plan.volumeID) has access mode \(plan.capability.modeName) and is already published at "
                        + "\(others.map(\.mountPoint).joined(separator: ", ")); unpublish it there first or use a "
                        + "multi-writer access mode")
            }
        }

        try await bindMount(plan.stagingPath, at: plan.targetPath, readOnly: plan.readOnly, context: context)
        logger.info("published volume", metadata: ["read_only": "\(plan.readOnly)"])
    }
}
