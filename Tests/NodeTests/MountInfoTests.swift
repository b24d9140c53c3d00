import Testing

@testable import Node

@Suite("mountinfo parser")
struct MountInfoTests {
    @Test("a line with optional fields")
    func fullLine() throws {
        let entry = try MountInfo.parseLine(
            "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue")
        #expect(
            entry
                == MountInfo(
                    mountID: 36, parentID: 35, major: 98, minor: 0, root: "/mnt1", mountPoint: "/mnt2",
                    mountOptions: ["rw", "noatime"], optionalFields: ["master:1", "shared:7"], fsType: "ext3",
                    source: "/dev/root", superOptions: ["rw", "errors=continue"]))
    }

    @Test("a glusterfs FUSE mount without optional fields")
    func glusterLine() throws {
        let entry = try MountInfo.parseLine(
            "42 27 0:39 / /tmp/x/mnt ro,relatime - fuse.glusterfs vm:/gv0 rw,user_id=0,group_id=0,allow_other")
        #expect(entry.optionalFields.isEmpty)
        #expect(entry.fsType == "fuse.glusterfs")
        #expect(entry.source == "vm:/gv0")
        #expect(entry.isReadOnly)
        #expect(entry.major == 0 && entry.minor == 39)
    }

    @Test(
        "octal escapes in paths and source",
        arguments: [
            ("/a\\040b", "/a b"), ("/tab\\011x", "/tab\tx"), ("/nl\\012x", "/nl\nx"),
            ("/back\\134slash", "/back\\slash"),
            ("/plain", "/plain"), ("/bad\\09x", "/bad\\09x"), ("/short\\04", "/short\\04"), ("/utf\\303\\251", "/utfé"),
        ])
    func escapes(escaped: String, plain: String) throws {
        let entry = try MountInfo.parseLine("1 2 0:1 \(escaped) \(escaped) rw - tmpfs \(escaped) rw")
        #expect(entry.root == plain)
        #expect(entry.mountPoint == plain)
        #expect(entry.source == plain)
    }

    @Test("an empty source field")
    func emptySource() throws {
        let entry = try MountInfo.parseLine("1 2 0:1 / /x rw - tmpfs  rw")
        #expect(entry.source == "")
        #expect(entry.superOptions == ["rw"])
    }

    @Test(
        "malformed lines are errors with their line number",
        arguments: [
            "1 2 0:1 / /x rw tmpfs tmpfs rw extra",
            "1 2 0:1 / /x rw - tmpfs",
            "x 2 0:1 / /x rw - tmpfs t rw",
            "1 2 01 / /x rw - tmpfs t rw",
            "1 2",
        ])
    func malformed(line: String) {
        #expect(throws: MountInfoParseError.self) {
            try MountInfo.parseTable("1 2 0:1 / / rw - ext4 /dev/vda rw\n\(line)\n")
        }
        do {
            _ = try MountInfo.parseTable("1 2 0:1 / / rw - ext4 /dev/vda rw\n\(line)\n")
        } catch {
            #expect(error.line == 2)
        }
    }

    @Test("the real table of this process parses, and bind mounts share a device")
    func realTable() throws {
        let table = try SystemMounter().mountTable()
        #expect(table.contains { $0.mountPoint == "/" })
        #expect(table.contains { $0.mountPoint == "/proc" && $0.fsType == "proc" })
        let a = MountInfo(
            mountID: 1, parentID: 0, major: 0, minor: 5, root: "/", mountPoint: "/a", mountOptions: [], fsType: "x",
            source: "s", superOptions: [])
        var b = a
        b.mountPoint = "/b"
        #expect(a.sharesFilesystem(with: b))
        b.root = "/sub"
        #expect(!a.sharesFilesystem(with: b))
    }
}
