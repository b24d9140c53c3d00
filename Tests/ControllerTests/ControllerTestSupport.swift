import CSICore
import CSIProto
import Controller
import Heketi
import Logging

let heketiURL = "http://heketi.test:8080"
let gib: Int64 = 1 << 30

func makeService(
    _ heketi: FakeHeketi, defaultURL: String? = heketiURL, defaultWait: Duration = .seconds(30),
    indexMaxAge: Duration = .seconds(60)
) -> ControllerService {
    ControllerService(
        configuration: ControllerConfiguration(
            defaultHeketiURL: defaultURL, defaultKey: "k", defaultWait: defaultWait, indexMaxAge: indexMaxAge),
        makeClient: { _ in heketi })
}

func context(deadline: ContinuousClock.Instant? = nil) -> RequestContext {
    RequestContext(logger: Logger(label: "test"), requestID: "t", deadline: deadline)
}

func mountCapability(_ mode: Csi_V1_VolumeCapability.AccessMode.Mode = .multiNodeMultiWriter) -> Csi_V1_VolumeCapability
{
    var capability = Csi_V1_VolumeCapability()
    capability.mount = Csi_V1_VolumeCapability.MountVolume()
    capability.accessMode.mode = mode
    return capability
}

func createRequest(
    _ name: String = "pvc-0001", requiredGiB: Int64 = 1, limitGiB: Int64 = 0, parameters: [String: String] = [:]
) -> Csi_V1_CreateVolumeRequest {
    var request = Csi_V1_CreateVolumeRequest()
    request.name = name
    request.capacityRange.requiredBytes = requiredGiB * gib
    request.capacityRange.limitBytes = limitGiB * gib
    request.volumeCapabilities = [mountCapability()]
    request.parameters = parameters
    request.secrets = ["key": "secret-admin-key"]
    return request
}

/// The CSIError a call threw, or nil when it did not throw one.
func csiError(_ body: () async throws -> Void) async -> CSIError? {
    do {
        try await body()
        return nil
    } catch let error as CSIError {
        return error
    } catch let error as any CSIErrorConvertible {
        return error.csiError
    } catch {
        return CSIError(.unknown, "\(error)")
    }
}
