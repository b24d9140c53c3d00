import FoundationEssentials
import Testing

@testable import Heketi

@Suite struct WireTests {
    /// The sample from heketi-api.md, with full IDs.
    static let sampleVolume = #"""
        {"size":5,"name":"pvc-rep3","id":"5c6f93f5ba6e4f51a4a87f4b3b8dd275","cluster":"64f3ab1c0e8e4b5fa1c2d3e4f5a6b7c8","gid":2000,
         "durability":{"type":"replicate","replicate":{"replica":3},"disperse":{}},
         "glustervolumeoptions":["","performance.read-ahead off",""],
         "snapshot":{"enable":true,"factor":1.5},
         "mount":{"glusterfs":{"hosts":["10.0.0.11","10.0.0.13","10.0.0.12"],
           "device":"10.0.0.11:pvc-rep3",
           "options":{"backup-volfile-servers":"10.0.0.13,10.0.0.12"}}},
         "bricks":[{"id":"a1","path":"/var/lib/heketi/mounts/vg_1/brick_a1/brick","node":"n1","size":5242880},
                   {"id":"a2","path":"/var/lib/heketi/mounts/vg_2/brick_a2/brick","node":"n2","size":5242880},
                   {"id":"a3","path":"/var/lib/heketi/mounts/vg_3/brick_a3/brick","node":"n3","size":5242880}]}
        """#

    @Test func parsesTheDocumentedVolume() throws {
        let body = try HeketiJSON.decode(VolumeInfoBody.self, from: Array(Self.sampleVolume.utf8))
        let volume = try body.model()
        #expect(
            volume
                == HeketiVolume(
                    id: "5c6f93f5ba6e4f51a4a87f4b3b8dd275", name: "pvc-rep3", sizeGiB: 5,
                    clusterID: "64f3ab1c0e8e4b5fa1c2d3e4f5a6b7c8", gid: 2000, durability: .replicate(3),
                    hosts: ["10.0.0.11", "10.0.0.13", "10.0.0.12"],
                    glusterVolumeOptions: ["performance.read-ahead off"],
                    snapshotFactor: 1.5, brickCount: 3))
    }

    @Test func goNullListsAndOmittedFieldsAreEmpty() throws {
        let text =
            #"{"size":1,"name":"v","id":"ab","cluster":"c","durability":{"type":"none"},"glustervolumeoptions":null,"mount":{"glusterfs":{"hosts":null}},"bricks":null}"#
        let volume = try HeketiJSON.decode(VolumeInfoBody.self, from: Array(text.utf8)).model()
        #expect(volume == HeketiVolume(id: "ab", name: "v", sizeGiB: 1, clusterID: "c", durability: .none))
        #expect(try HeketiJSON.decode(VolumeListBody.self, from: Array(#"{"volumes":null}"#.utf8)).volumes == nil)
    }

    @Test func disperseAndDisabledSnapshotsParse() throws {
        let text =
            #"{"size":4,"name":"d","id":"ab","cluster":"c","durability":{"type":"disperse","replicate":{},"disperse":{"data":4,"redundancy":2}},"snapshot":{"enable":false,"factor":1}}"#
        let volume = try HeketiJSON.decode(VolumeInfoBody.self, from: Array(text.utf8)).model()
        #expect(volume.durability == .disperse(data: 4, redundancy: 2))
        #expect(volume.snapshotFactor == nil)
    }

    @Test func unknownDurabilityIsAnError() throws {
        let text = #"{"size":1,"name":"v","id":"ab","durability":{"type":"raid5"}}"#
        let body = try HeketiJSON.decode(VolumeInfoBody.self, from: Array(text.utf8))
        #expect(throws: HeketiWireError.self) { try body.model() }
    }

    @Test func decodingErrorsNameTheField() {
        #expect(throws: HeketiWireError("unexpected type at size")) {
            try HeketiJSON.decode(VolumeInfoBody.self, from: Array(#"{"size":"5","name":"v","id":"a"}"#.utf8))
        }
        #expect(throws: HeketiWireError("missing field 'id'")) {
            try HeketiJSON.decode(VolumeInfoBody.self, from: Array(#"{"size":5,"name":"v"}"#.utf8))
        }
        #expect(throws: HeketiWireError.self) {
            try HeketiJSON.decode(VolumeInfoBody.self, from: Array("Id not found".utf8))
        }
    }

    @Test func createBodyHasHeketisShape() throws {
        let full = VolumeCreateRequest(
            sizeGiB: 3, name: "pvc-a", durability: .disperse(data: 4, redundancy: 2), gid: 2001, clusters: ["c1"],
            glusterVolumeOptions: ["performance.read-ahead off"], snapshotFactor: 1.5)
        #expect(
            String(decoding: HeketiJSON.encode(VolumeCreateBody(full)), as: UTF8.self)
                == #"{"clusters":["c1"],"durability":{"disperse":{"data":4,"redundancy":2},"type":"disperse"},"#
                + #""gid":2001,"glustervolumeoptions":["performance.read-ahead off"],"name":"pvc-a","#
                + #""size":3,"snapshot":{"enable":true,"factor":1.5}}"#)
        let minimal = VolumeCreateRequest(sizeGiB: 1, name: "pvc-b", durability: .replicate(3))
        #expect(
            String(decoding: HeketiJSON.encode(VolumeCreateBody(minimal)), as: UTF8.self)
                == #"{"durability":{"replicate":{"replica":3},"type":"replicate"},"name":"pvc-b","size":1}"#)
        let none = VolumeCreateRequest(sizeGiB: 1, name: "n", durability: .none)
        #expect(
            String(decoding: HeketiJSON.encode(VolumeCreateBody(none)), as: UTF8.self)
                == #"{"durability":{"type":"none"},"name":"n","size":1}"#)
    }

    @Test func expandAndCloneBodies() {
        #expect(
            String(decoding: HeketiJSON.encode(VolumeExpandBody(expand_size: 2)), as: UTF8.self)
                == #"{"expand_size":2}"#)
        #expect(String(decoding: HeketiJSON.encode(VolumeCloneBody(name: "c")), as: UTF8.self) == #"{"name":"c"}"#)
    }

    @Test func clusterAndNodeParse() throws {
        let cluster = try HeketiJSON.decode(
            ClusterInfoBody.self,
            from: Array(#"{"id":"c1","nodes":["n1","n2"],"volumes":null,"file":true,"block":true}"#.utf8))
        #expect(cluster.model(requestedID: "c1") == HeketiCluster(id: "c1", nodeIDs: ["n1", "n2"], volumeIDs: []))
        let node = try HeketiJSON.decode(
            NodeInfoBody.self,
            from: Array(
                #"{"zone":1,"id":"n1","hostnames":{"manage":["h1"],"storage":["10.0.0.11"]},"cluster":"c1","state":"online","devices":[{"name":"/dev/vdb","storage":{"total":104857600,"free":52428800,"used":52428800},"state":"online","bricks":[]},{"name":"/dev/vdc","storage":{"total":10,"free":10,"used":0},"state":"offline","bricks":null}]}"#
                    .utf8))
        #expect(
            node.model(requestedID: "n1")
                == HeketiNode(
                    id: "n1", clusterID: "c1", storageHostnames: ["10.0.0.11"], online: true,
                    devices: [
                        .init(name: "/dev/vdb", totalKiB: 104_857_600, freeKiB: 52_428_800, online: true),
                        .init(name: "/dev/vdc", totalKiB: 10, freeKiB: 10, online: false),
                    ]))
    }

    @Test func urlsSplitIntoOriginAndPath() throws {
        let plain = try #require(HeketiURL("http://heketi:8080/"))
        #expect(plain.target(apiPath: "/volumes") == ("http://heketi:8080/volumes", "/volumes"))
        let prefixed = try #require(HeketiURL("HTTPS://Proxy.example/heketi"))
        #expect(prefixed.target(apiPath: "/queue/ab") == ("https://Proxy.example/heketi/queue/ab", "/heketi/queue/ab"))
        #expect(prefixed.apiPath(ofLocation: "/queue/ab") == "/queue/ab")
        #expect(prefixed.apiPath(ofLocation: "/heketi/queue/ab") == "/queue/ab")
        #expect(plain.apiPath(ofLocation: "http://heketi:8080/volumes/ab") == "/volumes/ab")
        #expect(plain.apiPath(ofLocation: "http://evil.example/volumes/ab") == nil)
        #expect(plain.apiPath(ofLocation: "//evil.example/volumes/ab") == nil)
        #expect(plain.target(apiPath: "/x?y=1").path == "/x")
        for bad in ["heketi:8080", "ftp://h", "http://", "http://u:p@h", "http://h/?q", "http://h /"] {
            #expect(HeketiURL(bad) == nil, "\(bad)")
        }
        #expect(HeketiEndpoint(url: "heketi:8080", user: "admin", key: "").urlProblem != nil)
        #expect(HeketiEndpoint(url: "http://heketi:8080", user: "admin", key: "").urlProblem == nil)
    }

    @Test func onlyHexIDsAreAccepted() {
        #expect(HeketiURL.isValidID("5c6f93f5ba6e4f51a4a87f4b3b8dd275"))
        for bad in ["", "../clusters", "ab/cd", "ab?x", "xyz", "ab cd"] {
            #expect(!HeketiURL.isValidID(bad), "\(bad)")
        }
    }
}
