import CSICore
import CSIProto
import Controller
import GRPCServer
import Logging
import Node
import SwiftProtobuf

/// Wires the CSI services this process serves to their gRPC method paths.
enum Routes {
    static func router(
        for configuration: DriverConfiguration, controller: ControllerService?, node: NodeService?
    ) -> Router {
        var router = Router()
        let identity = IdentityService(
            driverName: configuration.driverName, controllerEnabled: configuration.mode.servesController)
        router.registerInline("/csi.v1.Identity/GetPluginInfo") { request, _ in identity.pluginInfo(request) }
        router.registerInline("/csi.v1.Identity/GetPluginCapabilities") { request, _ in
            identity.pluginCapabilities(request)
        }
        // kubelet's livenessprobe sidecar calls Probe every few seconds: keep it out of debug logs.
        router.registerInline("/csi.v1.Identity/Probe", logLevel: .trace) { request, _ in identity.probe(request) }
        if let controller {
            register(controller, in: &router)
        }
        if let node {
            register(node, in: &router)
        }
        if configuration.testHooks {
            TestHooks.register(in: &router)
        }
        return router
    }

    /// Methods not registered (snapshots, publish/unpublish, modify) answer UNIMPLEMENTED, matching
    /// the capabilities the controller advertises.
    private static func register(_ controller: ControllerService, in router: inout Router) {
        let prefix = "/csi.v1.Controller/"
        router.registerInline(prefix + "ControllerGetCapabilities") { request, _ in controller.capabilities(request) }
        router.register(prefix + "CreateVolume", controller.createVolume)
        router.register(prefix + "DeleteVolume", controller.deleteVolume)
        router.register(prefix + "ControllerExpandVolume", controller.expandVolume)
        router.register(prefix + "ValidateVolumeCapabilities", controller.validateCapabilities)
        router.register(prefix + "ListVolumes", controller.listVolumes)
        router.register(prefix + "ControllerGetVolume", controller.getVolume)
        router.register(prefix + "GetCapacity", controller.capacity)
    }

    /// NodeExpandVolume is not registered: GlusterFS grows online on the servers, so the node has
    /// nothing to do and does not advertise EXPAND_VOLUME.
    private static func register(_ node: NodeService, in router: inout Router) {
        let prefix = "/csi.v1.Node/"
        router.register(prefix + "NodeStageVolume", node.stageVolume)
        router.register(prefix + "NodeUnstageVolume", node.unstageVolume)
        router.register(prefix + "NodePublishVolume", node.publishVolume)
        router.register(prefix + "NodeUnpublishVolume", node.unpublishVolume)
        // kubelet polls volume stats for every mounted volume: keep it out of debug logs.
        router.register(prefix + "NodeGetVolumeStats", logLevel: .trace, node.getVolumeStats)
        router.register(prefix + "NodeGetInfo", node.getInfo)
        router.register(prefix + "NodeGetCapabilities", node.getCapabilities)
    }
}

/// Methods that exist only when `--enable-test-hooks` is given, so the end-to-end tests can
/// exercise deadlines, cancellation and graceful shutdown against the real binary.
enum TestHooks {
    static let sleepPath = "/glusterfs.csi.test.v1.TestHooks/Sleep"

    static func register(in router: inout Router) {
        router.register(sleepPath) { (request: Google_Protobuf_Duration, context) -> Google_Protobuf_Empty in
            let duration = Duration.seconds(request.seconds) + .nanoseconds(Int64(request.nanos))
            do {
                try await Task.sleep(for: duration)
            } catch {
                context.logger.info("test hook sleep cancelled")
                throw error
            }
            context.logger.info("test hook sleep finished")
            return Google_Protobuf_Empty()
        }
    }
}
