import CSICore
import CSIProto
import Controller
import GRPCServer
import Logging
import Node
import SwiftProtobuf

/// Wires the CSI services this process serves to their gRPC method paths.
///
/// Each service's methods that reach a backend count against its `CallLimit`
/// (`--max-controller-calls`, `--max-node-calls`). Identity, the capability calls and NodeGetInfo
/// are never queued or refused: the CO needs them to tell a busy driver from a dead one.
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
            let limit = CallLimit(
                service: "controller", setting: "--max-controller-calls", maxRunning: configuration.maxControllerCalls)
            register(controller, limit: limit, in: &router)
        }
        if let node {
            let limit = CallLimit(
                service: "node", setting: "--max-node-calls", maxRunning: configuration.maxNodeCalls)
            register(node, limit: limit, in: &router)
        }
        if configuration.testHooks {
            TestHooks.register(in: &router)
        }
        return router
    }

    /// Methods not registered (publish/unpublish, modify) answer UNIMPLEMENTED, matching
    /// the capabilities the controller advertises.
    ///
    /// A call refused by the limit is answered ABORTED by the methods whose CSI spec section lists
    /// ABORTED ("operation pending for volume") and whose sidecars retry it as "still in progress".
    /// RESOURCE_EXHAUSTED would be wrong there: for CreateVolume the spec gives it the meaning
    /// "cannot provision in accessible_topology", and csi-provisioner then treats provisioning as
    /// finished (not in progress, so a volume an earlier attempt is still creating may be orphaned
    /// when the claim goes away) or, for a claim waiting for its first consumer, asks the scheduler
    /// to move the pod to another node. The read-only methods, for which the spec gives neither
    /// code a meaning, answer RESOURCE_EXHAUSTED, gRPC's own "out of a resource, retry later".
    private static func register(_ controller: ControllerService, limit: CallLimit, in router: inout Router) {
        let prefix = "/csi.v1.Controller/"
        router.registerInline(prefix + "ControllerGetCapabilities") { request, _ in controller.capabilities(request) }
        router.register(prefix + "CreateVolume", limit: limit, busyCode: .aborted, controller.createVolume)
        router.register(prefix + "DeleteVolume", limit: limit, busyCode: .aborted, controller.deleteVolume)
        router.register(prefix + "ControllerExpandVolume", limit: limit, busyCode: .aborted, controller.expandVolume)
        router.register(prefix + "ValidateVolumeCapabilities", limit: limit, controller.validateCapabilities)
        router.register(prefix + "ListVolumes", limit: limit, controller.listVolumes)
        router.register(prefix + "ControllerGetVolume", limit: limit, controller.getVolume)
        router.register(prefix + "GetCapacity", limit: limit, controller.capacity)
        router.register(prefix + "CreateSnapshot", limit: limit, busyCode: .aborted, controller.createSnapshot)
        router.register(prefix + "DeleteSnapshot", limit: limit, busyCode: .aborted, controller.deleteSnapshot)
        router.register(prefix + "ListSnapshots", limit: limit, controller.listSnapshots)
        router.register(prefix + "GetSnapshot", limit: limit, controller.getSnapshot)
    }

    /// NodeExpandVolume is not registered: GlusterFS grows online on the servers, so the node has
    /// nothing to do and does not advertise EXPAND_VOLUME.
    ///
    /// Busy codes as for the controller: ABORTED for the four volume operations (the spec's
    /// "operation pending for volume"; kubelet retries it and keeps the mount state uncertain),
    /// RESOURCE_EXHAUSTED for NodeGetVolumeStats (kubelet logs it and asks again at its next poll).
    /// NodeGetInfo and NodeGetCapabilities answer from memory (kubelet needs them to register the
    /// driver): they are not counted. They run as tasks only because the node service declares them
    /// async.
    private static func register(_ node: NodeService, limit: CallLimit, in router: inout Router) {
        let prefix = "/csi.v1.Node/"
        router.register(prefix + "NodeStageVolume", limit: limit, busyCode: .aborted, node.stageVolume)
        router.register(prefix + "NodeUnstageVolume", limit: limit, busyCode: .aborted, node.unstageVolume)
        router.register(prefix + "NodePublishVolume", limit: limit, busyCode: .aborted, node.publishVolume)
        router.register(prefix + "NodeUnpublishVolume", limit: limit, busyCode: .aborted, node.unpublishVolume)
        // kubelet polls volume stats for every mounted volume: keep it out of debug logs.
        router.register(prefix + "NodeGetVolumeStats", logLevel: .trace, limit: limit, node.getVolumeStats)
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
