import CSICore
import Controller
import Heketi
import Node
import Testing

@testable import GRPCServer
@testable import glusterfs_csi

@Suite struct RoutesTests {
    private func router(maxControllerCalls: String) throws -> Router {
        var flags = DriverConfiguration.Flags()
        flags.mode = "controller"
        flags.maxControllerCalls = maxControllerCalls
        let configuration = try DriverConfiguration(flags: flags, environment: [:], hostName: { "node-7" })
        let controller = ControllerService(
            configuration: ControllerConfiguration(defaultHeketiURL: nil, defaultUser: "admin", defaultKey: nil),
            makeClient: { _ in fatalError("no Heketi request in this test") })
        return Routes.router(for: configuration, controller: controller, node: nil)
    }

    /// The methods that reach Heketi count against --max-controller-calls; volume operations are
    /// refused ABORTED (what csi-provisioner and csi-resizer retry as "in progress"), the read-only
    /// methods RESOURCE_EXHAUSTED.
    @Test(arguments: [
        ("CreateVolume", StatusCode.aborted), ("DeleteVolume", .aborted), ("ControllerExpandVolume", .aborted),
        ("ValidateVolumeCapabilities", .resourceExhausted), ("ListVolumes", .resourceExhausted),
        ("ControllerGetVolume", .resourceExhausted), ("GetCapacity", .resourceExhausted),
        ("CreateSnapshot", .aborted), ("DeleteSnapshot", .aborted), ("ListSnapshots", .resourceExhausted),
        ("GetSnapshot", .resourceExhausted),
    ])
    func controllerMethodsAreLimited(_ method: String, _ busyCode: StatusCode) throws {
        let route = try #require(try router(maxControllerCalls: "5").route(for: "/csi.v1.Controller/" + method))
        let limit = try #require(route.limit)
        #expect(limit.maxRunning == 5)
        #expect(limit.setting == "--max-controller-calls")
        #expect(limit.service == "controller")
        #expect(route.busyCode == busyCode)
    }

    /// A CO tells a busy driver from a dead one by these: never queued or refused.
    @Test(arguments: [
        "/csi.v1.Identity/Probe", "/csi.v1.Identity/GetPluginInfo", "/csi.v1.Identity/GetPluginCapabilities",
        "/csi.v1.Controller/ControllerGetCapabilities",
    ])
    func identityAndCapabilityCallsAreInlineAndUnlimited(_ path: String) throws {
        let route = try #require(try router(maxControllerCalls: "1").route(for: path))
        #expect(route.isInline)
        #expect(route.limit == nil)
    }

    /// The node's volume operations and stats count against --max-node-calls; NodeGetInfo and
    /// NodeGetCapabilities (kubelet registers the driver with them) do not.
    @Test(arguments: [
        ("NodeStageVolume", StatusCode?.some(.aborted)), ("NodeUnstageVolume", .aborted),
        ("NodePublishVolume", .aborted), ("NodeUnpublishVolume", .aborted),
        ("NodeGetVolumeStats", .resourceExhausted), ("NodeGetInfo", nil), ("NodeGetCapabilities", nil),
    ])
    func nodeMethods(_ method: String, _ busyCode: StatusCode?) throws {
        var flags = DriverConfiguration.Flags()
        flags.mode = "node"
        flags.maxNodeCalls = "7"
        let configuration = try DriverConfiguration(flags: flags, environment: [:], hostName: { "node-7" })
        let node = try NodeService(
            nodeID: "node-7", mounter: SystemMounter(), kubeletDirectory: KubeletDirectory("/tmp"),
            logDirectory: "/tmp/glusterfs-csi-logs")
        let router = Routes.router(for: configuration, controller: nil, node: node)
        let route = try #require(router.route(for: "/csi.v1.Node/" + method))
        if let busyCode {
            let limit = try #require(route.limit)
            #expect(limit.maxRunning == 7 && limit.setting == "--max-node-calls")
            #expect(route.busyCode == busyCode)
        } else {
            #expect(route.limit == nil)
        }
    }

    @Test func allControllerMethodsShareOneLimit() throws {
        let router = try router(maxControllerCalls: "64")
        let create = try #require(router.route(for: "/csi.v1.Controller/CreateVolume")?.limit)
        let capacity = try #require(router.route(for: "/csi.v1.Controller/GetCapacity")?.limit)
        #expect(create === capacity)
    }
}
