import CSICore
import CSIProto
import Heketi
import Logging

/// The CSI Controller service: volumes are Heketi volumes.
///
/// Every operation is idempotent as the CSI spec requires; the contract of each is written next
/// to it. Heketi operations run under `OperationTracker`s so they outlive RPC deadlines without
/// ever being started twice.
public final class ControllerService: Sendable {
    static let gibibyte: Int64 = 1 << 30

    let configuration: ControllerConfiguration
    let connections: HeketiConnections
    let creates = OperationTracker<HeketiVolume>(verb: "creating")
    let deletes = OperationTracker<Bool>(verb: "deleting")
    let expansions = OperationTracker<HeketiVolume>(verb: "expanding")
    /// Delete and expand of one volume exclude each other while their RPCs run.
    let volumeLocks = KeyedTryLock<String>(noun: "volume")

    /// - Parameter makeClient: builds the Heketi client for an endpoint (the real one is
    ///   `HeketiClient` over libcurl; tests pass fakes).
    public init(
        configuration: ControllerConfiguration, makeClient: @escaping @Sendable (HeketiEndpoint) -> any HeketiAPI
    ) {
        self.configuration = configuration
        connections = HeketiConnections(configuration: configuration, makeClient: makeClient)
    }

    /// When the RPC stops waiting for a Heketi operation (which itself goes on).
    func waitDeadline(_ context: RequestContext) -> ContinuousClock.Instant {
        context.deadline ?? .now + configuration.defaultWait
    }

    /// Reads the default Heketi's volumes into the index in the background, so the first
    /// CreateVolume after a start does not wait for one request per existing volume. A failure is
    /// only logged: the first CreateVolume then builds the index itself. Returns the task (nil
    /// without a default Heketi), for tests.
    @discardableResult
    public func buildIndexInBackground(logger: Logger) -> Task<Void, Never>? {
        // Throws without a default Heketi: nothing to build.
        guard let endpoint = try? connections.endpoint(url: nil) else { return nil }
        let heketi = connections.client(for: endpoint)
        let index = connections.index(for: endpoint)
        return Task {
            let started = ContinuousClock.now
            do {
                try await index.catchUp(with: heketi)
                let count = await index.count
                logger.info(
                    "volume index built",
                    metadata: [
                        "heketi.url": "\(endpoint.url)", "volumes": "\(count)",
                        "ms": "\((ContinuousClock.now - started).milliseconds)",
                    ])
            } catch {
                logger.warning(
                    "cannot read Heketi's volumes yet; the first CreateVolume will",
                    metadata: ["heketi.url": "\(endpoint.url)", "error": "\(error)"])
            }
        }
    }

    /// What this controller supports. LIST_VOLUMES needs a default Heketi, because ListVolumes
    /// carries neither parameters nor secrets.
    public func capabilities(
        _ request: Csi_V1_ControllerGetCapabilitiesRequest
    )
        -> Csi_V1_ControllerGetCapabilitiesResponse
    {
        var supported: [Csi_V1_ControllerServiceCapability.RPC.TypeEnum] = [
            .createDeleteVolume, .expandVolume, .cloneVolume, .getCapacity, .getVolume, .singleNodeMultiWriter,
            .createDeleteSnapshot, .listSnapshots, .getSnapshot,
        ]
        if configuration.defaultHeketiURL != nil {
            supported.append(.listVolumes)
        }
        var response = Csi_V1_ControllerGetCapabilitiesResponse()
        response.capabilities = supported.map { type in
            var capability = Csi_V1_ControllerServiceCapability()
            capability.rpc.type = type
            return capability
        }
        return response
    }

    /// The CSI volume for a Heketi volume: ID, capacity, and what the node needs to mount it
    /// without Heketi (no secrets).
    func csiVolume(_ volume: HeketiVolume, recordedURL: String) throws(CSIError) -> Csi_V1_Volume {
        var csi = Csi_V1_Volume()
        csi.volumeID = try VolumeID(heketiID: volume.id, heketiURL: recordedURL).description
        csi.capacityBytes = Int64(volume.sizeGiB) * Self.gibibyte
        csi.volumeContext = VolumeContextKey.context(for: volume)
        return csi
    }
}

extension VolumeContextKey {
    /// The volume_context the controller writes for the node.
    static func context(for volume: HeketiVolume) -> [String: String] {
        var context = [
            glusterVolume: volume.name,
            glusterHosts: volume.hosts.joined(separator: ","),
            heketiVolumeID: volume.id,
            heketiClusterID: volume.clusterID,
        ]
        if volume.gid > 0 {
            context[gid] = String(volume.gid)
        }
        return context
    }
}
