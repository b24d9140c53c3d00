import CSICore
import CSIProto
import Heketi
import SwiftProtobuf

extension ControllerService {
    /// ValidateVolumeCapabilities: NOT_FOUND for an unknown volume; otherwise `confirmed` echoes
    /// the request when every capability is one GlusterFS honours, and is left empty with a
    /// message saying why when one is not.
    public func validateCapabilities(
        _ request: Csi_V1_ValidateVolumeCapabilitiesRequest, context: RequestContext
    ) async throws -> Csi_V1_ValidateVolumeCapabilitiesResponse {
        guard !request.volumeID.isEmpty else { throw CSIError.missingField("volume_id") }
        guard !request.volumeCapabilities.isEmpty else { throw CSIError.missingField("volume_capabilities") }
        guard let id = VolumeID(parsing: request.volumeID) else {
            throw CSIError(.notFound, "volume '\(request.volumeID)' does not exist")
        }
        let endpoint = try connections.endpoint(for: id, secrets: request.secrets)
        _ = try await existingVolume(id, heketi: connections.client(for: endpoint))
        var response = Csi_V1_ValidateVolumeCapabilitiesResponse()
        do {
            try VolumeCapabilities.check(request.volumeCapabilities)
            _ = try StorageClassParameters(request.parameters)  // only parameters we understand are confirmed
            response.confirmed.volumeContext = request.volumeContext
            response.confirmed.volumeCapabilities = request.volumeCapabilities
            response.confirmed.parameters = request.parameters
        } catch {
            response.message = error.message
        }
        return response
    }

    /// ControllerGetVolume: the volume as Heketi describes it now; NOT_FOUND when it is gone.
    public func getVolume(
        _ request: Csi_V1_ControllerGetVolumeRequest, context: RequestContext
    ) async throws
        -> Csi_V1_ControllerGetVolumeResponse
    {
        guard !request.volumeID.isEmpty else { throw CSIError.missingField("volume_id") }
        guard let id = VolumeID(parsing: request.volumeID) else {
            throw CSIError(.notFound, "volume '\(request.volumeID)' does not exist")
        }
        let endpoint = try connections.endpoint(for: id, secrets: [:])
        let volume = try await existingVolume(id, heketi: connections.client(for: endpoint))
        var response = Csi_V1_ControllerGetVolumeResponse()
        response.volume = try csiVolume(volume, recordedURL: id.heketiURL)
        response.status = Csi_V1_ControllerGetVolumeResponse.VolumeStatus()
        return response
    }

    /// ListVolumes: the volumes of the default Heketi in a stable order (by Heketi ID). The token
    /// is the offset of the next entry; one this driver did not issue → ABORTED, as the spec says.
    public func listVolumes(
        _ request: Csi_V1_ListVolumesRequest, context: RequestContext
    ) async throws
        -> Csi_V1_ListVolumesResponse
    {
        guard configuration.defaultHeketiURL != nil else {
            // Not advertised without a default Heketi: ListVolumes carries no parameters or secrets.
            throw CSIError(
                .unimplemented, "ListVolumes needs the controller's default Heketi; start it with --heketi-url")
        }
        let page = try ListPage(startingToken: request.startingToken, maxEntries: request.maxEntries)
        let endpoint = try connections.endpoint(url: nil)
        let index = connections.index(for: endpoint)
        try await index.catchUp(with: connections.client(for: endpoint))
        // Snapshots are Heketi volumes too; ListSnapshots lists them.
        let volumes = await index.allVolumes().filter { HeketiSnapshotName(parsing: $0.name) == nil }
        let (range, nextToken) = try page.entries(of: volumes.count)
        var response = Csi_V1_ListVolumesResponse()
        response.entries = try volumes[range].map { volume throws(CSIError) in
            var entry = Csi_V1_ListVolumesResponse.Entry()
            entry.volume = try csiVolume(volume, recordedURL: endpoint.url)
            return entry
        }
        response.nextToken = nextToken
        return response
    }

    /// GetCapacity: free space of the online devices of online nodes in the StorageClass's
    /// clusters (all clusters when it names none), divided by what the volumetype costs:
    /// replicate:N keeps N copies, disperse:D:R spends (D+R)/D, none 1. Heketi's own overhead
    /// (~0.8 % per brick) and the spread of bricks over nodes make the true maximum a little lower.
    public func capacity(
        _ request: Csi_V1_GetCapacityRequest, context: RequestContext
    ) async throws
        -> Csi_V1_GetCapacityResponse
    {
        if !request.volumeCapabilities.isEmpty {
            do {
                try VolumeCapabilities.check(request.volumeCapabilities)
            } catch {
                return Csi_V1_GetCapacityResponse()  // no capacity for volumes we cannot make
            }
        }
        let parameters = try StorageClassParameters(request.parameters)
        let endpoint = try connections.endpoint(url: parameters.restURL)
        let heketi = connections.client(for: endpoint)
        let clusters: [String]
        if parameters.clusterIDs.isEmpty {
            clusters = try await heketi.clusterIDs()
        } else {
            clusters = parameters.clusterIDs
        }
        var freeKiB = 0
        for clusterID in clusters {
            freeKiB += try await Self.freeKiB(inCluster: clusterID, heketi: heketi)
        }
        let usable: Int
        switch parameters.durability {
        case .replicate(let copies): usable = freeKiB / copies
        case .disperse(let data, let redundancy): usable = freeKiB / (data + redundancy) * data
        case .none: usable = freeKiB
        }
        var response = Csi_V1_GetCapacityResponse()
        response.availableCapacity = Int64(usable) * 1024
        var minimum = Google_Protobuf_Int64Value()
        if case .disperse(let data, _) = parameters.durability {
            minimum.value = Int64(data) * Self.gibibyte
        } else {
            minimum.value = Self.gibibyte
        }
        response.minimumVolumeSize = minimum
        return response
    }

    /// Free KiB on the online devices of the online nodes of one cluster.
    private static func freeKiB(inCluster clusterID: String, heketi: any HeketiAPI) async throws -> Int {
        guard let cluster = try await heketi.clusterIfExists(id: clusterID) else {
            throw CSIError(.invalidArgument, "parameter clusterid: Heketi has no cluster \(clusterID)")
        }
        var free = 0
        for nodeID in cluster.nodeIDs {
            let node = try await heketi.node(id: nodeID)
            if node.online {
                free += node.devices.filter(\.online).reduce(0) { $0 + $1.freeKiB }
            }
        }
        return free
    }
}
