import CSICore
import CSIProto
import Logging

extension NodeService {
    /// NodeStageVolume: mounts the Gluster volume once per node at `staging_target_path`.
    ///
    /// - Idempotent: the same volume already mounted there and healthy → OK.
    /// - Something else mounted there → FAILED_PRECONDITION naming it. The same volume staged with
    ///   the other read-only/read-write mode → ALREADY_EXISTS (the spec's "incompatible").
    /// - A dead client there (stat fails with ENOTCONN, ESTALE, EIO, EHOSTDOWN, EACCES or hangs)
    ///   → unmounted, mounted again, and the pods' bind mounts re-bound; logged as a recovery.
    public func stageVolume(
        _ request: Csi_V1_NodeStageVolumeRequest, context: RequestContext
    ) async throws
        -> Csi_V1_NodeStageVolumeResponse
    {
        let volumeID = try NodeRequestValidation.volumeID(request.volumeID)
        let stagingPath = try NodeRequestValidation.mountHelperPath(
            request.stagingTargetPath, field: "staging_target_path")
        let capability = try NodeRequestValidation.capability(
            request.volumeCapability, present: request.hasVolumeCapability)
        let source = try GlusterVolumeSource(volumeContext: request.volumeContext)
        let options = try GlusterMountOptions(
            mountFlags: capability.mountFlags, readOnlyAccessMode: capability.isReadOnlyMode)
        try await confine(stagingPath, field: "staging_target_path")
        var logger = logger(context, volumeID: volumeID)
        logger[metadataKey: "staging_target_path"] = "\(stagingPath)"
        logger[metadataKey: "gluster_volume"] = "\(source.volume)"
        if let id = source.heketiVolumeID { logger[metadataKey: "heketi.id"] = "\(id)" }
        if let id = source.heketiClusterID { logger[metadataKey: "heketi.cluster"] = "\(id)" }

        try await locks.withLock(.volume(volumeID)) {
            _ = try await ensureStaged(
                source, options: options, volumeID: volumeID, stagingPath: stagingPath, logger: logger,
                context: context)
        }
        return Csi_V1_NodeStageVolumeResponse()
    }

    /// NodeUnstageVolume: unmounts the staging mount and removes its directory.
    ///
    /// Idempotent: nothing mounted, or the path gone → OK. Works on a dead client or an
    /// unreachable server: the unmount escalates to forced and lazy within its timeout.
    public func unstageVolume(
        _ request: Csi_V1_NodeUnstageVolumeRequest, context: RequestContext
    ) async throws
        -> Csi_V1_NodeUnstageVolumeResponse
    {
        let volumeID = try NodeRequestValidation.volumeID(request.volumeID)
        let stagingPath = try NodeRequestValidation.path(request.stagingTargetPath, field: "staging_target_path")
        try await confine(stagingPath, field: "staging_target_path")
        var logger = logger(context, volumeID: volumeID)
        logger[metadataKey: "staging_target_path"] = "\(stagingPath)"

        try await locks.withLock(.volume(volumeID)) {
            let table = try mountTable()
            var stillPublished = false
            if let staged = table.last(where: { $0.mountPoint == stagingPath }) {
                // The CO unpublishes first; if it did not, the pods keep their bind mounts (they
                // hold the client alive, so its unit stays) and the leftovers are worth a log line.
                let leftovers = publications(of: staged, stagingPath: stagingPath, in: table)
                if !leftovers.isEmpty {
                    stillPublished = true
                    logger.warning(
                        "unstaging a volume that is still published; its glusterfs client keeps running",
                        metadata: ["targets": "\(leftovers.map(\.mountPoint).joined(separator: ","))"])
                }
            }
            try await unmountAll(stagingPath, logger: logger, context: context)
            // Derived from the volume ID and the staging path alone: also a unit another plugin
            // instance made, and one whose client died long ago.
            if !stillPublished {
                try await removeClientUnit(ClientUnit(volumeID: volumeID, stagingPath: stagingPath), logger: logger)
            }
            do throws(FileIOError) {
                try FileIO.removeDirectory(stagingPath)
            } catch {
                throw CSIError(.internal, "unmounted, but cannot remove staging_target_path: \(error)")
            }
            logger.info("unstaged volume")
        }
        return Csi_V1_NodeUnstageVolumeResponse()
    }

    /// Makes sure the volume is mounted and healthy at `stagingPath` and returns the mount. Caller
    /// holds the volume lock exclusively.
    func ensureStaged(
        _ source: GlusterVolumeSource, options: GlusterMountOptions, volumeID: String, stagingPath: String,
        logger: Logger, context: RequestContext
    ) async throws(CSIError) -> MountInfo {
        guard let existing = try mountPoint(at: stagingPath) else {
            do throws(FileIOError) {
                try FileIO.makeDirectories(stagingPath)
            } catch {
                throw CSIError(.internal, "cannot create staging_target_path: \(error)")
            }
            return try await mountGluster(
                source, options: options, volumeID: volumeID, stagingPath: stagingPath, logger: logger,
                context: context)
        }
        guard existing.fsType == Self.glusterFSType, source.matches(mountSource: existing.source) else {
            throw CSIError(
                .failedPrecondition,
                "staging_target_path \(stagingPath) already has \(existing.fsType) '\(existing.source)' mounted, "
                    + "not Gluster volume \(source.volume); unstage what is mounted there first")
        }
        switch await probe.health(of: stagingPath, timeout: timeouts.probe) {
        case .healthy:
            guard existing.isReadOnly == options.readOnly else {
                throw CSIError(
                    .alreadyExists,
                    "volume \(volumeID) is already staged at \(stagingPath) \(Self.modeName(existing.isReadOnly)), "
                        + "but this request asks for \(Self.modeName(options.readOnly)); unstage it first")
            }
            logger.debug("volume already staged")
            return existing
        case .corrupted(let reason):
            logger.warning("staging mount is dead; mounting it again", metadata: ["reason": "\(reason)"])
            return try await recoverStaging(
                existing, source: source, options: options, volumeID: volumeID, stagingPath: stagingPath,
                except: nil, logger: logger, context: context)
        case .missing:
            throw CSIError(
                .internal, "staging_target_path \(stagingPath) is in the mount table but stat says it does not exist")
        case .failed(let code):
            throw CSIError(
                .internal, "cannot stat staging_target_path \(stagingPath): \(systemErrorDescription(code))")
        }
    }

    /// Replaces the dead client mounted at `stagingPath` with a new one and re-binds the volume's
    /// publications (all but `skipped`, which the caller handles itself).
    func recoverStaging(
        _ dead: MountInfo, source: GlusterVolumeSource, options: GlusterMountOptions, volumeID: String,
        stagingPath: String, except skipped: String?, logger: Logger, context: RequestContext
    ) async throws(CSIError) -> MountInfo {
        // Collected before the dead mount goes: afterwards nothing links the binds to it but the
        // device number, which the new client will not share.
        let targets = publications(of: dead, stagingPath: stagingPath, in: try mountTable())
        try await unmountAll(stagingPath, logger: logger, context: context)
        // A dead client may still be a process (hung on its FUSE connection); it must not linger
        // in the unit the new one joins.
        try await removeClientUnit(ClientUnit(volumeID: volumeID, stagingPath: stagingPath), logger: logger)
        let fresh = try await mountGluster(
            source, options: options, volumeID: volumeID, stagingPath: stagingPath, logger: logger, context: context)
        logger.notice(
            "recovered a dead staging mount",
            metadata: ["publications": "\(targets.map(\.mountPoint).joined(separator: ","))"])
        await rebind(targets, to: stagingPath, except: skipped, logger: logger, context: context)
        return fresh
    }

    static func modeName(_ readOnly: Bool) -> String { readOnly ? "read-only" : "read-write" }
}
