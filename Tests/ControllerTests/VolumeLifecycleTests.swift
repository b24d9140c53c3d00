import CSICore
import CSIProto
import Controller
import Heketi
import Testing

@Suite struct VolumeLifecycleTests {
    private func deleteRequest(_ id: String) -> Csi_V1_DeleteVolumeRequest {
        var request = Csi_V1_DeleteVolumeRequest()
        request.volumeID = id
        return request
    }

    @Test func deleteIsIdempotentAndNeedsOnlyTheID() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let created = try await service.createVolume(createRequest(), context: context())
        // A new controller (StorageClass gone, no parameters): the ID alone finds the volume.
        let fresh = makeService(heketi)
        _ = try await fresh.deleteVolume(deleteRequest(created.volume.volumeID), context: context())
        #expect(heketi.volumes.isEmpty)
        _ = try await fresh.deleteVolume(deleteRequest(created.volume.volumeID), context: context())
        _ = try await fresh.deleteVolume(deleteRequest("garbage-id"), context: context())
        let empty = await csiError { _ = try await fresh.deleteVolume(deleteRequest(""), context: context()) }
        #expect(empty?.code == .invalidArgument)
    }

    @Test func expandAddsTheDeltaOnceAndReportsTheNewSize() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let created = try await service.createVolume(createRequest(requiredGiB: 2), context: context())
        var request = Csi_V1_ControllerExpandVolumeRequest()
        request.volumeID = created.volume.volumeID
        request.capacityRange.requiredBytes = 5 * gib
        let response = try await service.expandVolume(request, context: context())
        #expect(response.capacityBytes == 5 * gib)
        #expect(!response.nodeExpansionRequired)
        #expect(heketi.calls.contains { $0.hasSuffix("/expand 3") })
        _ = try await service.expandVolume(request, context: context())
        #expect(heketi.calls.filter { $0.contains("/expand") }.count == 1, "already large enough: no call")
        request.capacityRange.requiredBytes = 1 * gib
        #expect(try await service.expandVolume(request, context: context()).capacityBytes == 5 * gib)
    }

    @Test func expandOfAnUnknownVolumeIsNotFound() async {
        var request = Csi_V1_ControllerExpandVolumeRequest()
        request.volumeID = "v1:" + String(repeating: "b", count: 32) + ":"
        request.capacityRange.requiredBytes = gib
        let error = await csiError { _ = try await makeService(FakeHeketi()).expandVolume(request, context: context()) }
        #expect(error?.code == .notFound)
        request.volumeID = "nonsense"
        let error2 = await csiError {
            _ = try await makeService(FakeHeketi()).expandVolume(request, context: context())
        }
        #expect(error2?.code == .notFound)
    }

    @Test func validateConfirmsWhatGlusterCanDoAndExplainsWhatItCannot() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let created = try await service.createVolume(createRequest(), context: context())
        var request = Csi_V1_ValidateVolumeCapabilitiesRequest()
        request.volumeID = created.volume.volumeID
        request.volumeCapabilities = [mountCapability(.singleNodeWriter), mountCapability(.multiNodeReaderOnly)]
        let ok = try await service.validateCapabilities(request, context: context())
        #expect(ok.hasConfirmed && ok.confirmed.volumeCapabilities.count == 2)
        request.volumeCapabilities[0].block = Csi_V1_VolumeCapability.BlockVolume()
        let refused = try await service.validateCapabilities(request, context: context())
        #expect(!refused.hasConfirmed && refused.message.contains("block"))
        request.volumeID = "v1:" + String(repeating: "c", count: 32) + ":"
        #expect(
            await csiError { _ = try await service.validateCapabilities(request, context: context()) }?.code
                == .notFound)
    }

    @Test func listVolumesPagesInAStableOrder() async throws {
        let heketi = FakeHeketi()
        for index in 0..<5 { heketi.seed(name: "vol-\(index)", sizeGiB: index + 1) }
        let service = makeService(heketi)
        var request = Csi_V1_ListVolumesRequest()
        request.maxEntries = 2
        var seen: [String] = []
        while true {
            let page = try await service.listVolumes(request, context: context())
            seen += page.entries.map(\.volume.volumeID)
            if page.nextToken.isEmpty { break }
            request.startingToken = page.nextToken
        }
        #expect(seen.count == 5 && Set(seen).count == 5)
        request.startingToken = "bogus"
        #expect(await csiError { _ = try await service.listVolumes(request, context: context()) }?.code == .aborted)
        request.startingToken = "99"
        #expect(await csiError { _ = try await service.listVolumes(request, context: context()) }?.code == .aborted)
    }

    @Test func getVolumeAndCapacity() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let created = try await service.createVolume(createRequest(requiredGiB: 3), context: context())
        var get = Csi_V1_ControllerGetVolumeRequest()
        get.volumeID = created.volume.volumeID
        #expect(try await service.getVolume(get, context: context()).volume.capacityBytes == 3 * gib)
        let free = heketi.state.withLock { $0.freeGiB }
        var capacity = Csi_V1_GetCapacityRequest()
        capacity.parameters = ["volumetype": "replicate:3"]
        let replicated = try await service.capacity(capacity, context: context())
        #expect(replicated.availableCapacity == Int64(free / 3 * 3) * gib / 3)
        capacity.parameters = ["volumetype": "none"]
        #expect(try await service.capacity(capacity, context: context()).availableCapacity == Int64(free / 3 * 3) * gib)
        heketi.state.withLock { $0.nodesOnline = false }
        #expect(try await service.capacity(capacity, context: context()).availableCapacity == 0)
    }

    @Test func capabilitiesListWhatWorks() {
        let types = makeService(FakeHeketi()).capabilities(.init()).capabilities.map(\.rpc.type)
        #expect(
            Set(types) == [
                .createDeleteVolume, .expandVolume, .cloneVolume, .getCapacity, .getVolume, .singleNodeMultiWriter,
                .listVolumes, .createDeleteSnapshot, .listSnapshots, .getSnapshot,
            ])
        let withoutDefault = makeService(FakeHeketi(), defaultURL: nil).capabilities(.init()).capabilities.map(
            \.rpc.type)
        #expect(!withoutDefault.contains(.listVolumes))
    }
}
