import CSICore
import CSIProto
import Glibc
import Testing

@testable import Node

/// NodeService with the real mounter against a real local GlusterFS. Serialized: they mount and
/// kill FUSE clients, and the machine is small. Each test gets its own volume and cleans up.
@Suite(
    "Real GlusterFS",
    .serialized,
    .enabled("needs root, GlusterFS and a running (or startable) glusterd") {
        let reason = await GlusterVolumeFixture.unavailableReason()
        if let reason { print("skipping real GlusterFS tests: \(reason)") }
        return reason == nil
    })
struct GlusterIntegrationTests {
    @Test("stage, publish twice, write through one and read through the other, tear down without a trace")
    func lifecycle() async throws {
        try await withGlusterVolume { gluster in
            let service = gluster.service
            let context = testContext()
            let (a, b) = (gluster.target("a"), gluster.target("b"))

            _ = try await service.stageVolume(gluster.stageRequest(), context: context)
            _ = try await service.stageVolume(gluster.stageRequest(), context: context)  // idempotent
            let staged = try #require(try SystemMounter().mountPoint(at: gluster.staging))
            #expect(staged.fsType == "fuse.glusterfs")
            #expect(staged.source.hasSuffix(":/\(gluster.name)"))

            for target in [a, b, a] {  // the second `a` is the idempotent repeat
                _ = try await service.publishVolume(gluster.publishRequest(target), context: context)
            }
            #expect(writeText(a + "/hello.txt", "through a") == 0)
            #expect(try readText(b + "/hello.txt") == "through a")

            let stats = try await service.getVolumeStats(gluster.statsRequest(b), context: context)
            #expect(!stats.volumeCondition.abnormal)
            #expect(stats.usage.count == 2 && stats.usage[0].total > 0 && stats.usage[1].total > 0)

            for target in [a, b, a] {
                _ = try await service.unpublishVolume(gluster.unpublishRequest(target), context: context)
            }
            _ = try await service.unstageVolume(gluster.unstageRequest(), context: context)
            _ = try await service.unstageVolume(gluster.unstageRequest(), context: context)  // idempotent

            #expect(gluster.mountsUnderDirectory().isEmpty, "\(gluster.mountsUnderDirectory())")
            for path in [a, b, gluster.staging] { #expect(!fileExists(path)) }
            try await waitUntil { gluster.clientProcesses(mentioning: gluster.staging).isEmpty }
            let stat = await csiError {
                _ = try await service.getVolumeStats(gluster.statsRequest(a), context: context)
            }
            #expect(stat?.code == .notFound)
        }
    }

    @Test("read-only publications and read-only access modes refuse writes")
    func readOnly() async throws {
        try await withGlusterVolume { gluster in
            let service = gluster.service
            let context = testContext()
            _ = try await service.stageVolume(gluster.stageRequest(), context: context)
            let (writable, readOnly) = (gluster.target("rw"), gluster.target("ro"))
            _ = try await service.publishVolume(gluster.publishRequest(writable), context: context)
            _ = try await service.publishVolume(gluster.publishRequest(readOnly, readOnly: true), context: context)
            #expect(writeText(writable + "/f", "x") == 0)
            #expect(writeText(readOnly + "/g", "x") == EROFS)
            #expect(try readText(readOnly + "/f") == "x")
            #expect(writeText(writable + "/f2", "still writable") == 0, "the ro remount is per mount point")

            // A second PV of the same Gluster volume with a read-only access mode: staged with ro.
            let staging2 = gluster.directory + "/staging/pv-2"
            _ = try await service.stageVolume(
                gluster.stageRequest(volumeID: "pv-2", staging: staging2, mode: .multiNodeReaderOnly), context: context)
            let reader = gluster.target("reader")
            _ = try await service.publishVolume(
                gluster.publishRequest(reader, volumeID: "pv-2", staging: staging2, mode: .multiNodeReaderOnly),
                context: context)
            #expect(writeText(staging2 + "/h", "x") == EROFS)
            #expect(writeText(reader + "/h", "x") == EROFS)
            #expect(try readText(reader + "/f") == "x")

            // Incompatible repeats are refused.
            let again = await csiError {
                _ = try await service.publishVolume(gluster.publishRequest(readOnly), context: context)
            }
            #expect(again?.code == .alreadyExists)

            for target in [writable, readOnly] {
                _ = try await service.unpublishVolume(gluster.unpublishRequest(target), context: context)
            }
            _ = try await service.unpublishVolume(gluster.unpublishRequest(reader, volumeID: "pv-2"), context: context)
            _ = try await service.unstageVolume(gluster.unstageRequest(), context: context)
            _ = try await service.unstageVolume(
                gluster.unstageRequest(volumeID: "pv-2", staging: staging2), context: context)
            #expect(gluster.mountsUnderDirectory().isEmpty)
        }
    }

    @Test("a missing volume, an unknown host and a bad option fail with useful errors and leave nothing mounted")
    func failures() async throws {
        try await withGlusterVolume { gluster in
            let service = gluster.service
            let context = testContext()

            let missing = await csiError {
                _ = try await service.stageVolume(
                    gluster.stageRequest(context: ["volume": "nodetest-no-such-volume", "server": gluster.host]),
                    context: context)
            }
            #expect(missing?.code == .notFound)
            let message = missing?.message ?? ""
            #expect(message.contains("cannot mount Gluster volume nodetest-no-such-volume"), "\(message)")
            #expect(message.contains("last lines of the glusterfs client log"), "\(message)")
            #expect(message.contains("failed to fetch volume file"), "\(message)")

            let unknownHost = await csiError {
                _ = try await service.stageVolume(
                    gluster.stageRequest(
                        volumeID: "pv-x", context: ["volume": gluster.name, "server": "nohost.invalid"]),
                    context: context)
            }
            #expect(unknownHost?.code == .internal)
            #expect(
                unknownHost?.message.contains("DNS resolution failed") == true, "\(String(describing: unknownHost))")

            let badOption = await csiError {
                _ = try await service.stageVolume(
                    gluster.stageRequest(flags: ["xlator-option=x.y=z"]), context: context)
            }
            #expect(badOption?.code == .invalidArgument)
            #expect(badOption?.message.contains("'xlator-option' is not allowed") == true)

            #expect(gluster.mountsUnderDirectory().isEmpty, "\(gluster.mountsUnderDirectory())")
            // A good stage still works on the same path afterwards: nothing was poisoned.
            _ = try await service.stageVolume(gluster.stageRequest(), context: context)
            _ = try await service.unstageVolume(gluster.unstageRequest(), context: context)
            #expect(gluster.mountsUnderDirectory().isEmpty)
        }
    }

    @Test("a killed client: stats report it, publish and stage recover it, unpublish and unstage work on it")
    func deadClient() async throws {
        try await withGlusterVolume { gluster in
            let service = gluster.service
            let logs = RecordingLogHandler.Store()
            let context = testContext(logs)
            let (a, b) = (gluster.target("a"), gluster.target("b"))
            _ = try await service.stageVolume(gluster.stageRequest(), context: context)
            _ = try await service.publishVolume(gluster.publishRequest(a), context: context)
            #expect(writeText(a + "/data", "survives") == 0)

            // 1. Kill the client: the mount stays in the table but is dead.
            try gluster.killClient(of: gluster.staging)
            #expect(try SystemMounter().mountPoint(at: gluster.staging) != nil)
            // ENOTCONN, or ECONNABORTED when the kernel aborted a request the client had in flight
            // as it died: both mean a dead client, and the probe reports either.
            let deadClientReasons = ["Transport endpoint is not connected", "Software caused connection abort"]
            let health = await SystemFileSystemProbe().health(of: a, timeout: .seconds(5))
            #expect(deadClientReasons.contains { health == .corrupted(reason: $0) }, "\(health)")
            let stats = try await service.getVolumeStats(gluster.statsRequest(a), context: context)
            #expect(stats.volumeCondition.abnormal)
            #expect(
                deadClientReasons.contains { stats.volumeCondition.message.contains($0) },
                "\(stats.volumeCondition.message)")

            // 2. The next publish repairs the staging mount, binds its target and re-binds `a`.
            _ = try await service.publishVolume(gluster.publishRequest(b), context: context)
            #expect(try readText(b + "/data") == "survives")
            #expect(try readText(a + "/data") == "survives")
            #expect(logs.texts.contains { $0.contains("recovered a dead staging mount") })
            let healthy = try await service.getVolumeStats(gluster.statsRequest(a), context: context)
            #expect(!healthy.volumeCondition.abnormal)

            // 3. Kill it again: the next stage repairs it too.
            try gluster.killClient(of: gluster.staging)
            _ = try await service.stageVolume(gluster.stageRequest(), context: context)
            #expect(try readText(gluster.staging + "/data") == "survives")
            #expect(try readText(b + "/data") == "survives")

            // 4. Kill it once more and tear down while it is dead.
            try gluster.killClient(of: gluster.staging)
            for target in [a, b] {
                _ = try await service.unpublishVolume(gluster.unpublishRequest(target), context: context)
            }
            _ = try await service.unstageVolume(gluster.unstageRequest(), context: context)
            #expect(gluster.mountsUnderDirectory().isEmpty, "\(gluster.mountsUnderDirectory())")
            #expect(gluster.clientProcesses(mentioning: gluster.staging).isEmpty)
        }
    }

    @Test("with every server down, stats report it and unpublish and unstage still work")
    func serversDown() async throws {
        try await withGlusterVolume { gluster in
            let service = gluster.service
            let context = testContext()
            let target = gluster.target("a")
            _ = try await service.stageVolume(gluster.stageRequest(), context: context)
            _ = try await service.publishVolume(gluster.publishRequest(target), context: context)
            try await gluster.cli(["volume", "stop", gluster.name, "force"])

            let stats = try await service.getVolumeStats(gluster.statsRequest(target), context: context)
            #expect(stats.volumeCondition.abnormal, "\(stats.volumeCondition.message)")
            _ = try await service.unpublishVolume(gluster.unpublishRequest(target), context: context)
            _ = try await service.unstageVolume(gluster.unstageRequest(), context: context)
            #expect(gluster.mountsUnderDirectory().isEmpty, "\(gluster.mountsUnderDirectory())")
            try await waitUntil { gluster.clientProcesses(mentioning: gluster.staging).isEmpty }
        }
    }

    @Test("concurrent publishes of one staged volume all succeed")
    func concurrentPublishes() async throws {
        try await withGlusterVolume { gluster in
            let service = gluster.service
            _ = try await service.stageVolume(gluster.stageRequest(), context: testContext())
            let targets = (0..<10).map { gluster.target("c\($0)") }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for target in targets {
                    group.addTask {
                        _ = try await service.publishVolume(gluster.publishRequest(target), context: testContext())
                    }
                }
                try await group.waitForAll()
            }
            #expect(writeText(targets[0] + "/x", "shared") == 0)
            for target in targets { #expect(try readText(target + "/x") == "shared") }
            for target in targets {
                _ = try await service.unpublishVolume(gluster.unpublishRequest(target), context: testContext())
            }
            _ = try await service.unstageVolume(gluster.unstageRequest(), context: testContext())
            #expect(gluster.mountsUnderDirectory().isEmpty)
        }
    }
}

/// Polls `condition` for up to five seconds (processes exit asynchronously after an unmount).
func waitUntil(_ condition: () -> Bool) async throws {
    for _ in 0..<250 {
        if condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("condition still false after 5 s")
}
