import CSICore
import Testing

@testable import GRPCServer

@Suite struct EndpointTests {
    @Test(arguments: [
        ("unix:///csi/csi.sock", "/csi/csi.sock"),
        ("unix:/csi/csi.sock", "/csi/csi.sock"),
        (
            "/var/lib/kubelet/plugins/glusterfs.csi.heketi.io/csi.sock",
            "/var/lib/kubelet/plugins/glusterfs.csi.heketi.io/csi.sock"
        ),
    ])
    func acceptedForms(_ text: String, _ path: String) throws {
        let endpoint = try Endpoint(parsing: text)
        #expect(endpoint.path == path)
        #expect(endpoint.grpcAddress == "unix:" + path)
    }

    @Test(arguments: [
        ("tcp://127.0.0.1:9000", "only Unix sockets"),
        ("dns:///host", "only Unix sockets"),
        ("csi.sock", "must be absolute"),
        ("unix://relative/csi.sock", "must be absolute"),
        ("/" + String(repeating: "x", count: 120), "shorter than 108 bytes"),
    ])
    func rejectedForms(_ text: String, _ reason: String) {
        #expect {
            _ = try Endpoint(parsing: text)
        } throws: { error in
            (error as! CSIError).code == .invalidArgument && (error as! CSIError).message.contains(reason)
        }
    }
}
