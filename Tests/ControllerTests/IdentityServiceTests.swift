import CSIProto
import Controller
import Testing

@Suite struct IdentityServiceTests {
    @Test func pluginInfoNamesTheDriverAndItsVersion() {
        let info = IdentityService(driverName: "gluster.example", controllerEnabled: true)
            .pluginInfo(Csi_V1_GetPluginInfoRequest())
        #expect(info.name == "gluster.example")
        #expect(info.vendorVersion == "0.1.0")
    }

    @Test func controllerProcessesAdvertiseTheControllerAndOnlineExpansion() {
        let capabilities = IdentityService(driverName: "d", controllerEnabled: true)
            .pluginCapabilities(Csi_V1_GetPluginCapabilitiesRequest()).capabilities
        #expect(capabilities.map(\.service.type) == [.controllerService, .unknown])
        #expect(capabilities.map(\.volumeExpansion.type) == [.unknown, .online])
    }

    @Test func nodeOnlyProcessesAdvertiseNothing() {
        let capabilities = IdentityService(driverName: "d", controllerEnabled: false)
            .pluginCapabilities(Csi_V1_GetPluginCapabilitiesRequest()).capabilities
        #expect(capabilities.isEmpty)
    }

    @Test func probeReportsTheHealthCheck() {
        #expect(IdentityService(driverName: "d", controllerEnabled: true).probe(.init()).ready.value)
        let unhealthy = IdentityService(driverName: "d", controllerEnabled: true, isHealthy: { false })
        #expect(unhealthy.probe(.init()).hasReady)
        #expect(!unhealthy.probe(.init()).ready.value)
    }
}
