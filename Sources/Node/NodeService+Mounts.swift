import CSICore
import Logging

/// Mount steps shared by the RPCs: mounting a Gluster volume with its client log tail on failure,
/// unmounting whatever is at a path, and re-binding targets after a dead client was replaced.
extension NodeService {
    /// The FUSE file-system type of a GlusterFS client mount, as the mount table shows it.
    static let glusterFSType = "fuse.glusterfs"
    /// How many stacked mounts one unmount call peels off a path before giving up.
    static let maxStackedMounts = 8

    /// The topmost mount at `path`, as a CSI error if the table cannot be read.
    func mountPoint(at path: String) throws(CSIError) -> MountInfo? {
        do throws(MountError) {
            return try mounter.mountPoint(at: path)
        } catch {
            throw error.csiError
        }
    }

    /// The whole mount table, as a CSI error if it cannot be read.
    func mountTable() throws(CSIError) -> [MountInfo] {
        do throws(MountError) {
            return try mounter.mountTable()
        } catch {
            throw error.csiError
        }
    }

    /// Mounts `source` on `stagingPath` (which must exist and be unmounted) and returns the new
    /// mount. Retries once without `auto_unmount` when the client rejects it. On failure nothing is
    /// left mounted and the error ends with the client log's new lines.
    func mountGluster(
        _ source: GlusterVolumeSource, options: GlusterMountOptions, volumeID: String, stagingPath: String,
        logger: Logger, context: RequestContext
    ) async throws(CSIError) -> MountInfo {
        var log = ClientLog(directory: logDirectory, glusterVolume: source.volume, volumeID: volumeID)
        do throws(FileIOError) {
            try FileIO.makeDirectories(logDirectory)
        } catch {
            throw CSIError(.internal, "cannot create the client log directory: \(error); check the node's --log-dir")
        }
        log.markStart()
        let mountSource = source.mountSource(nodeID: nodeID)
        let backups = source.backupHosts(nodeID: nodeID)
        let unit = ClientUnit(volumeID: volumeID, stagingPath: stagingPath)
        var autoUnmount = true
        while true {
            let mountOptions = options.mountOptions(logFile: log.path, backupHosts: backups, autoUnmount: autoUnmount)
            let timeout = try budget(timeouts.mount, context)
            do throws(MountError) {
                try await mounter.mount(
                    source: mountSource, target: stagingPath, fsType: "glusterfs", options: mountOptions,
                    timeout: timeout, placement: ClientPlacementRequest(placement, unit: unit))
                guard let mounted = try mounter.mountPoint(at: stagingPath) else {
                    throw MountError(kind: .notMountedAfterSuccess, command: ["mount", stagingPath])
                }
                logger.info(
                    "mounted Gluster volume",
                    metadata: [
                        "source": "\(mountSource)", "backup_hosts": "\(backups.joined(separator: ","))",
                        "placement": "\(placement.kind.rawValue)", "client_unit": "\(unit.name)",
                    ])
                return mounted
            } catch {
                if autoUnmount && Self.rejectsAutoUnmount(error.output + "\n" + log.tail().joined(separator: "\n")) {
                    logger.notice("the glusterfs client rejected auto_unmount; mounting without it")
                    autoUnmount = false
                    continue
                }
                // A killed mount may still have got as far as mounting: take it off again. The
                // caller's deadline may be spent by now (a timed-out mount used it up), so the
                // cleanup gets its own bounded budget instead of being skipped.
                var cleanup = context
                cleanup.deadline = nil
                if (try? mountPoint(at: stagingPath)) != nil {
                    try? await unmountAll(stagingPath, logger: logger, context: cleanup)
                }
                // Whatever the failed attempt left in the unit (a client still trying to reach a
                // server) goes too, so the next attempt starts clean.
                try? await removeClientUnit(unit, logger: logger)
                let csiError = error.csiError
                let tail = log.tail()
                throw CSIError(
                    Self.volumeIsMissing(tail.joined(separator: "\n")) ? .notFound : csiError.code,
                    log.append(
                        tail,
                        to: "cannot mount Gluster volume \(source.volume) from \(mountSource) on \(stagingPath): "
                            + csiError.message))
            }
        }
    }

    /// Whether the glusterfs client log says the servers do not know the volume: they answered but
    /// had no volfile for it ("failed to fetch volume file"), which makes the mount NOT_FOUND.
    static func volumeIsMissing(_ clientLog: String) -> Bool {
        clientLog.contains("failed to fetch volume file")
    }

    /// Whether mount output says the client does not know `auto_unmount` ("Invalid option
    /// auto_unmount" from older mount.glusterfs, "unknown option" from older fuse).
    static func rejectsAutoUnmount(_ output: String) -> Bool {
        output.split(separator: "\n").contains { line in
            let lower = line.lowercased()
            return lower.contains("auto_unmount")
                && (lower.contains("invalid") || lower.contains("unknown") || lower.contains("not supported"))
        }
    }

    /// Unmounts everything stacked at `path` (normal, then forced, then lazy, each bounded), so it
    /// works on dead FUSE clients and unreachable servers. Nothing mounted is fine.
    func unmountAll(_ path: String, logger: Logger, context: RequestContext) async throws(CSIError) {
        for _ in 0..<Self.maxStackedMounts {
            guard let mounted = try mountPoint(at: path) else { return }
            // Only what this driver mounts: a glusterfs client, or a bind mount of one (which the
            // table shows with the same type). Another driver's volume, a host file system or
            // anything a client names by mistake stays as it is.
            guard mounted.fsType == Self.glusterFSType else {
                throw CSIError(
                    .failedPrecondition,
                    "\(path) has \(mounted.fsType) '\(printable(mounted.source))' mounted, which this driver did not "
                        + "mount; it was left alone: unmount it yourself if it should not be there")
            }
            let outcome: UnmountOutcome
            let timeout = try budget(timeouts.unmount, context)
            do throws(MountError) {
                outcome = try await mounter.unmount(target: path, timeout: timeout)
            } catch {
                let csiError = error.csiError
                throw CSIError(csiError.code, "cannot unmount \(path): \(csiError.message)")
            }
            switch outcome {
            case .forced, .lazy:
                logger.warning(
                    "unmount needed escalation",
                    metadata: ["path": "\(path)", "outcome": "\(outcome)", "source": "\(mounted.source)"])
            case .unmounted, .notMounted:
                logger.debug("unmounted", metadata: ["path": "\(path)", "source": "\(mounted.source)"])
            }
        }
        if try mountPoint(at: path) != nil {
            throw CSIError(
                .internal,
                "\(path) still has mounts after \(Self.maxStackedMounts) unmounts; inspect /proc/self/mountinfo on the node"
            )
        }
    }

    /// Ends what is left of the volume's client unit and removes the unit (a no-op for placement
    /// none). Called once nothing is mounted through the unit's client any more.
    func removeClientUnit(_ unit: ClientUnit, logger: Logger) async throws(CSIError) {
        let placement = placement
        let grace = timeouts.clientExit
        let outcome = await BlockingThread.run { () -> Result<Void, PlacementError> in
            do throws(PlacementError) {
                return .success(try placement.remove(unit, grace: grace))
            } catch {
                return .failure(error)
            }
        }
        switch outcome {
        case .success:
            logger.debug("removed the client's unit", metadata: ["client_unit": "\(unit.name)"])
        case .failure(let error):
            throw error.csiError
        }
    }

    /// The bind mounts of `mount` elsewhere than at `stagingPath`: the volume's publications.
    func publications(of mount: MountInfo, stagingPath: String, in table: [MountInfo]) -> [MountInfo] {
        table.filter { $0.sharesFilesystem(with: mount) && $0.mountPoint != stagingPath }
    }

    /// After a dead staging client was replaced by `fresh`, makes each former publication a bind
    /// of the new client again (keeping read-only ones read-only), so containers that restart in
    /// a running pod get a working volume without the pod being recreated. Best effort: a target
    /// that cannot be fixed is logged and left for its own NodePublish.
    func rebind(
        _ targets: [MountInfo], to stagingPath: String, except skipped: String? = nil, logger: Logger,
        context: RequestContext
    ) async {
        for target in targets where target.mountPoint != skipped {
            do throws(CSIError) {
                try await unmountAll(target.mountPoint, logger: logger, context: context)
                try await bindMount(stagingPath, at: target.mountPoint, readOnly: target.isReadOnly, context: context)
                logger.notice(
                    "re-bound a publication to the recovered client", metadata: ["target": "\(target.mountPoint)"])
            } catch {
                logger.warning(
                    "could not re-bind a publication to the recovered client",
                    metadata: ["target": "\(target.mountPoint)", "error": "\(error.message)"])
            }
        }
    }

    /// Bind-mounts `stagingPath` at `target` (created if missing), read-only if asked. If the
    /// read-only step fails the bind is undone: a writable mount must never pass for a read-only one.
    func bindMount(
        _ stagingPath: String, at target: String, readOnly: Bool, context: RequestContext
    )
        async throws(CSIError)
    {
        do throws(FileIOError) {
            try FileIO.makeDirectories(target)
        } catch {
            throw CSIError(.internal, "cannot create target_path: \(error)")
        }
        let bindTimeout = try budget(timeouts.bind, context)
        do throws(MountError) {
            try await mounter.bindMount(source: stagingPath, target: target, timeout: bindTimeout)
        } catch {
            throw CSIError(error.csiError.code, "cannot bind-mount the volume at \(target): \(error.csiError.message)")
        }
        guard readOnly else { return }
        let remountTimeout = try budget(timeouts.bind, context)
        do throws(MountError) {
            try await mounter.remountReadOnly(target: target, timeout: remountTimeout)
        } catch {
            _ = try? await mounter.unmount(target: target, timeout: timeouts.unmount)
            throw CSIError(error.csiError.code, "cannot make \(target) read-only: \(error.csiError.message)")
        }
    }
}
