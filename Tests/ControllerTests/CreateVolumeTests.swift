import CSICore
import CSIProto
import Controller
import Heketi
import Testing

@Suite struct CreateVolumeTests {
    @Test func createsAHeketiVolumeAndDescribesItForTheNode() async throws {
        let heketi = FakeHeketi()
        let response = try await makeService(heketi).createVolume(
            createRequest(requiredGiB: 10, parameters: ["resturl": heketiURL, "volumetype": "replicate:3"]),
            context: context())
        let volume = try #require(heketi.volumes.first)
        #expect(volume.sizeGiB == 10)
        #expect(volume.durability == .replicate(3))
        #expect(volume.gid == 2000)
        #expect(response.volume.capacityBytes == 10 * gib)
        #expect(response.volume.volumeID == "v1:\(volume.id):\(heketiURL)")
        #expect(response.volume.volumeContext["glusterVolume"] == volume.name)
        #expect(response.volume.volumeContext["glusterHosts"] == "10.0.0.11,10.0.0.12,10.0.0.13")
        #expect(response.volume.volumeContext["gid"] == "2000")
        #expect(response.volume.volumeContext["heketiVolumeID"] == volume.id)
        #expect(!response.volume.volumeContext.values.contains("secret-admin-key"))
    }

    @Test func theDefaultHeketiIsRecordedInTheID() async throws {
        let heketi = FakeHeketi()
        let response = try await makeService(heketi).createVolume(createRequest(), context: context())
        #expect(VolumeID(parsing: response.volume.volumeID)?.heketiURL == heketiURL)
    }

    @Test func aRepeatReturnsTheSameVolumeWithoutAScan() async throws {
        let heketi = FakeHeketi()
        for index in 0..<50 { heketi.seed(name: "other-\(index)") }
        let service = makeService(heketi)
        let first = try await service.createVolume(createRequest(), context: context())
        let before = heketi.calls.count
        let second = try await service.createVolume(createRequest(), context: context())
        #expect(second.volume.volumeID == first.volume.volumeID)
        #expect(heketi.calls.count - before == 1, "a repeat costs one GET of the volume: \(heketi.calls.suffix(3))")
        #expect(heketi.calls("POST /volumes") == 1)
    }

    @Test func aRestartedControllerFindsTheVolumeInsteadOfCreatingAnother() async throws {
        let heketi = FakeHeketi()
        let first = try await makeService(heketi).createVolume(createRequest(), context: context())
        let second = try await makeService(heketi).createVolume(createRequest(), context: context())
        #expect(second.volume.volumeID == first.volume.volumeID)
        #expect(heketi.calls("POST /volumes") == 1)
    }

    @Test func anIncompatibleSizeIsAlreadyExists() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        _ = try await service.createVolume(createRequest(requiredGiB: 1, limitGiB: 1), context: context())
        let error = await csiError {
            _ = try await service.createVolume(createRequest(requiredGiB: 5), context: context())
        }
        #expect(error?.code == .alreadyExists)
    }

    @Test func concurrentCallsForOneNameMakeOneVolume() async throws {
        let heketi = FakeHeketi()
        heketi.state.withLock { $0.createDelay = .milliseconds(100) }
        let service = makeService(heketi)
        let outcomes = await withTaskGroup(of: StatusCode.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    (await csiError { _ = try await service.createVolume(createRequest(), context: context()) })?.code
                        ?? .ok
                }
            }
            return await group.reduce(into: [StatusCode]()) { $0.append($1) }
        }
        #expect(heketi.calls("POST /volumes") == 1)
        #expect(heketi.volumes.count == 1)
        #expect(outcomes.filter { $0 == .ok }.count >= 1)
        #expect(outcomes.allSatisfy { $0 == .ok || $0 == .aborted })
        // Once it finished, every retry succeeds with the same volume.
        _ = try await service.createVolume(createRequest(), context: context())
        #expect(heketi.volumes.count == 1)
    }

    @Test func anOperationOutlivesAnExpiredDeadlineAndTheRetryCollectsIt() async throws {
        let heketi = FakeHeketi()
        // Long enough that the retry below comes while it still runs, even on a loaded machine
        // (with 300 ms, and then with 2 s on two cores running every suite at once, a first
        // answer delayed by parallel suites let the retry collect it).
        heketi.state.withLock { $0.createDelay = .seconds(5) }
        let service = makeService(heketi)
        let error = await csiError {
            _ = try await service.createVolume(createRequest(), context: context(deadline: .now + .milliseconds(50)))
        }
        #expect(error?.code == .aborted)
        #expect(error?.message.contains("goes on in the background") == true)
        // While it still runs, a retry is told so (and starts nothing).
        let busy = await csiError { _ = try await service.createVolume(createRequest(), context: context()) }
        #expect(busy?.code == .aborted)
        // Once it has finished, a retry collects its volume: retry as a CO does, for up to 20 s.
        var collected: Csi_V1_CreateVolumeResponse?
        for _ in 0..<200 where collected == nil {
            try await Task.sleep(for: .milliseconds(100))
            collected = try? await service.createVolume(createRequest(), context: context())
        }
        let response = try #require(collected)
        #expect(heketi.calls("POST /volumes") == 1)
        #expect(response.volume.volumeID.contains(heketi.volumes[0].id))
    }

    /// The deterministic Heketi name of a CSI name, learnt from a throwaway controller.
    private func heketiName(of csiName: String) async throws -> String {
        let probe = try await makeService(FakeHeketi()).createVolume(createRequest(csiName), context: context())
        return try #require(probe.volume.volumeContext["glusterVolume"])
    }

    @Test func aVolumeLeftByAKilledControllerIsAdopted() async throws {
        let heketi = FakeHeketi()
        let orphan = heketi.seed(name: try await heketiName(of: "pvc-9"))
        let response = try await makeService(heketi).createVolume(createRequest("pvc-9"), context: context())
        #expect(response.volume.volumeContext["heketiVolumeID"] == orphan.id)
        #expect(heketi.calls("POST /volumes") == 0)
    }

    @Test func aNameThatTurnsOutTakenAtCreateIsAdopted() async throws {
        let heketi = FakeHeketi()
        heketi.state.withLock { $0.raceOnCreate = true }
        let response = try await makeService(heketi).createVolume(createRequest("pvc-race"), context: context())
        #expect(heketi.volumes.count == 1)
        #expect(response.volume.volumeContext["heketiVolumeID"] == heketi.volumes[0].id)
    }

    @Test func aNameHeldByAPendingHeketiOperationIsAborted() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        // Heketi holds the name as a stale operation would.
        let name = try await heketiName(of: "pvc-stale")
        heketi.state.withLock { _ = $0.heldNames.insert(name) }
        let error = await csiError {
            _ = try await service.createVolume(createRequest("pvc-stale"), context: context())
        }
        #expect(error?.code == .aborted)
        #expect(error?.message.contains("/operations/pending/cleanup") == true)
        // When Heketi finishes that operation, the retry adopts its volume (Heketi refuses the
        // retry's create, because the name is taken) instead of making a second one.
        heketi.state.withLock { _ = $0.heldNames.remove(name) }
        let finished = heketi.seed(name: name)
        let response = try await service.createVolume(createRequest("pvc-stale"), context: context())
        #expect(response.volume.volumeContext["heketiVolumeID"] == finished.id)
        #expect(heketi.volumes.count == 1)
    }

    @Test func newNamesCostNoListWhileTheIndexIsFresh() async throws {
        let heketi = FakeHeketi()
        for index in 0..<5 { heketi.seed(name: "other-\(index)") }
        let service = makeService(heketi)
        _ = try await service.createVolume(createRequest("pvc-a"), context: context())
        #expect(heketi.calls("GET /volumes") == 1 + 5, "the first create builds the index: \(heketi.calls)")
        let before = heketi.calls.count
        _ = try await service.createVolume(createRequest("pvc-b"), context: context())
        #expect(Array(heketi.calls[before...]) == [heketi.calls[before]], "one POST, nothing else")
        #expect(heketi.calls[before].hasPrefix("POST /volumes"))
    }

    @Test func anOldIndexIsCaughtUpBeforeAGIDIsChosen() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi, indexMaxAge: .zero)
        let first = try await service.createVolume(createRequest("pvc-a"), context: context())
        #expect(first.volume.volumeContext["gid"] == "2000")
        // Someone else takes the next GID; an index older than its maximum age notices.
        heketi.seed(name: "made-with-heketi-cli", gid: 2001)
        let second = try await service.createVolume(createRequest("pvc-b"), context: context())
        #expect(second.volume.volumeContext["gid"] == "2002")
    }

    @Test func theIndexIsBuiltInTheBackgroundAtStart() async throws {
        let heketi = FakeHeketi()
        for index in 0..<5 { heketi.seed(name: "other-\(index)") }
        let service = makeService(heketi)
        await service.buildIndexInBackground(logger: context().logger)?.value
        #expect(heketi.calls("GET /volumes") == 1 + 5)
        let before = heketi.calls.count
        _ = try await service.createVolume(createRequest("pvc-a"), context: context())
        #expect(heketi.calls.count - before == 1, "only the POST: \(heketi.calls[before...])")
    }

    @Test func aBackgroundBuildThatFailsLeavesItToTheFirstCreate() async throws {
        let heketi = FakeHeketi()
        heketi.seed(name: "other")
        heketi.state.withLock { $0.failLists = 1 }
        let service = makeService(heketi)
        await service.buildIndexInBackground(logger: context().logger)?.value
        _ = try await service.createVolume(createRequest("pvc-a"), context: context())
        #expect(heketi.calls("GET /volumes") == 2 + 1, "a second list, then the one volume: \(heketi.calls)")
        #expect(makeService(heketi, defaultURL: nil).buildIndexInBackground(logger: context().logger) == nil)
    }

    @Test func gidsAreUniqueAndSkipThoseInUse() async throws {
        let heketi = FakeHeketi()
        heketi.seed(name: "legacy", gid: 40000)
        let service = makeService(heketi)
        let parameters = ["gidMin": "40000", "gidMax": "40002"]
        var gids: [String] = []
        for index in 0..<2 {
            let response = try await service.createVolume(
                createRequest("pvc-g\(index)", parameters: parameters), context: context())
            gids.append(response.volume.volumeContext["gid"] ?? "")
        }
        #expect(gids == ["40001", "40002"])
        let error = await csiError {
            _ = try await service.createVolume(createRequest("pvc-g9", parameters: parameters), context: context())
        }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.message.contains("gidMin/gidMax") == true)
    }

    @Test func aGIDRangeAboveWhatHeketiAcceptsIsExhaustedNotClamped() async {
        let parameters = ["gidMin": "2147483647", "gidMax": "2147483647"]
        let heketi = FakeHeketi()
        let error = await csiError {
            _ = try await makeService(heketi).createVolume(createRequest(parameters: parameters), context: context())
        }
        #expect(error?.code == .resourceExhausted)
        #expect(heketi.calls("POST /volumes") == 0)
    }

    @Test func noSpaceIsResourceExhausted() async throws {
        let heketi = FakeHeketi()
        heketi.state.withLock { $0.freeGiB = 3 }
        let error = await csiError {
            _ = try await makeService(heketi).createVolume(createRequest(requiredGiB: 5), context: context())
        }
        #expect(error?.code == .resourceExhausted)
    }

    @Test func namesFollowVolumeNamePrefixAndPVCMetadata() async throws {
        let heketi = FakeHeketi()
        let response = try await makeService(heketi).createVolume(
            createRequest(
                "pvc-1234",
                parameters: [
                    "volumenameprefix": "dept", "csi.storage.k8s.io/pvc/namespace": "team-a",
                    "csi.storage.k8s.io/pvc/name": "gluster_pvc.10g",
                ]), context: context())
        let name = try #require(response.volume.volumeContext["glusterVolume"])
        #expect(name.hasPrefix("dept_team-a_gluster-pvc-10g_"))
        #expect(name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" })
    }

    @Test func cloneCopiesThenGrows() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let source = try await service.createVolume(createRequest("pvc-src", requiredGiB: 2), context: context())
        var request = createRequest("pvc-clone", requiredGiB: 5)
        request.volumeContentSource.volume.volumeID = source.volume.volumeID
        let clone = try await service.createVolume(request, context: context())
        #expect(clone.volume.capacityBytes == 5 * gib)
        #expect(clone.volume.contentSource.volume.volumeID == source.volume.volumeID)
        #expect(heketi.calls("POST /volumes/") == 2)  // clone, then expand by the delta
        #expect(heketi.calls.contains { $0.hasSuffix("/expand 3") })
        // Repeating the clone does not clone twice (Heketi would allow a duplicate name).
        _ = try await service.createVolume(request, context: context())
        #expect(heketi.calls.filter { $0.contains("/clone") }.count == 1)
    }

    @Test func aCloneLeftRunningByAKilledControllerIsWaitedForThenAdopted() async throws {
        let heketi = FakeHeketi()
        let source = try await makeService(heketi).createVolume(createRequest("pvc-src"), context: context())
        // The killed controller's clone still runs in Heketi (hidden from the list) as this one starts.
        heketi.state.withLock { $0.othersInFlight = 1 }
        let service = makeService(heketi)
        var request = createRequest("pvc-clone")
        request.volumeContentSource.volume.volumeID = source.volume.volumeID
        #expect(await csiError { _ = try await service.createVolume(request, context: context()) }?.code == .aborted)
        // It finishes; the retry finds it instead of cloning again.
        let orphan = heketi.seed(name: try await heketiName(of: "pvc-clone"))
        heketi.state.withLock { $0.othersInFlight = 0 }
        let clone = try await service.createVolume(request, context: context())
        #expect(clone.volume.volumeContext["heketiVolumeID"] == orphan.id)
        #expect(!heketi.calls.contains { $0.contains("/clone") })
    }

    @Test func aSettledIndexClonesWithoutListingAgain() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let source = try await service.createVolume(createRequest("pvc-src"), context: context())
        let listsBefore = heketi.calls("GET /volumes")
        var request = createRequest("pvc-clone")
        request.volumeContentSource.volume.volumeID = source.volume.volumeID
        _ = try await service.createVolume(request, context: context())
        #expect(heketi.calls("GET /volumes") == listsBefore)
        #expect(heketi.calls.filter { $0.contains("/clone") }.count == 1)
    }

    @Test func cloneOfAMissingSourceIsNotFound() async throws {
        var request = createRequest("pvc-clone")
        request.volumeContentSource.volume.volumeID = "v1:" + String(repeating: "a", count: 32) + ":"
        let error = await csiError { _ = try await makeService(FakeHeketi()).createVolume(request, context: context()) }
        #expect(error?.code == .notFound)
        var garbage = createRequest("pvc-clone2")
        garbage.volumeContentSource.volume.volumeID = "not-ours"
        let error2 = await csiError {
            _ = try await makeService(FakeHeketi()).createVolume(garbage, context: context())
        }
        #expect(error2?.code == .notFound)
    }
}
