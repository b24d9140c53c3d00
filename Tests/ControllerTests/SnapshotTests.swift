import CSICore
import CSIProto
import Heketi
import Testing

@testable import Controller

@Suite struct SnapshotTests {
    func snapshotRequest(_ name: String = "snapshot-0001", of source: String) -> Csi_V1_CreateSnapshotRequest {
        var request = Csi_V1_CreateSnapshotRequest()
        request.name = name
        request.sourceVolumeID = source
        request.secrets = ["key": "secret-admin-key"]
        request.parameters = ["csi.storage.k8s.io/volumesnapshot/name": "backup-1"]
        return request
    }

    func volume(_ service: ControllerService, _ name: String = "pvc-src", giB: Int64 = 2) async throws -> String {
        try await service.createVolume(createRequest(name, requiredGiB: giB), context: context()).volume.volumeID
    }

    func clones(_ heketi: FakeHeketi) -> Int { heketi.calls.filter { $0.contains("/clone") }.count }

    @Test func aSnapshotIsAHeketiCloneWithTimeAndSourceInItsName() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let source = try await volume(service)
        let before = ControllerService.unixSeconds()
        let snapshot = try await service.createSnapshot(snapshotRequest(of: source), context: context()).snapshot
        #expect(snapshot.snapshotID.hasPrefix("s1:"))
        #expect(snapshot.snapshotID.hasSuffix(":" + heketiURL))
        #expect(snapshot.sourceVolumeID == source)
        #expect(snapshot.sizeBytes == 2 * gib)
        #expect(snapshot.readyToUse)
        #expect(snapshot.creationTime.seconds >= before && snapshot.creationTime.seconds <= before + 5)
        let id = try #require(SnapshotID(parsing: snapshot.snapshotID))
        let clone = try #require(heketi.volumes.first { $0.id == id.heketiID })
        let name = try #require(HeketiSnapshotName(parsing: clone.name))
        #expect(name.createdSeconds == snapshot.creationTime.seconds)
        #expect(name.sourceHeketiID == VolumeID(parsing: source)?.heketiID)
        #expect(clone.name.utf8.count == 60)
    }

    @Test func repeatsAndRestartsAnswerTheSameSnapshotAndTime() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let source = try await volume(service)
        let first = try await service.createSnapshot(snapshotRequest(of: source), context: context()).snapshot
        let again = try await service.createSnapshot(snapshotRequest(of: source), context: context()).snapshot
        // A restarted controller: a fresh index, built from Heketi.
        let restarted = try await makeService(heketi).createSnapshot(snapshotRequest(of: source), context: context())
        #expect(again == first)
        #expect(restarted.snapshot == first)
        #expect(clones(heketi) == 1)
    }

    @Test func theSameNameForAnotherSourceIsAlreadyExists() async throws {
        let service = makeService(FakeHeketi())
        let first = try await volume(service, "pvc-a")
        let second = try await volume(service, "pvc-b")
        _ = try await service.createSnapshot(snapshotRequest(of: first), context: context())
        let error = await csiError {
            _ = try await service.createSnapshot(snapshotRequest(of: second), context: context())
        }
        #expect(error?.code == .alreadyExists)
        #expect(error?.message.contains("use another snapshot name") == true)
    }

    @Test func aSettledIndexSnapshotsWithThreeHeketiRequests() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let source = try await volume(service)
        let callsBefore = heketi.calls.count
        _ = try await service.createSnapshot(snapshotRequest(of: source), context: context())
        // The fake's clone stands for POST + queue + GET of the clone: nothing else is asked.
        #expect(Array(heketi.calls.dropFirst(callsBefore)).count == 1)
        #expect(heketi.calls.last?.contains("/clone snap-") == true)
    }

    @Test func aSourceMadeOutsideTheDriverIsFoundThoughTheIndexIsYoung() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        _ = try await volume(service)
        let outside = heketi.seed(name: "made-by-heketi-cli", sizeGiB: 3)
        let snapshot = try await service.createSnapshot(
            snapshotRequest(of: "v1:\(outside.id):\(heketiURL)"), context: context()
        ).snapshot
        #expect(snapshot.sizeBytes == 3 * gib)
    }

    @Test func badRequestsSayWhatIsWrong() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let source = try await volume(service)
        let missingSource = "v1:" + String(repeating: "a", count: 32) + ":"
        var noName = snapshotRequest(of: source)
        noName.name = ""
        var noSource = snapshotRequest(of: source)
        noSource.sourceVolumeID = ""
        var unknownParameter = snapshotRequest(of: source)
        unknownParameter.parameters["snapfactor"] = "10"
        let cases: [(Csi_V1_CreateSnapshotRequest, StatusCode, String)] = [
            (noName, .invalidArgument, "name"),
            (noSource, .invalidArgument, "source_volume_id"),
            (unknownParameter, .invalidArgument, "unknown VolumeSnapshotClass parameter 'snapfactor'"),
            (snapshotRequest(of: missingSource), .notFound, "does not exist"),
            (snapshotRequest(of: "not-ours"), .notFound, "does not exist"),
        ]
        for (request, code, text) in cases {
            let error = await csiError { _ = try await service.createSnapshot(request, context: context()) }
            #expect(error?.code == code, "\(request)")
            #expect(error?.message.contains(text) == true, "\(error?.message ?? "no error")")
        }
        #expect(clones(heketi) == 0)
    }

    @Test func aCloneLeftRunningByAKilledControllerIsWaitedForNotClonedTwice() async throws {
        let heketi = FakeHeketi()
        let source = try await volume(makeService(heketi))
        // The killed controller's clone is still running in Heketi, hidden from the volume list.
        heketi.state.withLock { $0.othersInFlight = 1 }
        let restarted = makeService(heketi)
        let error = await csiError {
            _ = try await restarted.createSnapshot(snapshotRequest(of: source), context: context())
        }
        #expect(error?.code == .aborted)
        #expect(clones(heketi) == 0)
        // It finishes; the retry adopts it.
        let name = HeketiSnapshotName(
            csiName: "snapshot-0001", createdSeconds: 1_700_000_000, sourceHeketiID: VolumeID(parsing: source)!.heketiID
        )
        let orphan = heketi.seed(name: name.value, sizeGiB: 2)
        heketi.state.withLock { $0.othersInFlight = 0 }
        let snapshot = try await restarted.createSnapshot(snapshotRequest(of: source), context: context()).snapshot
        #expect(snapshot.snapshotID == "s1:\(orphan.id):\(heketiURL)")
        #expect(snapshot.creationTime.seconds == 1_700_000_000)
        #expect(clones(heketi) == 0)
    }

    @Test func snapshotsAreNeverVolumesAndVolumesNeverSnapshots() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let source = try await volume(service)
        let snapshot = try await service.createSnapshot(snapshotRequest(of: source), context: context()).snapshot
        let cloneID = try #require(SnapshotID(parsing: snapshot.snapshotID)).heketiID
        let cloneAsVolume = "v1:\(cloneID):\(heketiURL)"

        let listed = try await service.listVolumes(Csi_V1_ListVolumesRequest(), context: context())
        #expect(listed.entries.map(\.volume.volumeID) == [source])
        var get = Csi_V1_ControllerGetVolumeRequest()
        get.volumeID = cloneAsVolume
        #expect(await csiError { _ = try await service.getVolume(get, context: context()) }?.code == .notFound)
        var deleteVolume = Csi_V1_DeleteVolumeRequest()
        deleteVolume.volumeID = cloneAsVolume
        _ = try await service.deleteVolume(deleteVolume, context: context())
        #expect(heketi.volumes.contains { $0.id == cloneID }, "DeleteVolume must not delete a snapshot")
        #expect(SnapshotID(parsing: source) == nil)
        #expect(VolumeID(parsing: snapshot.snapshotID) == nil)

        let sourceAsSnapshot = "s1:" + source.dropFirst(3)
        var getSnapshot = Csi_V1_GetSnapshotRequest()
        getSnapshot.snapshotID = sourceAsSnapshot
        #expect(
            await csiError { _ = try await service.getSnapshot(getSnapshot, context: context()) }?.code == .notFound)
        var deleteSnapshot = Csi_V1_DeleteSnapshotRequest()
        deleteSnapshot.snapshotID = String(sourceAsSnapshot)
        _ = try await service.deleteSnapshot(deleteSnapshot, context: context())
        deleteSnapshot.snapshotID = source
        _ = try await service.deleteSnapshot(deleteSnapshot, context: context())
        #expect(heketi.volumes.count == 2, "DeleteSnapshot must not delete a volume")
    }

    @Test func getAndDeleteAreIdempotent() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let source = try await volume(service)
        let snapshot = try await service.createSnapshot(snapshotRequest(of: source), context: context()).snapshot
        var get = Csi_V1_GetSnapshotRequest()
        get.snapshotID = snapshot.snapshotID
        #expect(try await service.getSnapshot(get, context: context()).snapshot == snapshot)
        var delete = Csi_V1_DeleteSnapshotRequest()
        delete.snapshotID = snapshot.snapshotID
        let callsBefore = heketi.calls.count
        _ = try await service.deleteSnapshot(delete, context: context())
        // The index knows the clone is a snapshot's: only the delete goes to Heketi.
        let cloneID = try #require(SnapshotID(parsing: snapshot.snapshotID)).heketiID
        #expect(Array(heketi.calls.dropFirst(callsBefore)) == ["DELETE /volumes/\(cloneID)"])
        _ = try await service.deleteSnapshot(delete, context: context())
        delete.snapshotID = "garbage"
        _ = try await service.deleteSnapshot(delete, context: context())
        #expect(heketi.volumes.count == 1)
        #expect(await csiError { _ = try await service.getSnapshot(get, context: context()) }?.code == .notFound)
    }

    @Test func listFiltersAndPages() async throws {
        let service = makeService(FakeHeketi())
        let first = try await volume(service, "pvc-a")
        let second = try await volume(service, "pvc-b")
        var made: Set<String> = []
        for number in 0..<50 {
            let source = number % 5 == 0 ? second : first
            let response = try await service.createSnapshot(
                snapshotRequest("snapshot-\(number)", of: source), context: context())
            made.insert(response.snapshot.snapshotID)
        }
        var seen: [String] = []
        var request = Csi_V1_ListSnapshotsRequest()
        request.maxEntries = 7
        repeat {
            let page = try await service.listSnapshots(request, context: context())
            #expect(page.entries.count <= 7)
            seen += page.entries.map(\.snapshot.snapshotID)
            request.startingToken = page.nextToken
        } while !request.startingToken.isEmpty
        #expect(seen.count == 50)
        #expect(Set(seen) == made)

        var bySource = Csi_V1_ListSnapshotsRequest()
        bySource.sourceVolumeID = second
        let ofSecond = try await service.listSnapshots(bySource, context: context()).entries
        #expect(ofSecond.count == 10)
        #expect(ofSecond.allSatisfy { $0.snapshot.sourceVolumeID == second })

        var byID = Csi_V1_ListSnapshotsRequest()
        byID.snapshotID = ofSecond[0].snapshot.snapshotID
        #expect(
            try await service.listSnapshots(byID, context: context()).entries.map(\.snapshot) == [ofSecond[0].snapshot])
        byID.sourceVolumeID = first
        #expect(try await service.listSnapshots(byID, context: context()).entries.isEmpty)
        for unknown in ["s1:" + String(repeating: "b", count: 32) + ":", "garbage", first] {
            var request = Csi_V1_ListSnapshotsRequest()
            request.snapshotID = unknown
            #expect(try await service.listSnapshots(request, context: context()).entries.isEmpty, "\(unknown)")
        }
        var badToken = Csi_V1_ListSnapshotsRequest()
        badToken.startingToken = "nope"
        #expect(await csiError { _ = try await service.listSnapshots(badToken, context: context()) }?.code == .aborted)
    }

    @Test func restoreClonesTheSnapshotAndGrowsIt() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let source = try await volume(service)
        let snapshot = try await service.createSnapshot(snapshotRequest(of: source), context: context()).snapshot
        var restore = createRequest("pvc-restored", requiredGiB: 5)
        restore.volumeContentSource.snapshot.snapshotID = snapshot.snapshotID
        let restored = try await service.createVolume(restore, context: context()).volume
        #expect(restored.capacityBytes == 5 * gib)
        #expect(restored.contentSource.snapshot.snapshotID == snapshot.snapshotID)
        let snapshotHeketiID = try #require(SnapshotID(parsing: snapshot.snapshotID)).heketiID
        #expect(heketi.calls.contains { $0.hasPrefix("POST /volumes/\(snapshotHeketiID)/clone pvc-restored") })
        #expect(heketi.calls.contains { $0.hasSuffix("/expand 3") })
        // A restored volume is a volume.
        #expect(HeketiSnapshotName(parsing: try #require(restored.volumeContext["glusterVolume"])) == nil)

        var missing = createRequest("pvc-restored-2")
        missing.volumeContentSource.snapshot.snapshotID = "s1:" + String(repeating: "c", count: 32) + ":"
        #expect(await csiError { _ = try await service.createVolume(missing, context: context()) }?.code == .notFound)
        missing.volumeContentSource.snapshot.snapshotID = source
        #expect(await csiError { _ = try await service.createVolume(missing, context: context()) }?.code == .notFound)
    }

    @Test func aSourceOfTheOtherKindIsNotFound() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let source = try await volume(service)
        let snapshot = try await service.createSnapshot(snapshotRequest(of: source), context: context()).snapshot
        let cloneID = try #require(SnapshotID(parsing: snapshot.snapshotID)).heketiID
        // A volume named as a snapshot, and a snapshot's clone named as a volume.
        var restoreAVolume = createRequest("pvc-from-volume")
        restoreAVolume.volumeContentSource.snapshot.snapshotID = "s1:" + source.dropFirst(3)
        var cloneASnapshot = createRequest("pvc-from-snapshot-clone")
        cloneASnapshot.volumeContentSource.volume.volumeID = "v1:\(cloneID):\(heketiURL)"
        for request in [restoreAVolume, cloneASnapshot] {
            let error = await csiError { _ = try await service.createVolume(request, context: context()) }
            #expect(error?.code == .notFound, "\(request.name): \(error?.description ?? "no error")")
        }
        #expect(clones(heketi) == 1)
    }

    @Test func deletingTheSourceKeepsItsSnapshotsRestorable() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let source = try await volume(service)
        let snapshot = try await service.createSnapshot(snapshotRequest(of: source), context: context()).snapshot
        var deleteSource = Csi_V1_DeleteVolumeRequest()
        deleteSource.volumeID = source
        _ = try await service.deleteVolume(deleteSource, context: context())
        var restore = createRequest("pvc-restored")
        restore.volumeContentSource.snapshot.snapshotID = snapshot.snapshotID
        let restored = try await service.createVolume(restore, context: context()).volume
        #expect(restored.capacityBytes == 2 * gib)
        var list = Csi_V1_ListSnapshotsRequest()
        list.sourceVolumeID = source
        #expect(try await service.listSnapshots(list, context: context()).entries.map(\.snapshot) == [snapshot])
    }

    @Test func namesRoundTripAndNoVolumeNameLooksLikeOne() {
        let source = "0123456789abcdef0123456789abcdef"
        let name = HeketiSnapshotName(csiName: "snapshot-9d3c", createdSeconds: 1_764_662_400, sourceHeketiID: source)
        #expect(name.value.utf8.count == HeketiSnapshotName.length)
        #expect(name.value.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" })
        let parsed = HeketiSnapshotName(parsing: name.value)
        #expect(parsed == name)
        #expect(name.value.hasPrefix(HeketiSnapshotName.lookupPrefix(csiName: "snapshot-9d3c")))
        #expect(HeketiSnapshotName.lookupPrefix(csiName: "snapshot-9d3d") != name.lookupPrefix)
        for csiName in ["pvc-1", "snap-0123456789ab-000000001", String(repeating: "s", count: 300)] {
            for prefix in [nil, "snap-0123456789ab-0"] {
                let volumeName = HeketiVolumeName(
                    csiName: csiName, prefix: prefix, pvcNamespace: source, pvcName: "pvc")
                #expect(HeketiSnapshotName(parsing: volumeName.value) == nil, "\(volumeName)")
            }
        }
        #expect(HeketiSnapshotName(parsing: name.value.uppercased()) == nil)
        #expect(HeketiSnapshotName(parsing: String(name.value.dropLast())) == nil)
    }
}
