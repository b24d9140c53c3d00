import CSICore
import CSIProto
import Controller
import GRPCServer
import Logging
import SwiftProtobuf

/// Wires the CSI services this process serves to their gRPC method paths.
enum Routes {
    static func router(for configuration: DriverConfiguration) -> Router {
        var router = Router()
        let identity = IdentityService(
            driverName: configuration.driverName, controllerEnabled: configuration.mode.servesController)
        router.registerInline("/csi.v1.Identity/GetPluginInfo") { request, _ in identity.pluginInfo(request) }
        router.registerInline("/csi.v1.Identity/GetPluginCapabilities") { request, _ in
            identity.pluginCapabilities(request)
        }
        // kubelet's livenessprobe sidecar calls Probe every few seconds: keep it out of debug logs.
        router.registerInline("/csi.v1.Identity/Probe", logLevel: .trace) { request, _ in identity.probe(request) }
        if configuration.testHooks {
            TestHooks.register(in: &router)
        }
        return router
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
