import CSICore
import Testing

@testable import Node

@Suite("Gluster volume source")
struct GlusterVolumeSourceTests {
    @Test("primaries spread across hosts, are stable, and are never a backup")
    func spreading() throws {
        let source = try GlusterVolumeSource(volumeContext: ["glusterVolume": "gv0", "glusterHosts": "a,b,c"])
        var chosen: Set<String> = []
        for node in 0..<60 {
            let nodeID = "node-\(node)"
            let primary = source.primary(nodeID: nodeID)
            chosen.insert(primary)
            #expect(source.primary(nodeID: nodeID) == primary, "stable for one node")
            #expect(!source.backupHosts(nodeID: nodeID).contains(primary))
            #expect(Set(source.backupHosts(nodeID: nodeID) + [primary]) == ["a", "b", "c"])
        }
        #expect(chosen == ["a", "b", "c"], "60 nodes use every host")
        let reordered = try GlusterVolumeSource(volumeContext: ["glusterVolume": "gv0", "glusterHosts": "c,a,b"])
        #expect(reordered.primary(nodeID: "node-1") == source.primary(nodeID: "node-1"), "list order does not matter")
    }

    @Test("duplicates and case variants collapse; the primary is never a backup")
    func duplicates() throws {
        let source = try GlusterVolumeSource(
            volumeContext: ["volume": "gv0", "server": "Gluster1.example, gluster1.example ,gluster2.example,,"])
        #expect(source.hosts == ["Gluster1.example", "gluster2.example"])
        #expect(source.primary(nodeID: "n") == "Gluster1.example")
        #expect(source.backupHosts(nodeID: "n") == ["gluster2.example"])
        #expect(source.mountSource(nodeID: "n") == "Gluster1.example:/gv0")
    }

    @Test("mount table sources match from any host of the volume")
    func matching() throws {
        let source = try GlusterVolumeSource(volumeContext: ["glusterVolume": "gv0", "glusterHosts": "a.x,10.1.1.1"])
        #expect(source.matches(mountSource: "a.x:/gv0"))
        #expect(source.matches(mountSource: "A.X:/gv0"))
        #expect(source.matches(mountSource: "10.1.1.1:/gv0"))
        #expect(!source.matches(mountSource: "b.x:/gv0"))
        #expect(!source.matches(mountSource: "a.x:/gv1"))
        #expect(!source.matches(mountSource: "a.x:/gv0/sub"))
        #expect(!source.matches(mountSource: "/dev/sda"))
    }

    @Test("informational keys are read")
    func informational() throws {
        let source = try GlusterVolumeSource(volumeContext: controllerContext)
        #expect(source.gid == 2001)
        #expect(source.heketiVolumeID == "0123abcd")
        #expect(source.heketiClusterID == "c1")
        #expect(!source.firstHostIsPrimary)
    }

    @Test(
        "host name rules",
        arguments: [
            ("gluster-1.example.com", true), ("10.0.0.1", true), ("a", true), ("-a", false), ("a-", false),
            ("a..b", false), ("a_b", false), (String(repeating: "a", count: 64), false), ("", false), ("a.b.", false),
        ])
    func hostNames(host: String, valid: Bool) {
        #expect((GlusterVolumeSource.isHostName(host) || GlusterVolumeSource.isIPv4Address(host)) == valid)
    }

    /// Found by fuzzing: inet_pton reads a C string, so "10.0.0.1\0junk" passed as an address.
    @Test func aHostWithANulIsNoAddress() {
        #expect(!GlusterVolumeSource.isIPv4Address("10.0.0.1\u{0}junk"))
        #expect(!GlusterVolumeSource.isHostName("10.0.0.1\u{0}junk"))
    }

    /// Found by fuzzing: values echoed in errors are made printable, so a message is one safe line.
    @Test func errorsEchoValuesPrintably() {
        var context = controllerContext
        context["gid"] = "12\n34"
        let expected = CSIError.invalidArgument(
            "volume_context: 'gid' must be a number from 0 to 4294967294, got '12?34'")
        #expect(throws: expected) { try GlusterVolumeSource(volumeContext: context) }
    }

    @Test("client log redaction")
    func redaction() {
        #expect(redactCredentials("auth password=hunter2 x") == "auth password=*** x")
        #expect(redactCredentials("token:abc x-secret=1 volume=gv0") == "token:*** x-secret=*** volume=gv0")
        #expect(redactCredentials("failed to fetch volume file (key:/gv0)") == "failed to fetch volume file (key:/gv0)")
        #expect(printable("a\nb\u{1b}c") == "a?b?c")
    }
}
