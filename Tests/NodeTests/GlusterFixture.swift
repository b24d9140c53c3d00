import CSICore
import CSIProto
import Glibc

@testable import Node

/// A real GlusterFS replica-3 volume on directory bricks, made for one test and destroyed after it
/// — mounts, client processes, the volume and its directories — even when the test fails.
final class GlusterVolumeFixture: Sendable {
    static let gluster = "/usr/sbin/gluster"
    static let glusterd = "/usr/sbin/glusterd"

    /// The volume's name, `nodetest-<random>`: never one another test or helper uses.
    let name: String
    /// Everything of this test lives under here: bricks, staging and target paths, client logs.
    let directory: String
    /// The host name glusterd accepts as this machine (the system host name).
    let host: String
    let service: NodeService

    var staging: String { directory + "/staging/globalmount" }
    var logDirectory: String { directory + "/logs" }
    func target(_ name: String) -> String { directory + "/pods/\(name)/mount" }

    private init(name: String, directory: String, host: String) throws {
        self.name = name
        self.directory = directory
        self.host = host
        self.service = try NodeService(
            nodeID: "node-test", mounter: SystemMounter(), probe: SystemFileSystemProbe(),
            kubeletDirectory: KubeletDirectory(directory), logDirectory: directory + "/logs",
            timeouts: NodeTimeouts(mount: .seconds(60), bind: .seconds(10), unmount: .seconds(20), probe: .seconds(5)))
    }

    /// Why the real-GlusterFS tests cannot run here, or nil when they can. Starts glusterd when it
    /// is installed but not running (and leaves it running: other tests may share it).
    static func unavailableReason() async -> String? {
        guard getuid() == 0 else { return "real GlusterFS tests need root (they mount)" }
        guard access(gluster, X_OK) == 0, access(glusterd, X_OK) == 0, access("/sbin/mount.glusterfs", X_OK) == 0 else {
            return "GlusterFS is not installed (apt-get install glusterfs-server glusterfs-client)"
        }
        guard access("/dev/fuse", R_OK | W_OK) == 0 else { return "/dev/fuse is not available" }
        if await glusterdAnswers() { return nil }
        _ = try? await SystemCommandRunner().run(glusterd, ["--pid-file=/run/glusterd.pid"], timeout: .seconds(20))
        for _ in 0..<100 {
            if await glusterdAnswers() { return nil }
            usleep(200_000)
        }
        return "glusterd is not running and could not be started; see /var/log/glusterfs/glusterd.log"
    }

    private static func glusterdAnswers() async -> Bool {
        (try? await SystemCommandRunner().run(gluster, ["--mode=script", "volume", "list"], timeout: .seconds(10)))?
            .succeeded ?? false
    }

    /// Creates and starts a fresh volume.
    static func create() async throws -> GlusterVolumeFixture {
        let directory = makeTemporaryDirectory("nodetest")
        let suffix = String(directory.split(separator: "-").last!).lowercased().filter { $0.isLetter || $0.isNumber }
        let fixture = try GlusterVolumeFixture(
            name: "nodetest-\(suffix)\(UInt32.random(in: 0...9999))", directory: directory, host: hostName())
        do {
            var bricks: [String] = []
            for index in 1...3 {
                let brick = "\(directory)/bricks/b\(index)"
                try FileIO.makeDirectories(brick)
                bricks.append("\(fixture.host):\(brick)")
            }
            try await fixture.cli(["volume", "create", fixture.name, "replica", "3"] + bricks + ["force"])
            try await fixture.cli(["volume", "start", fixture.name])
            return fixture
        } catch {
            await fixture.destroy()
            throw error
        }
    }

    /// Unmounts everything under `directory`, kills the glusterfs clients this test started,
    /// stops and deletes the volume and removes the directory. Never throws: it is cleanup.
    func destroy() async {
        for mount in mountsUnderDirectory().reversed() {
            _ = try? await SystemCommandRunner().run(
                "/bin/umount", ["--no-canonicalize", "--lazy", mount.mountPoint], timeout: .seconds(10))
        }
        for pid in clientProcesses(mentioning: directory) { kill(pid, SIGKILL) }
        _ = try? await cli(["volume", "stop", name, "force"])
        _ = try? await cli(["volume", "delete", name])
        if mountsUnderDirectory().isEmpty { removeTree(directory) }
    }

    /// Runs the gluster CLI; throws with its output when it fails.
    func cli(_ arguments: [String]) async throws {
        let result = try await SystemCommandRunner().run(
            Self.gluster, ["--mode=script"] + arguments, timeout: .seconds(120))
        guard result.succeeded else {
            throw CSIError(.internal, "gluster \(arguments.joined(separator: " ")): \(result.output)")
        }
    }

    /// Mounts whose mount point is inside this test's directory, from /proc/self/mountinfo.
    func mountsUnderDirectory() -> [MountInfo] {
        ((try? SystemMounter().mountTable()) ?? []).filter { $0.mountPoint.hasPrefix(directory + "/") }
    }

    /// PIDs of glusterfs processes whose command line mentions `text` (our mount point or log file).
    func clientProcesses(mentioning text: String) -> [pid_t] {
        guard let proc = opendir("/proc") else { return [] }
        defer { closedir(proc) }
        var pids: [pid_t] = []
        while let entry = readdir(proc) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            guard let pid = pid_t(name), let bytes = try? FileIO.readAll("/proc/\(pid)/cmdline") else { continue }
            let arguments = bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if arguments.first?.hasSuffix("glusterfs") == true, arguments.contains(where: { $0.contains(text) }) {
                pids.append(pid)
            }
        }
        return pids
    }

    /// Kills the FUSE client serving `mountPoint` the way a node-plugin crash does (SIGKILL), so
    /// the mount stays in the table but answers "Transport endpoint is not connected". The
    /// auto_unmount watcher (single-threaded) goes first, or it would tidy the mount away.
    func killClient(of mountPoint: String) throws {
        let pids = clientProcesses(mentioning: mountPoint).filter { pid in
            guard let bytes = try? FileIO.readAll("/proc/\(pid)/cmdline") else { return false }
            return bytes.split(separator: 0).last.map { String(decoding: $0, as: UTF8.self) } == mountPoint
        }
        guard !pids.isEmpty else { throw CSIError(.internal, "no glusterfs client for \(mountPoint)") }
        let ordered = pids.sorted { threadCount($0) < threadCount($1) }
        for pid in ordered { kill(pid, SIGKILL) }
        for _ in 0..<100 where pids.contains(where: { kill($0, 0) == 0 && processState($0) != "Z" }) {
            usleep(20_000)
        }
    }

    private func threadCount(_ pid: pid_t) -> Int {
        guard let bytes = try? FileIO.readAll("/proc/\(pid)/status") else { return 0 }
        let line = String(decoding: bytes, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("Threads:") }
        return line.flatMap { Int($0.dropFirst("Threads:".count).trimmingCharacters()) } ?? 0
    }

    // MARK: - Requests

    func context(volumeID: String) -> [String: String] {
        // Two hosts naming this machine: the client gets a real backup-volfile-servers option.
        [VolumeContextKey.glusterVolume: name, VolumeContextKey.glusterHosts: "\(host),127.0.0.1"]
    }

    func stageRequest(
        volumeID: String = "pv-1", staging: String? = nil, mode: Mode = .multiNodeMultiWriter, flags: [String] = [],
        context: [String: String]? = nil
    ) -> Csi_V1_NodeStageVolumeRequest {
        var request = Csi_V1_NodeStageVolumeRequest()
        request.volumeID = volumeID
        request.stagingTargetPath = staging ?? self.staging
        request.volumeCapability = capability(mode, flags: flags)
        request.volumeContext = context ?? self.context(volumeID: volumeID)
        return request
    }

    func publishRequest(
        _ target: String, volumeID: String = "pv-1", staging: String? = nil, readOnly: Bool = false,
        mode: Mode = .multiNodeMultiWriter
    ) -> Csi_V1_NodePublishVolumeRequest {
        var request = Csi_V1_NodePublishVolumeRequest()
        request.volumeID = volumeID
        request.stagingTargetPath = staging ?? self.staging
        request.targetPath = target
        request.readonly = readOnly
        request.volumeCapability = capability(mode)
        request.volumeContext = context(volumeID: volumeID)
        return request
    }

    func unpublishRequest(_ target: String, volumeID: String = "pv-1") -> Csi_V1_NodeUnpublishVolumeRequest {
        var request = Csi_V1_NodeUnpublishVolumeRequest()
        request.volumeID = volumeID
        request.targetPath = target
        return request
    }

    func unstageRequest(volumeID: String = "pv-1", staging: String? = nil) -> Csi_V1_NodeUnstageVolumeRequest {
        var request = Csi_V1_NodeUnstageVolumeRequest()
        request.volumeID = volumeID
        request.stagingTargetPath = staging ?? self.staging
        return request
    }

    func statsRequest(_ path: String, volumeID: String = "pv-1") -> Csi_V1_NodeGetVolumeStatsRequest {
        var request = Csi_V1_NodeGetVolumeStatsRequest()
        request.volumeID = volumeID
        request.volumePath = path
        return request
    }
}

/// Runs `body` with a fresh volume and always destroys it afterwards.
func withGlusterVolume(_ body: (GlusterVolumeFixture) async throws -> Void) async throws {
    let fixture = try await GlusterVolumeFixture.create()
    do {
        try await body(fixture)
    } catch {
        await fixture.destroy()
        throw error
    }
    await fixture.destroy()
}

func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    gethostname(&buffer, buffer.count)
    return String(cString: buffer)
}

/// Reads a whole (small) file through the C library, as a pod would.
func readText(_ path: String) throws -> String {
    String(decoding: try FileIO.readAll(path), as: UTF8.self)
}

/// Writes a file and returns the errno on failure (0 on success).
func writeText(_ path: String, _ text: String) -> Int32 {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { return errno }
    defer { close(fd) }
    let written = text.withCString { write(fd, $0, strlen($0)) }
    return written < 0 ? errno : 0
}

extension Substring {
    func trimmingCharacters() -> String { String(self).trimmingWhitespace() }
}
