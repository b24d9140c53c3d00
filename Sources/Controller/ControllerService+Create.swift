import CSICore
import CSIProto
import Heketi
import Logging

extension ControllerService {
    /// CreateVolume. Idempotent across retries, controller restarts and Heketi restarts: the Heketi
    /// name is derived from the CSI name, looked up before anything is created, and an operation
    /// still running from an earlier attempt is never started twice. Same name and compatible
    /// request → the existing volume; incompatible → ALREADY_EXISTS.
    public func createVolume(
        _ request: Csi_V1_CreateVolumeRequest, context: RequestContext
    ) async throws
        -> Csi_V1_CreateVolumeResponse
    {
        guard !request.name.isEmpty else { throw CSIError.missingField("name") }
        try VolumeCapabilities.check(request.volumeCapabilities)
        let parameters = try StorageClassParameters(request.parameters)
        for warning in parameters.warnings {
            context.logger.warning("storage class parameter", metadata: ["warning": "\(warning)"])
        }
        let sizeGiB = try Self.sizeGiB(
            for: request.hasCapacityRange ? request.capacityRange : nil, durability: parameters.durability)
        let (endpoint, recordedURL) = try connections.endpointForCreate(parameters, secrets: request.secrets)
        let name = HeketiVolumeName(
            csiName: request.name, prefix: parameters.volumeNamePrefix, pvcNamespace: parameters.pvcNamespace,
            pvcName: parameters.pvcName)
        var logger = context.logger
        logger[metadataKey: "heketi.name"] = "\(name)"
        logger[metadataKey: "heketi.url"] = "\(endpoint.url)"

        let source = try CloneSource(request, endpoint: endpoint, connections: connections)
        let heketi = connections.client(for: endpoint)
        let index = connections.index(for: endpoint)

        // A repeat of a request that already succeeded: one lookup, no scan.
        if let known = await index.volume(named: name.value) {
            // nil: deleted behind our back, so create it again.
            if let current = try await heketi.volumeIfExists(id: known.id) {
                await index.record(current)
                return try response(
                    current, request: request, sizeGiB: sizeGiB, parameters: parameters, recordedURL: recordedURL,
                    source: source)
            }
            await index.remove(id: known.id)
        }

        let volume = try await creates.run(
            key: endpoint.url + "|" + name.value, subject: "volume \(name) on Heketi \(endpoint.url)",
            deadline: waitDeadline(context)
        ) { [logger, indexMaxAge = configuration.indexMaxAge] in
            try await Self.provision(
                name: name, sizeGiB: sizeGiB, parameters: parameters, source: source, heketi: heketi, index: index,
                indexMaxAge: indexMaxAge, logger: logger)
        }
        return try response(
            volume, request: request, sizeGiB: sizeGiB, parameters: parameters, recordedURL: recordedURL,
            source: source)
    }

    /// Creates (or clones) the volume unless Heketi already has it under this name. Runs in the
    /// background task of the operation tracker.
    private static func provision(
        name: HeketiVolumeName, sizeGiB: Int, parameters: StorageClassParameters, source: CloneSource?,
        heketi: any HeketiAPI, index: VolumeIndex, indexMaxAge: Duration, logger: Logger
    ) async throws -> HeketiVolume {
        // Heketi refuses a create whose name is taken, so for a create the index need only be
        // current enough to keep GIDs unique. Heketi would clone twice under one name, so a clone
        // relies on the index being settled (checked below; see VolumeIndex).
        try await index.catchUp(with: heketi, ifOlderThan: indexMaxAge)
        if let existing = await index.volume(named: name.value) {
            logger.info("adopting existing heketi volume", metadata: ["heketi.id": "\(existing.id)"])
            return existing
        }
        if let source {
            try await requireSettled(index, before: "volume \(name)")
            try await checkKind(of: source, heketi: heketi, index: index)
        }
        do throws(HeketiError) {
            let volume: HeketiVolume
            if let source {
                volume = try await clone(source, as: name, sizeGiB: sizeGiB, heketi: heketi, index: index)
            } else {
                volume = try await create(name, sizeGiB: sizeGiB, parameters: parameters, heketi: heketi, index: index)
            }
            logger.info(
                "heketi volume created", metadata: ["heketi.id": "\(volume.id)", "size_gib": "\(volume.sizeGiB)"])
            return volume
        } catch {
            switch error {
            case .nameInUse:
                return try await adopt(name, heketi: heketi, index: index, logger: logger)
            case .notFound where source != nil:
                throw CSIError(.notFound, "source \(source!.description) does not exist in Heketi")
            default:
                throw error
            }
        }
    }

    /// A volume source must be a volume and a snapshot source a snapshot's clone (each is a Heketi
    /// volume; the name tells them apart): anything else is NOT_FOUND, as the other calls answer
    /// for an ID of the wrong kind. The index normally knows the source; if not, Heketi is asked.
    private static func checkKind(of source: CloneSource, heketi: any HeketiAPI, index: VolumeIndex) async throws {
        let volume = try await index.volume(id: source.volume.heketiID, askingIfUnknown: heketi)
        guard let volume, (HeketiSnapshotName(parsing: volume.name) != nil) == source.isSnapshot else {
            throw CSIError(.notFound, "source \(source.description) does not exist in Heketi")
        }
    }

    /// Heketi says the name is taken: a volume we have not seen yet (adopt it), or an operation
    /// still pending in Heketi, possibly left stale by a Heketi restart (ABORTED, retry later).
    private static func adopt(
        _ name: HeketiVolumeName, heketi: any HeketiAPI, index: VolumeIndex, logger: Logger
    ) async throws -> HeketiVolume {
        try await index.catchUp(with: heketi)
        if let existing = await index.volume(named: name.value) {
            logger.info("adopting heketi volume that already held the name", metadata: ["heketi.id": "\(existing.id)"])
            return existing
        }
        throw CSIError.aborted(
            "Heketi reserves the name \(name) for an operation that has not finished (or was left stale by a "
                + "Heketi restart); retry later, or clear stale operations with "
                + "POST /operations/pending/cleanup on Heketi")
    }

    private static func create(
        _ name: HeketiVolumeName, sizeGiB: Int, parameters: StorageClassParameters, heketi: any HeketiAPI,
        index: VolumeIndex
    ) async throws(HeketiError) -> HeketiVolume {
        guard let gid = await index.reserveGID(in: parameters.gidRange) else {
            throw .noSpace(
                "every GID from \(parameters.gidRange.lowerBound) to \(parameters.gidRange.upperBound) is in use; "
                    + "widen gidMin/gidMax in the StorageClass")
        }
        let request = VolumeCreateRequest(
            sizeGiB: sizeGiB, name: name.value, durability: parameters.durability, gid: gid,
            clusters: parameters.clusterIDs, glusterVolumeOptions: parameters.volumeOptions,
            snapshotFactor: parameters.snapshotFactor)
        do {
            let volume = try await heketi.createVolume(request)
            await index.record(volume)
            await index.release(gid: gid)
            return volume
        } catch {
            if error.leavesCreateOutcomeUnknown {
                await index.createOutcomeUnknown(gid: gid)
            } else {
                await index.release(gid: gid)
            }
            throw error
        }
    }

    private static func clone(
        _ source: CloneSource, as name: HeketiVolumeName, sizeGiB: Int, heketi: any HeketiAPI, index: VolumeIndex
    ) async throws(HeketiError) -> HeketiVolume {
        var volume: HeketiVolume
        do {
            volume = try await heketi.cloneVolume(id: source.volume.heketiID, name: name.value)
        } catch {
            if error.leavesCreateOutcomeUnknown { await index.cloneOutcomeUnknown() }
            throw error
        }
        await index.record(volume)
        if sizeGiB > volume.sizeGiB {
            volume = try await heketi.expandVolume(id: volume.id, deltaGiB: sizeGiB - volume.sizeGiB)
            await index.record(volume)
        }
        return volume
    }

    /// The answer for a volume that exists: checks that it fits this request (ALREADY_EXISTS if not).
    private func response(
        _ volume: HeketiVolume, request: Csi_V1_CreateVolumeRequest, sizeGiB: Int,
        parameters: StorageClassParameters, recordedURL: String, source: CloneSource?
    ) throws(CSIError) -> Csi_V1_CreateVolumeResponse {
        let capacity = Int64(volume.sizeGiB) * Self.gibibyte
        let limit = request.capacityRange.limitBytes
        let required = request.capacityRange.requiredBytes
        if capacity < required || (limit > 0 && capacity > limit) || volume.sizeGiB < sizeGiB && source == nil {
            throw CSIError(
                .alreadyExists,
                "volume \(request.name) already exists as Heketi volume \(volume.name) with \(volume.sizeGiB) GiB, "
                    + "which does not fit the requested capacity range; delete it or request a matching size")
        }
        if source == nil, volume.durability != parameters.durability {
            throw CSIError(
                .alreadyExists,
                "volume \(request.name) already exists as Heketi volume \(volume.name) with durability "
                    + "\(volume.durability), not the requested \(parameters.durability)")
        }
        var csi = try csiVolume(volume, recordedURL: recordedURL)
        if request.hasVolumeContentSource {
            csi.contentSource = request.volumeContentSource
        }
        var response = Csi_V1_CreateVolumeResponse()
        response.volume = csi
        return response
    }

    /// The size in whole GiB for a capacity range: at least 1 GiB (the default), at least D GiB for
    /// disperse D:R (Heketi's minimum), and within `limit_bytes`.
    static func sizeGiB(for range: Csi_V1_CapacityRange?, durability: Durability) throws(CSIError) -> Int {
        let required = range?.requiredBytes ?? 0
        let limit = range?.limitBytes ?? 0
        guard required >= 0, limit >= 0 else {
            throw CSIError(.invalidArgument, "capacity_range: required_bytes and limit_bytes must not be negative")
        }
        guard limit == 0 || required <= limit else {
            throw CSIError(
                .outOfRange, "capacity_range: required_bytes (\(required)) is larger than limit_bytes (\(limit))")
        }
        var size = Int((required + gibibyte - 1) / gibibyte)
        let minimum: Int
        if case .disperse(let data, _) = durability { minimum = data } else { minimum = 1 }
        size = max(size, minimum)
        guard limit == 0 || Int64(size) * gibibyte <= limit else {
            throw CSIError(
                .outOfRange,
                "capacity_range: GlusterFS volumes are sized in whole GiB (at least \(minimum) GiB for this "
                    + "volumetype), so \(size) GiB exceeds limit_bytes (\(limit)); raise the limit")
        }
        return size
    }
}

/// The source of a CreateVolume that clones a volume or restores a snapshot: either way, a Heketi
/// clone of a Heketi volume.
struct CloneSource: Sendable, CustomStringConvertible {
    /// The Heketi volume to clone (a snapshot's clone, for a restore).
    let volume: VolumeID
    let isSnapshot: Bool

    var description: String { isSnapshot ? "snapshot \(volume.heketiID)" : "volume \(volume)" }

    /// Nil when the request has no content source. Only volume sources on the same Heketi work.
    init?(
        _ request: Csi_V1_CreateVolumeRequest, endpoint: HeketiEndpoint, connections: HeketiConnections
    )
        throws(CSIError)
    {
        guard request.hasVolumeContentSource else { return nil }
        switch request.volumeContentSource.type {
        case .volume(let source):
            guard let id = VolumeID(parsing: source.volumeID) else {
                throw CSIError(.notFound, "source volume '\(source.volumeID)' does not exist")
            }
            let sourceEndpoint = try connections.endpoint(for: id, secrets: [:])
            guard sourceEndpoint.url == endpoint.url else {
                throw CSIError(
                    .invalidArgument,
                    "source volume \(source.volumeID) is on Heketi \(sourceEndpoint.url), but the new volume would be "
                        + "on \(endpoint.url); Heketi can only clone within one server")
            }
            volume = id
            isSnapshot = false
        case .snapshot(let source):
            guard let id = SnapshotID(parsing: source.snapshotID) else {
                throw CSIError(.notFound, "source snapshot '\(source.snapshotID)' does not exist")
            }
            let sourceEndpoint = try connections.endpoint(for: id.asVolumeID, secrets: [:])
            guard sourceEndpoint.url == endpoint.url else {
                throw CSIError(
                    .invalidArgument,
                    "snapshot \(source.snapshotID) is on Heketi \(sourceEndpoint.url), but the new volume would be "
                        + "on \(endpoint.url); Heketi can only restore (clone) within one server")
            }
            volume = id.asVolumeID
            isSnapshot = true
        case nil:
            throw CSIError(
                .invalidArgument,
                "volume_content_source has no type; set volume.volume_id or snapshot.snapshot_id")
        }
    }
}

extension HeketiError {
    /// Whether a create that failed this way may still have made (or still make) the volume. Only
    /// refusals Heketi answers before doing anything are certain.
    var leavesCreateOutcomeUnknown: Bool {
        switch self {
        case .invalidRequest, .unauthorized, .nameInUse, .noSpace, .tooManyBricks, .operationPending, .throttled,
            .notFound, .clientUnusable:
            false
        case .operationFailed, .serverError, .unreachable, .timedOut:
            true
        }
    }
}
