import CSICore
import CSIProto
import Controller
import Heketi
import Synchronization
import Testing

/// Which key goes to which Heketi, and which URL a volume ID records.
@Suite struct EndpointSafetyTests {
    final class Endpoints: Sendable {
        let all = Mutex<[HeketiEndpoint]>([])
        var last: HeketiEndpoint? { all.withLock { $0.last } }
    }

    /// A controller that records the endpoint of every client it builds.
    private func recordingService(_ heketi: FakeHeketi) -> (ControllerService, Endpoints) {
        let endpoints = Endpoints()
        let service = ControllerService(
            configuration: ControllerConfiguration(defaultHeketiURL: heketiURL, defaultKey: "controller-key"),
            makeClient: { endpoint in
                endpoints.all.withLock { $0.append(endpoint) }
                return heketi
            })
        return (service, endpoints)
    }

    @Test func theControllersKeyIsNeverSentToAnotherHeketi() async throws {
        let heketi = FakeHeketi()
        let (service, endpoints) = recordingService(heketi)
        var request = Csi_V1_DeleteVolumeRequest()
        request.volumeID = "v1:" + String(repeating: "d", count: 32) + ":http://attacker.example:8080"
        _ = try? await service.deleteVolume(request, context: context())
        let sent = try #require(endpoints.last)
        #expect(sent.url == "http://attacker.example:8080")
        #expect(sent.key == "")
        request.volumeID = "v1:" + String(repeating: "d", count: 32) + ":"
        _ = try? await service.deleteVolume(request, context: context())
        #expect(endpoints.last?.key == "controller-key")
    }

    @Test func aClassNamingTheDefaultHeketiGetsTheSameIDsAsListVolumes() async throws {
        let heketi = FakeHeketi()
        let (service, _) = recordingService(heketi)
        let created = try await service.createVolume(
            createRequest(parameters: ["resturl": heketiURL + "/"]), context: context())
        let listed = try await service.listVolumes(Csi_V1_ListVolumesRequest(), context: context())
        #expect(listed.entries.map(\.volume.volumeID) == [created.volume.volumeID])
        #expect(created.volume.volumeID.hasSuffix(":" + heketiURL))
    }

    @Test func listVolumesWithoutADefaultHeketiIsUnimplemented() async {
        let error = await csiError {
            _ = try await makeService(FakeHeketi(), defaultURL: nil).listVolumes(.init(), context: context())
        }
        #expect(error?.code == .unimplemented)
    }

    @Test func validateDoesNotConfirmParametersItDoesNotUnderstand() async throws {
        let heketi = FakeHeketi()
        let service = makeService(heketi)
        let created = try await service.createVolume(createRequest(), context: context())
        var request = Csi_V1_ValidateVolumeCapabilitiesRequest()
        request.volumeID = created.volume.volumeID
        request.volumeCapabilities = [mountCapability()]
        request.parameters = ["volumetype": "raid5"]
        let response = try await service.validateCapabilities(request, context: context())
        #expect(!response.hasConfirmed)
        #expect(response.message.contains("volumetype"))
    }
}
