import CSICore
import CSIProto
import SwiftProtobuf

/// The CSI Identity service: who this driver is and what it can do.
///
/// Every method is a pure answer from configuration, so the server runs them inline without a
/// thread hop; none may block.
public struct IdentityService: Sendable {
    public let driverName: String
    /// Whether this process serves the Controller service (controller or all mode).
    public let controllerEnabled: Bool
    /// Whether the driver itself is able to serve. It deliberately ignores Heketi: a storage
    /// backend outage must not make kubelet's liveness probe restart a healthy driver.
    public let isHealthy: @Sendable () -> Bool

    public init(driverName: String, controllerEnabled: Bool, isHealthy: @escaping @Sendable () -> Bool = { true }) {
        self.driverName = driverName
        self.controllerEnabled = controllerEnabled
        self.isHealthy = isHealthy
    }

    /// Name and version; no request fields to validate.
    public func pluginInfo(_ request: Csi_V1_GetPluginInfoRequest) -> Csi_V1_GetPluginInfoResponse {
        var response = Csi_V1_GetPluginInfoResponse()
        response.name = driverName
        response.vendorVersion = DriverInfo.version
        return response
    }

    /// The controller service and online expansion, only when this process serves the controller.
    /// Node-only processes advertise nothing: the node service is implied by the spec.
    public func pluginCapabilities(
        _ request: Csi_V1_GetPluginCapabilitiesRequest
    )
        -> Csi_V1_GetPluginCapabilitiesResponse
    {
        var response = Csi_V1_GetPluginCapabilitiesResponse()
        guard controllerEnabled else { return response }
        var service = Csi_V1_PluginCapability()
        service.service.type = .controllerService
        var expansion = Csi_V1_PluginCapability()
        expansion.volumeExpansion.type = .online
        response.capabilities = [service, expansion]
        return response
    }

    /// Ready when the driver is healthy. Idempotent and side-effect free.
    public func probe(_ request: Csi_V1_ProbeRequest) -> Csi_V1_ProbeResponse {
        var response = Csi_V1_ProbeResponse()
        response.ready = Google_Protobuf_BoolValue(isHealthy())
        return response
    }
}
