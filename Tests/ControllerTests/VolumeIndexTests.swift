import CSICore
import Heketi
import Testing

@testable import Controller

/// The GIDs of the controller's own volumes stay unique however creates and catch-ups overlap.
@Suite struct VolumeIndexTests {
    private func gids(_ heketi: FakeHeketi) -> [Int] { heketi.volumes.map(\.gid).sorted() }

    @Test func aCreateWithAnUnknownOutcomeKeepsItsGIDOutOfUse() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        _ = try await service.createVolume(createRequest("pvc-0"), context: context())
        // Heketi makes pvc-a with GID 2001, but the driver only learns that the wait timed out.
        heketi.state.withLock { $0.timeOutAfterNextCreate = true }
        let error = await csiError { _ = try await service.createVolume(createRequest("pvc-a"), context: context()) }
        #expect(error?.code == .deadlineExceeded)
        _ = try await service.createVolume(createRequest("pvc-b"), context: context())
        #expect(gids(heketi) == [2000, 2001, 2002])
        // The catch-up before pvc-b settled the index again: the next new name lists nothing.
        let before = heketi.calls.count
        _ = try await service.createVolume(createRequest("pvc-c"), context: context())
        #expect(heketi.calls.count - before == 1, "\(heketi.calls[before...])")
    }

    @Test func aCatchUpKeepsVolumesRecordedWhileItListed() async throws {
        let heketi = FakeHeketi()
        let index = VolumeIndex()
        heketi.state.withLock { $0.holdNextList = true }
        let catchUp = Task { try await index.catchUp(with: heketi) }
        for _ in 0..<500 where !heketi.isHoldingList { try await Task.sleep(for: .milliseconds(2)) }
        // One of our creates finishes after the list's snapshot was taken.
        let own = try await heketi.createVolume(
            VolumeCreateRequest(sizeGiB: 1, name: "own", durability: .replicate(3), gid: 2000))
        await index.record(own)
        heketi.releaseList()
        try await catchUp.value
        #expect(await index.volume(named: "own") != nil)
        #expect(await index.reserveGID(in: 2000...3000) == 2001)
    }

    /// The start-up build runs with the controller's own key (perhaps none); a call with the right
    /// key that arrives meanwhile must not inherit its refusal.
    @Test func aCatchUpThatFailsForOneCallerLeavesTheNextToTryItsOwn() async throws {
        let keyless = FakeHeketi()
        keyless.state.withLock { state in
            state.holdNextList = true
            state.failHeldList = .unauthorized("no key is configured")
        }
        let keyed = FakeHeketi()
        keyed.seed(name: "existing")
        let index = VolumeIndex()
        let first = Task { try await index.catchUp(with: keyless) }
        for _ in 0..<500 where !keyless.isHoldingList { try await Task.sleep(for: .milliseconds(2)) }
        let second = Task { try await index.catchUp(with: keyed) }
        try await Task.sleep(for: .milliseconds(50))  // joins the held catch-up
        keyless.releaseList()
        await #expect(throws: HeketiError.self) { try await first.value }
        try await second.value
        #expect(await index.volume(named: "existing") != nil)
    }

    @Test func aCloneCatchingUpWhileAnotherCreateFinishesLosesNothing() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let source = try await service.createVolume(createRequest("pvc-src"), context: context())
        heketi.state.withLock { $0.holdNextList = true }
        var cloneRequest = createRequest("pvc-clone")
        cloneRequest.volumeContentSource.volume.volumeID = source.volume.volumeID
        let clone = Task { try await service.createVolume(cloneRequest, context: context()) }
        for _ in 0..<500 where !heketi.isHoldingList { try await Task.sleep(for: .milliseconds(2)) }
        let a = try await service.createVolume(createRequest("pvc-a"), context: context())
        heketi.releaseList()
        _ = try await clone.value
        let b = try await service.createVolume(createRequest("pvc-b"), context: context())
        #expect(a.volume.volumeContext["gid"] == "2001")
        #expect(b.volume.volumeContext["gid"] == "2002")
    }

    @Test func afterARestartNewNamesCatchUpUntilHeketiHasNothingInFlight() async throws {
        let heketi = FakeHeketi()
        heketi.seed(name: "old", gid: 2000)
        // A create the previous controller started (with the lowest free GID, 2001) is still
        // running in Heketi: not listed yet, but counted in flight.
        heketi.state.withLock { $0.othersInFlight = 1 }
        let service = makeService(heketi)
        await service.buildIndexInBackground(logger: context().logger)?.value
        let first = try await service.createVolume(createRequest("pvc-a"), context: context())
        #expect(first.volume.volumeContext["gid"] == "2002", "the lowest free GID may be the other create's")
        heketi.seed(name: "previous-controller", gid: 2001)
        heketi.state.withLock { $0.othersInFlight = 0 }
        let second = try await service.createVolume(createRequest("pvc-b"), context: context())
        #expect(second.volume.volumeContext["gid"] == "2003")
        // Settled now: a new name costs only its create, and GIDs are the lowest free again.
        let old = try #require(heketi.volumes.first { $0.name == "old" })
        heketi.state.withLock { _ = $0.volumes.removeValue(forKey: old.id) }
        let before = heketi.calls.count
        let third = try await service.createVolume(createRequest("pvc-c"), context: context())
        #expect(heketi.calls.count - before == 1, "\(heketi.calls[before...])")
        #expect(third.volume.volumeContext["gid"] == "2004", "the index has not seen the removal yet")
        #expect(Set(gids(heketi)).count == heketi.volumes.count)
    }

    private func volume(_ id: String, name: String, gid: Int, size: Int = 1) -> HeketiVolume {
        HeketiVolume(id: id, name: name, sizeGiB: size, clusterID: "c", gid: gid)
    }

    @Test func clonesSharingANameHandItOnInTheOrderTheyWereSeen() async {
        let index = VolumeIndex()
        await index.record(volume("a", name: "shared", gid: 2000))
        await index.record(volume("b", name: "shared", gid: 2001))
        await index.record(volume("c", name: "shared", gid: 2002))
        #expect(await index.volume(named: "shared")?.id == "a")
        // Recorded again (an expansion), the holder keeps the name.
        await index.record(volume("a", name: "shared", gid: 2000, size: 5))
        #expect(await index.volume(named: "shared")?.sizeGiB == 5)
        await index.remove(id: "b")
        #expect(await index.volume(named: "shared")?.id == "a")
        await index.remove(id: "a")
        #expect(await index.volume(named: "shared")?.id == "c")
        await index.remove(id: "c")
        #expect(await index.volume(named: "shared") == nil)
        #expect(await index.count == 0)
    }

    @Test func aGIDStaysInUseWhileAnyVolumeHasIt() async {
        let index = VolumeIndex()
        // Two volumes with one GID (made behind the driver's back) and a gap above them.
        await index.record(volume("a", name: "a", gid: 2000))
        await index.record(volume("b", name: "b", gid: 2000))
        await index.record(volume("c", name: "c", gid: 2002))
        await index.remove(id: "a")
        #expect(await index.reserveGID(in: 2000...2010) == 2001)
        await index.remove(id: "b")
        #expect(await index.reserveGID(in: 2000...2010) == 2000)
        #expect(await index.reserveGID(in: 2000...2010) == 2003)
        // A volume recorded again with another GID frees the old one.
        await index.record(volume("c", name: "c", gid: 2005))
        #expect(await index.reserveGID(in: 2000...2010) == 2002)
        await index.release(gid: 2001)
        #expect(await index.reserveGID(in: 2000...2010) == 2001)
        #expect(await index.reserveGID(in: 2004...2005) == 2004)
        #expect(await index.reserveGID(in: 2005...2005) == nil)
    }

    @Test func aGIDThatComesFreeBelowEarlierSearchesIsFoundAgain() async throws {
        let index = VolumeIndex()
        for gid in 2000..<2100 { await index.record(volume("v\(gid)", name: "v\(gid)", gid: gid)) }
        #expect(await index.reserveGID(in: 2000...3000) == 2100)
        #expect(await index.reserveGID(in: 2000...2100) == nil, "2000–2100 are all taken")
        #expect(await index.reserveGID(in: 2000...3000) == 2101)
        await index.remove(id: "v2050")
        #expect(await index.reserveGID(in: 2000...3000) == 2050)
        await index.release(gid: 2100)
        await index.remove(id: "v2010")
        #expect(await index.reserveGID(in: 2000...3000) == 2010)
        #expect(await index.reserveGID(in: 2000...3000) == 2100)
        #expect(await index.reserveGID(in: 2000...3000) == 2102)
        // A range that starts elsewhere searches on its own.
        #expect(await index.reserveGID(in: 2005...2200) == 2103)
        // A create whose outcome stayed unknown holds its GID until a catch-up settles the index.
        let heketi = FakeHeketi()
        await index.createOutcomeUnknown(gid: 2103)
        try await index.catchUp(with: heketi)
        #expect(await index.reserveGID(in: 2000...3000) == 2000, "the catch-up found none of these volumes")
    }
}
