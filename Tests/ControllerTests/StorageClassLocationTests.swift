import CSICore
import Controller
import Testing

/// `resturl` and `clusterid` read as CreateVolume reads them, for `glusterfs-csi migrate`.
@Suite struct StorageClassLocationTests {
    @Test func readsURLAndClustersCaseInsensitively() throws {
        let location = try StorageClassLocation(parameters: [
            "restURL": "http://heketi.example.com:8080/", "ClusterID": "630372cc, 8d4c2b1a", "volumetype": "raid5",
        ])
        // Normalized as the volume ID records it; the other parameters are not looked at.
        #expect(location.restURL == "http://heketi.example.com:8080")
        #expect(location.clusterIDs == ["630372cc", "8d4c2b1a"])
    }

    @Test func withoutEither() throws {
        let location = try StorageClassLocation(parameters: ["gidMin": "40000"])
        #expect(location.restURL == nil && location.clusterIDs.isEmpty)
    }

    @Test(arguments: [
        (["resturl": "heketi:8080"], "parameter resturl: expected an http:// or https:// URL"),
        (["clusterid": "not-hex"], "parameter clusterid: expected a comma-separated list of Heketi cluster IDs"),
        (["ClusterId": "zz"], "parameter ClusterId: expected"),
        (
            ["resturl": "http://a:1", "RESTURL": "http://b:1"],
            "parameters 'RESTURL' and 'resturl' are the same parameter"
        ),
    ])
    func refusesWhatCreateVolumeRefuses(parameters: [String: String], message: String) {
        #expect {
            try StorageClassLocation(parameters: parameters)
        } throws: { error in
            (error as? CSIError).map { $0.code == .invalidArgument && $0.message.hasPrefix(message) } ?? false
        }
    }
}
