import CSICore
import CSIProto
import Testing

@testable import Node

@Suite("NodePublishVolume and NodeUnpublishVolume")
struct NodePublishTests {
    @Test("binds the staging mount at a created target directory")
    func bindsTarget() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        fixture.mounter.clearCalls()
        try await fixture.publish()
        #expect(fixture.mounter.calls == [.bind(source: fixture.staging, target: fixture.target)])
        #expect(fileExists(fixture.target))
    }

    @Test(
        "read-only when the request or the access mode says so",
        arguments: [(false, Mode.multiNodeReaderOnly), (true, .multiNodeMultiWriter), (true, .singleNodeWriter)])
    func readOnly(readOnlyFlag: Bool, mode: Mode) async throws {
        let fixture = Fixture()
        try await fixture.stage(fixture.stageRequest(capability: capability(mode)))
        fixture.mounter.clearCalls()
        try await fixture.publish(fixture.publishRequest(readOnly: readOnlyFlag, capability: capability(mode)))
        #expect(
            fixture.mounter.calls == [
                .bind(source: fixture.staging, target: fixture.target), .remountReadOnly(target: fixture.target),
            ])
    }

    @Test("publishing again is a no-op; with the other read-only-ness it is ALREADY_EXISTS")
    func idempotent() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        try await fixture.publish()
        fixture.mounter.clearCalls()
        try await fixture.publish()
        #expect(fixture.mounter.calls.isEmpty)
        let error = await csiError { try await fixture.publish(fixture.publishRequest(readOnly: true)) }
        #expect(error?.code == .alreadyExists)
        #expect(fixture.mounter.calls.isEmpty)
    }

    @Test("not staged is FAILED_PRECONDITION")
    func notStaged() async throws {
        let fixture = Fixture()
        let error = await csiError { try await fixture.publish() }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message.contains("NodeStageVolume must succeed first") == true)
        #expect(fixture.mounter.calls.isEmpty)
    }

    @Test("something else at the target is FAILED_PRECONDITION")
    func targetTaken() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        fixture.mounter.addMount(at: fixture.target, fsType: "tmpfs", source: "tmpfs")
        fixture.mounter.clearCalls()
        let error = await csiError { try await fixture.publish() }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message.contains("tmpfs") == true)
        #expect(fixture.mounter.calls.isEmpty)
    }

    @Test(
        "one-publication modes refuse a second target; multi-writer modes do not",
        arguments: [
            (Mode.singleNodeWriter, false), (.singleNodeReaderOnly, false), (.singleNodeSingleWriter, false),
            (.singleNodeMultiWriter, true), (.multiNodeMultiWriter, true), (.multiNodeReaderOnly, true),
            (.multiNodeSingleWriter, true),
        ])
    func singleNode(mode: Mode, allowed: Bool) async throws {
        let fixture = Fixture()
        try await fixture.stage(fixture.stageRequest(capability: capability(mode)))
        try await fixture.publish(fixture.publishRequest(capability: capability(mode)))
        let error = await csiError {
            try await fixture.publish(fixture.publishRequest(target: fixture.target2, capability: capability(mode)))
        }
        if allowed {
            #expect(error == nil)
        } else {
            #expect(error?.code == .failedPrecondition)
            #expect(error?.message.contains(fixture.target) == true)
            #expect(error?.message.contains("_NODE_") == true, "the spec's mode name")
        }
        // Publishing the same target again is still fine.
        try await fixture.publish(fixture.publishRequest(capability: capability(mode)))
    }

    @Test("a dead staging mount is repaired at publish time and the target bound to it")
    func recoversStaging() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        try await fixture.publish(fixture.publishRequest(target: fixture.target2))
        fixture.probe.set(fixture.staging, .corrupted(reason: "Transport endpoint is not connected"))
        fixture.mounter.clearCalls()
        let mounter = fixture.mounter
        let probe = fixture.probe
        let staging = fixture.staging
        mounter.onMount { _ in probe.set(staging, nil) }

        try await fixture.publish()

        let calls = fixture.mounter.calls.map(\.description)
        #expect(calls.count == 5, "\(calls)")
        #expect(calls.first == "unmount \(fixture.staging)")
        #expect(calls.dropFirst().first?.hasPrefix("mount -t glusterfs") == true)
        #expect(
            Array(calls.dropFirst(2)) == [
                "unmount \(fixture.target2)", "bind \(fixture.staging) \(fixture.target2)",
                "bind \(fixture.staging) \(fixture.target)",
            ])
        #expect(fixture.logs.texts.contains { $0.contains("recovered a dead staging mount") })
    }

    @Test("a staging mount that dies after the publish chose the shared lock is ABORTED, not repaired under it")
    func deadStagingUnderSharedLock() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        // Healthy when the lock is chosen, dead when checked again under it.
        fixture.probe.answer(fixture.staging, with: [.healthy, .corrupted(reason: "Stale file handle")])
        fixture.mounter.clearCalls()
        let error = await csiError { _ = try await fixture.publish() }
        #expect(error?.code == .aborted)
        #expect(error?.message.contains("died during this call; retry to repair it") == true)
        #expect(fixture.mounter.calls.isEmpty)
    }

    @Test("a stale bind of an earlier client at the target is replaced")
    func staleBind() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        let staged = try #require(fixture.mounter.table.last)
        // Same source, different device: the bind outlived the client it was made from.
        fixture.mounter.addMount(at: fixture.target, source: staged.source)
        fixture.mounter.clearCalls()
        try await fixture.publish()
        #expect(
            fixture.mounter.calls == [
                .unmount(target: fixture.target), .bind(source: fixture.staging, target: fixture.target),
            ])
    }

    @Test("a failed read-only remount undoes the bind")
    func remountFailure() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        fixture.mounter.failRemount(MountError(kind: .failed(.exited(32)), command: ["mount"], output: "denied"))
        let error = await csiError { try await fixture.publish(fixture.publishRequest(readOnly: true)) }
        #expect(error?.code == .internal)
        #expect(error?.message.contains("read-only") == true)
        #expect(fixture.mounter.table.filter { $0.mountPoint == fixture.target }.isEmpty)
    }

    @Test("publishes of different targets share the volume; the same target is ABORTED")
    func locking() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        try await fixture.service.locks.withSharedLock(.volume("vol-1")) {
            _ = try await fixture.publish()
        }
        let sameTarget = await csiError {
            try await fixture.service.locks.withLock(.target(fixture.target2)) {
                _ = try await fixture.publish(fixture.publishRequest(target: fixture.target2))
            }
        }
        #expect(sameTarget?.code == .aborted)
        let duringStage = await csiError {
            try await fixture.service.locks.withLock(.volume("vol-1")) {
                _ = try await fixture.publish(fixture.publishRequest(target: fixture.target2))
            }
        }
        #expect(duringStage?.code == .aborted)
    }

    @Test("unpublish unmounts and removes the target; again is a no-op")
    func unpublish() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        try await fixture.publish()
        fixture.mounter.clearCalls()
        _ = try await fixture.service.unpublishVolume(fixture.unpublishRequest(), context: fixture.context)
        #expect(fixture.mounter.calls == [.unmount(target: fixture.target)])
        #expect(!fileExists(fixture.target))
        fixture.mounter.clearCalls()
        _ = try await fixture.service.unpublishVolume(fixture.unpublishRequest(), context: fixture.context)
        #expect(fixture.mounter.calls.isEmpty)
    }

    @Test("unpublish of a dead mount never stats it and logs an escalated unmount")
    func unpublishDead() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        try await fixture.publish()
        // Stacked mounts too: all of them come off.
        fixture.mounter.addMount(at: fixture.target, source: "s1.example.com:/gv0")
        fixture.probe.set(fixture.target, .corrupted(reason: "Transport endpoint is not connected"))
        fixture.mounter.setUnmountOutcome(.lazy)
        let probedBefore = fixture.probe.probedPaths.count
        _ = try await fixture.service.unpublishVolume(fixture.unpublishRequest(), context: fixture.context)
        #expect(fixture.probe.probedPaths.count == probedBefore, "a stat of a dead mount can hang")
        #expect(fixture.mounter.table.filter { $0.mountPoint == fixture.target }.isEmpty)
        #expect(!fileExists(fixture.target))
        #expect(fixture.logs.texts.contains { $0.contains("unmount needed escalation") })
    }

    @Test("a target with files left after unmounting is not deleted")
    func unpublishKeepsData() async throws {
        let fixture = Fixture()
        try FileIO.makeDirectories(fixture.target)
        try writeFile(fixture.target + "/data", "x")
        let error = await csiError {
            _ = try await fixture.service.unpublishVolume(fixture.unpublishRequest(), context: fixture.context)
        }
        #expect(error?.code == .internal)
        #expect(error?.message.contains("cannot remove target_path") == true)
        #expect(fileExists(fixture.target + "/data"))
    }

    @Test("unstage unmounts, removes the staging directory, and is idempotent")
    func unstage() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        fixture.mounter.clearCalls()
        _ = try await fixture.service.unstageVolume(fixture.unstageRequest(), context: fixture.context)
        #expect(fixture.mounter.calls == [.unmount(target: fixture.staging)])
        #expect(!fileExists(fixture.staging))
        fixture.mounter.clearCalls()
        _ = try await fixture.service.unstageVolume(fixture.unstageRequest(), context: fixture.context)
        #expect(fixture.mounter.calls.isEmpty)
    }

    @Test("unstage of a dead mount works and warns about publications left behind")
    func unstageDead() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        try await fixture.publish()
        fixture.probe.set(fixture.staging, .corrupted(reason: "Transport endpoint is not connected"))
        fixture.mounter.setUnmountOutcome(.forced)
        _ = try await fixture.service.unstageVolume(fixture.unstageRequest(), context: fixture.context)
        #expect(fixture.mounter.table.filter { $0.mountPoint == fixture.staging }.isEmpty)
        #expect(fixture.logs.texts.contains { $0.contains("still published") })
        #expect(fixture.logs.texts.contains { $0.contains("unmount needed escalation") })
    }
}

@Suite("NodeGetVolumeStats, NodeGetInfo, NodeGetCapabilities")
struct NodeStatsTests {
    @Test("bytes and inodes of a healthy published volume")
    func usage() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        try await fixture.publish()
        let response = try await fixture.service.getVolumeStats(fixture.statsRequest(), context: fixture.context)
        let usage = fixture.probe.usage
        #expect(response.usage.count == 2)
        #expect(response.usage[0].unit == .bytes)
        #expect(
            [response.usage[0].total, response.usage[0].available, response.usage[0].used]
                == [usage.totalBytes, usage.availableBytes, usage.usedBytes])
        #expect(response.usage[1].unit == .inodes)
        #expect(
            [response.usage[1].total, response.usage[1].available, response.usage[1].used]
                == [usage.totalInodes, usage.availableInodes, usage.usedInodes])
        #expect(response.hasVolumeCondition && !response.volumeCondition.abnormal)
    }

    @Test("a path that does not exist is NOT_FOUND")
    func missing() async throws {
        let fixture = Fixture()
        let error = await csiError {
            _ = try await fixture.service.getVolumeStats(fixture.statsRequest(), context: fixture.context)
        }
        #expect(error?.code == .notFound)
    }

    @Test("a dead mount is abnormal with the reason")
    func dead() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        try await fixture.publish()
        fixture.probe.set(fixture.target, .corrupted(reason: "Transport endpoint is not connected"))
        let response = try await fixture.service.getVolumeStats(fixture.statsRequest(), context: fixture.context)
        #expect(response.usage.isEmpty)
        #expect(response.volumeCondition.abnormal)
        #expect(response.volumeCondition.message.contains("Transport endpoint is not connected"))
    }

    @Test("a mount that dies between its stat and its statvfs is abnormal, not an error")
    func diesBetweenProbes() async throws {
        let fixture = Fixture()
        try await fixture.stage()
        try await fixture.publish()
        // The stat answers; the statvfs that follows finds the client gone.
        fixture.probe.answer(fixture.target, with: [.healthy])
        fixture.probe.set(fixture.target, .corrupted(reason: "gone"))
        let response = try await fixture.service.getVolumeStats(fixture.statsRequest(), context: fixture.context)
        #expect(response.usage.isEmpty)
        #expect(response.volumeCondition.abnormal)
        #expect(response.volumeCondition.message.contains("Transport endpoint is not connected"))
    }

    @Test("a directory with nothing mounted is abnormal")
    func notMounted() async throws {
        let fixture = Fixture()
        try FileIO.makeDirectories(fixture.target)
        let response = try await fixture.service.getVolumeStats(fixture.statsRequest(), context: fixture.context)
        #expect(response.volumeCondition.abnormal)
        #expect(response.volumeCondition.message.contains("nothing is mounted"))
    }

    @Test("info and capabilities")
    func infoAndCapabilities() async throws {
        let fixture = Fixture(nodeID: "worker-7")
        let info = try await fixture.service.getInfo(.init(), context: fixture.context)
        #expect(info.nodeID == "worker-7")
        #expect(!info.hasAccessibleTopology)
        #expect(info.maxVolumesPerNode == 0)
        let capabilities = try await fixture.service.getCapabilities(.init(), context: fixture.context)
        #expect(
            capabilities.capabilities.map(\.rpc.type) == [
                .stageUnstageVolume, .getVolumeStats, .volumeCondition, .singleNodeMultiWriter,
            ])
        let error = await csiError { _ = try await fixture.service.expandVolume(.init(), context: fixture.context) }
        #expect(error?.code == .unimplemented)
    }
}
