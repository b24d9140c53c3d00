import CSICore
import CSIProto
import Glibc
import Testing

@testable import Node

@Suite("The node touches only paths under the kubelet directory, and only its own mounts")
struct ConfinementTests {
    @Test("the kubelet directory must be an existing directory; a symlink to one is resolved")
    func kubeletDirectory() throws {
        let directory = makeTemporaryDirectory()
        defer { removeTree(directory) }
        #expect(throws: NodeConfigurationError.self) { try KubeletDirectory(directory + "/missing") }
        try writeFile(directory + "/file", "x")
        #expect(throws: NodeConfigurationError.self) { try KubeletDirectory(directory + "/file") }
        mkdir(directory + "/real", 0o755)
        symlink(directory + "/real", directory + "/link")
        let kubelet = try KubeletDirectory(directory + "/link")
        #expect(kubelet.path == directory + "/link")
        #expect(kubelet.resolved == directory + "/real")
    }

    @Test(
        "paths outside are INVALID_ARGUMENT naming the directory and the flag",
        arguments: ["/proc", "/tmp", "/etc/passwd", "/var/lib/kubelet-other/x"])
    func outside(path: String) async throws {
        let fixture = Fixture()
        let error = await csiError {
            try await fixture.service.kubeletDirectory.confine(path, field: "target_path", timeout: .seconds(5))
        }
        #expect(error?.code == .invalidArgument)
        #expect(
            error?.message.contains("target_path \(path) is outside the kubelet directory \(fixture.directory)") == true
        )
        #expect(error?.message.contains("--kubelet-dir") == true)
    }

    @Test("a path below the directory that is, or passes through, a symlink to elsewhere is outside")
    func symlinks() async throws {
        let fixture = Fixture()
        let kubelet = fixture.service.kubeletDirectory
        symlink("/proc", fixture.directory + "/proc-link")
        mkdir(fixture.directory + "/pods", 0o755)
        symlink("/etc", fixture.directory + "/pods/etc-link")
        for path in [fixture.directory + "/proc-link", fixture.directory + "/pods/etc-link/x/mount"] {
            let error = await csiError { try await kubelet.confine(path, field: "target_path", timeout: .seconds(5)) }
            #expect(error?.code == .invalidArgument, "\(path)")
            #expect(error?.message.contains("resolves to /") == true, "\(path): \(error?.message ?? "")")
        }
        // Inside, existing or not yet made, is fine.
        for path in [fixture.directory + "/pods", fixture.directory + "/pods/p1/volumes/x/mount"] {
            try await kubelet.confine(path, field: "target_path", timeout: .seconds(5))
        }
        // The directory itself is not below itself.
        let itself = await csiError {
            try await kubelet.confine(fixture.directory, field: "target_path", timeout: .seconds(5))
        }
        #expect(itself?.code == .invalidArgument)
    }

    @Test("every node RPC refuses a path outside before touching anything")
    func rpcs() async throws {
        let fixture = Fixture()
        let context = fixture.context
        var unpublish = fixture.unpublishRequest()
        unpublish.targetPath = "/proc"
        var unstage = fixture.unstageRequest()
        unstage.stagingTargetPath = "/sys/fs/cgroup"
        var stage = fixture.stageRequest()
        stage.stagingTargetPath = "/mnt/elsewhere"
        var publish = fixture.publishRequest()
        publish.targetPath = "/root/mount"
        let calls: [(String, () async throws -> Void)] = [
            ("unpublish", { _ = try await fixture.service.unpublishVolume(unpublish, context: context) }),
            ("unstage", { _ = try await fixture.service.unstageVolume(unstage, context: context) }),
            ("stage", { _ = try await fixture.service.stageVolume(stage, context: context) }),
            ("publish", { _ = try await fixture.service.publishVolume(publish, context: context) }),
        ]
        for (name, call) in calls {
            let error = await csiError(call)
            #expect(error?.code == .invalidArgument, "\(name)")
            #expect(error?.message.contains("outside the kubelet directory") == true, "\(name)")
        }
        #expect(fixture.mounter.calls.isEmpty)
        // Stats of a path no volume of this driver can be published at: NOT_FOUND.
        var stats = fixture.statsRequest()
        stats.volumePath = "/proc"
        let error = await csiError { _ = try await fixture.service.getVolumeStats(stats, context: context) }
        #expect(error?.code == .notFound)
    }

    @Test(
        "unpublish and unstage leave what this driver did not mount alone, and say what it is",
        arguments: [("tmpfs", "tmpfs"), ("ext4", "/dev/sda1"), ("fuse.sshfs", "host:/x")])
    func foreignMounts(fsType: String, source: String) async throws {
        let fixture = Fixture()
        fixture.mounter.addMount(at: fixture.target, fsType: fsType, source: source)
        fixture.mounter.addMount(at: fixture.staging, fsType: fsType, source: source)
        mkdir(fixture.directory + "/pods", 0o755)
        let before = fixture.mounter.table
        let unpublished = await csiError {
            _ = try await fixture.service.unpublishVolume(fixture.unpublishRequest(), context: fixture.context)
        }
        let unstaged = await csiError {
            _ = try await fixture.service.unstageVolume(fixture.unstageRequest(), context: fixture.context)
        }
        for error in [unpublished, unstaged] {
            #expect(error?.code == .failedPrecondition)
            #expect(
                error?.message.contains("has \(fsType) '\(source)' mounted, which this driver did not mount") == true)
        }
        #expect(fixture.mounter.calls.isEmpty)
        #expect(fixture.mounter.table == before)
    }

    @Test("a glusterfs mount and a bind of one are this driver's: they are unmounted")
    func ownMounts() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        try await fixture.publish()
        _ = try await fixture.service.unpublishVolume(fixture.unpublishRequest(), context: fixture.context)
        _ = try await fixture.service.unstageVolume(fixture.unstageRequest(), context: fixture.context)
        #expect(fixture.mounter.table.isEmpty)
    }
}
