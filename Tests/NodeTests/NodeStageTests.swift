import CSICore
import CSIProto
import Glibc
import Testing

@testable import Node

@Suite("NodeStageVolume")
struct NodeStageTests {
    @Test("mounts the primary with backups, log file, log level and auto_unmount")
    func stagesWithGlusterOptions() async throws {
        let fixture = Fixture()
        try await fixture.stage()

        let source = try GlusterVolumeSource(volumeContext: controllerContext)
        let primary = source.primary(nodeID: "node-a")
        let backups = source.hosts.filter { $0 != primary }
        let log = ClientLog(directory: fixture.logDirectory, glusterVolume: "gv0", volumeID: "vol-1")
        #expect(
            fixture.mounter.calls == [
                .mount(
                    source: "\(primary):/gv0", target: fixture.staging, fsType: "glusterfs",
                    options: [
                        "log-level=ERROR", "log-file=\(log.path)",
                        "backup-volfile-servers=\(backups.joined(separator: ":"))", "auto_unmount",
                    ])
            ])
        #expect(fileExists(fixture.staging), "the staging directory is created")
        #expect(fileExists(fixture.logDirectory), "the log directory is created")
        #expect(log.path.hasPrefix(fixture.logDirectory + "/gv0-"))
    }

    @Test("static PV context: first server is the primary, a single server has no backups")
    func staticContext() async throws {
        let fixture = Fixture()
        try await fixture.stage(fixture.stageRequest(context: ["volume": "data", "server": "b.example, a.example"]))
        #expect(fixture.mounter.calls.count == 1)
        guard case .mount(let source, _, _, let options) = fixture.mounter.calls[0] else { return }
        #expect(source == "b.example:/data")
        #expect(options.contains("backup-volfile-servers=a.example"))

        let single = Fixture()
        try await single.stage(single.stageRequest(context: ["volume": "data", "server": "gluster1"]))
        guard case .mount(let source1, _, _, let options1) = single.mounter.calls[0] else { return }
        #expect(source1 == "gluster1:/data")
        #expect(!options1.contains { $0.hasPrefix("backup-volfile-servers") })
    }

    @Test("user mount flags are kept, a user log level replaces the default")
    func userFlags() async throws {
        let fixture = Fixture()
        try await fixture.stage(
            fixture.stageRequest(
                capability: capability(flags: ["noatime", "log-level=debug", "attribute-timeout=0.5"])))
        let options = fixture.lastMountOptions
        #expect(Array(options.prefix(3)) == ["noatime", "log-level=DEBUG", "attribute-timeout=0.5"])
        #expect(!options.contains("log-level=ERROR"))
    }

    @Test("read-only access modes mount with ro", arguments: [Mode.singleNodeReaderOnly, .multiNodeReaderOnly])
    func readOnlyModes(mode: Mode) async throws {
        let fixture = Fixture()
        try await fixture.stage(fixture.stageRequest(capability: capability(mode)))
        #expect(fixture.lastMountOptions.first == "ro")
    }

    @Test(
        "writer modes mount read-write",
        arguments: [Mode.singleNodeWriter, .multiNodeMultiWriter, .singleNodeMultiWriter])
    func writerModes(mode: Mode) async throws {
        let fixture = Fixture()
        try await fixture.stage(fixture.stageRequest(capability: capability(mode)))
        #expect(!fixture.lastMountOptions.contains("ro"))
    }

    @Test("staging again is a no-op")
    func idempotent() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        fixture.mounter.clearCalls()
        try await fixture.stage()
        #expect(fixture.mounter.calls.isEmpty)
    }

    @Test("a mount of this volume from another of its hosts counts as staged")
    func stagedFromOtherHost() async throws {
        let fixture = Fixture()
        try FileIO.makeDirectories(fixture.staging)
        fixture.mounter.addMount(at: fixture.staging, source: "10.0.0.3:/gv0")
        try await fixture.stage()
        #expect(fixture.mountCalls.isEmpty)
    }

    @Test("something else at the staging path is FAILED_PRECONDITION naming it")
    func differentSource() async throws {
        for (fsType, source) in [("fuse.glusterfs", "s1.example.com:/other"), ("nfs4", "nfs:/export")] {
            let fixture = Fixture()
            try FileIO.makeDirectories(fixture.staging)
            fixture.mounter.addMount(at: fixture.staging, fsType: fsType, source: source)
            let error = await csiError { try await fixture.stage() }
            #expect(error?.code == .failedPrecondition)
            #expect(error?.message.contains(source) == true, "\(String(describing: error))")
            #expect(fixture.mountCalls.isEmpty)
        }
    }

    @Test("staged read-write but asked read-only is ALREADY_EXISTS")
    func incompatibleMode() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        let error = await csiError {
            try await fixture.stage(fixture.stageRequest(capability: capability(.multiNodeReaderOnly)))
        }
        #expect(error?.code == .alreadyExists)
        #expect(error?.message.contains("read-write") == true)
    }

    @Test("a client that rejects auto_unmount is mounted again without it")
    func autoUnmountRetry() async throws {
        let fixture = Fixture()
        fixture.mounter.failMounts([
            MountError(kind: .failed(.exited(1)), command: ["mount"], output: "Invalid option auto_unmount"), nil,
        ])
        try await fixture.stage()
        let calls = fixture.mountCalls
        #expect(calls.count == 2)
        guard case .mount(_, _, _, let first) = calls[0], case .mount(_, _, _, let second) = calls[1] else { return }
        #expect(first.last == "auto_unmount")
        #expect(!second.contains("auto_unmount"))
        #expect(fixture.logs.texts.contains { $0.contains("rejected auto_unmount") })
    }

    @Test("other mount failures are not retried and end with the new client log lines, redacted")
    func failureWithLogTail() async throws {
        let fixture = Fixture()
        try FileIO.makeDirectories(fixture.logDirectory)
        let log = ClientLog(directory: fixture.logDirectory, glusterVolume: "gv0", volumeID: "vol-1")
        try writeFile(log.path, "old line from an earlier mount\n")
        fixture.mounter.onMount { _ in
            appendFile(log.path, "[E] failed to fetch volume file (key:gv0)\n[E] auth password=hunter2 rejected\n")
        }
        fixture.mounter.failMounts([MountError(kind: .failed(.exited(1)), command: ["mount"], output: "Mount failed.")])
        let error = await csiError { try await fixture.stage() }
        #expect(error?.code == .notFound, "the client log says the servers have no such volume")
        let message = error?.message ?? ""
        #expect(message.contains("Mount failed."))
        #expect(message.contains("last lines of the glusterfs client log \(log.path)"))
        #expect(message.contains("failed to fetch volume file"))
        #expect(!message.contains("old line"), "only lines of this attempt")
        #expect(!message.contains("hunter2"))
        #expect(!message.contains("s3ntinel"))
        #expect(fixture.mountCalls.count == 1)
    }

    @Test("a timed-out mount is DEADLINE_EXCEEDED and what it mounted is taken off, even past the deadline")
    func timeoutCleansUp() async throws {
        let fixture = Fixture()
        let mounter = fixture.mounter
        let staging = fixture.staging
        mounter.onMount { _ in mounter.addMount(at: staging, source: "half:/mounted") }
        // The mount uses up the caller's deadline (asleep: no thread of the shared pool is held).
        mounter.setMountDuration(.milliseconds(4_500))
        mounter.failMounts([MountError(kind: .timedOut(.seconds(5)), command: ["mount"])])
        var context = fixture.context
        // Room for the checks before the mount even when the whole suite runs in parallel on two
        // busy cores (1 s was not always enough); the mount then takes longer.
        context.deadline = .now + .seconds(4)
        let error = await csiError {
            _ = try await fixture.service.stageVolume(fixture.stageRequest(), context: context)
        }
        #expect(error?.code == .deadlineExceeded)
        #expect(error?.message.contains("has no new lines") == true)
        #expect(mounter.table.isEmpty)
        #expect(mounter.calls.last == .unmount(target: staging))
    }

    @Test("a dead staging mount is mounted again and its publications re-bound")
    func recoversDeadMount() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        try await fixture.publish()
        try await fixture.publish(fixture.publishRequest(target: fixture.target2, readOnly: true))
        fixture.probe.set(fixture.staging, .corrupted(reason: "Transport endpoint is not connected"))
        fixture.mounter.clearCalls()

        try await fixture.stage()

        let calls = fixture.mounter.calls.map(\.description)
        #expect(calls.first == "unmount \(fixture.staging)")
        #expect(calls.dropFirst().first?.hasPrefix("mount -t glusterfs") == true)
        #expect(
            Array(calls.dropFirst(2)) == [
                "unmount \(fixture.target)", "bind \(fixture.staging) \(fixture.target)",
                "unmount \(fixture.target2)", "bind \(fixture.staging) \(fixture.target2)",
                "remount-ro \(fixture.target2)",
            ])
        let table = fixture.mounter.table
        let staging = try #require(table.last { $0.mountPoint == fixture.staging })
        #expect(table.filter { $0.sharesFilesystem(with: staging) }.count == 3)
        #expect(fixture.logs.texts.contains { $0.contains("staging mount is dead") })
        #expect(fixture.logs.texts.contains { $0.contains("recovered a dead staging mount") })
    }

    @Test("a concurrent operation on the same volume is ABORTED")
    func lockContention() async throws {
        let fixture = Fixture()
        let error = await csiError {
            try await fixture.service.locks.withLock(.volume("vol-1")) {
                _ = try await fixture.stage()
            }
        }
        #expect(error?.code == .aborted)
        #expect(error?.message.contains("volume vol-1") == true)
        #expect(fixture.mounter.calls.isEmpty)
        // Another volume is not blocked.
        try await fixture.service.locks.withLock(.volume("vol-2")) { _ = try await fixture.stage() }
    }

    @Test("secrets never reach errors or logs")
    func secretsStayOut() async throws {
        let fixture = Fixture()
        fixture.mounter.failMounts([MountError(kind: .failed(.exited(1)), command: ["mount"], output: "nope")])
        let error = await csiError { try await fixture.stage() }
        #expect(error != nil)
        #expect(!(error?.message.contains("s3ntinel") ?? true))
        #expect(!fixture.logs.everything.contains("s3ntinel"))
    }
}

func writeFile(_ path: String, _ text: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw FileIOError(path: path, errno: errno) }
    defer { close(fd) }
    _ = text.withCString { write(fd, $0, strlen($0)) }
}

func appendFile(_ path: String, _ text: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    guard fd >= 0 else { return }
    defer { close(fd) }
    _ = text.withCString { write(fd, $0, strlen($0)) }
}
