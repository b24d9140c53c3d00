import CSIProto
import Glibc
import Heketi
import Logging
import SwiftProtobuf
import Synchronization

@testable import CSICore
@testable import Controller
@testable import Node

/// Every CSI request the driver serves, from the bytes on the wire through decoding and validation
/// to the handler's first backend call, with fakes behind the Identity, Controller and Node
/// services (Fakes.swift).
///
/// Input: byte 0 picks the method (`methods`), bytes 1-2 the scenario (what Heketi has, what is
/// mounted, what a stat says), the rest is the request's protobuf encoding. The dispatch layer
/// decodes with `Request(serializedBytes:)` too, and answers INVALID_ARGUMENT when that fails.
///
/// Checked for every request: the handler answers or throws a CSI error with a message; no secret
/// value reaches an error message or a log line (each carries a marker); the controller sends its
/// own Heketi key only to its own Heketi and acts as `admin`; what reaches Heketi is valid (sizes,
/// names, GIDs, IDs); the node touches only paths under the kubelet directory and unmounts only
/// GlusterFS mounts; and a volume the controller describes is one the node accepts.
enum CSIRequestsTarget {
    static let target = FuzzTarget(
        name: "csi-requests",
        summary: "every CSI method with fake Heketi and mounter: CSI errors, no leaks, confined paths",
        run: run)

    struct Method: Sendable {
        let name: String
        let run: @Sendable (_ request: [UInt8], _ scenario: (UInt8, UInt8)) -> Void
    }

    // Append only: the first byte of committed corpus files picks an entry by its index.
    static let methods: [Method] = [
        identity("GetPluginInfo") { service, request in service.pluginInfo(request) },
        identity("GetPluginCapabilities") { service, request in service.pluginCapabilities(request) },
        identity("Probe") { service, request in service.probe(request) },
        controller("ControllerGetCapabilities") { service, request, _ in service.capabilities(request) },
        controller("CreateVolume", check: checkCreate) { try await $0.createVolume($1, context: $2) },
        controller("DeleteVolume") { try await $0.deleteVolume($1, context: $2) },
        controller("ControllerExpandVolume", check: checkExpand) { try await $0.expandVolume($1, context: $2) },
        controller("ValidateVolumeCapabilities") { try await $0.validateCapabilities($1, context: $2) },
        controller("ListVolumes", check: checkList) { try await $0.listVolumes($1, context: $2) },
        controller("ControllerGetVolume", check: checkGet) { try await $0.getVolume($1, context: $2) },
        controller("GetCapacity", check: checkCapacity) { try await $0.capacity($1, context: $2) },
        node("NodeStageVolume", paths: { ($0.stagingTargetPath, []) }, context: \.volumeContext) {
            try await $0.stageVolume($1, context: $2)
        },
        node("NodeUnstageVolume", paths: { ($0.stagingTargetPath, []) }) {
            try await $0.unstageVolume($1, context: $2)
        },
        node("NodePublishVolume", paths: { ($0.stagingTargetPath, [$0.targetPath]) }, context: \.volumeContext) {
            try await $0.publishVolume($1, context: $2)
        },
        node("NodeUnpublishVolume", paths: { (nil, [$0.targetPath]) }) {
            try await $0.unpublishVolume($1, context: $2)
        },
        node("NodeGetVolumeStats", paths: { (nil, [$0.volumePath]) }) {
            try await $0.getVolumeStats($1, context: $2)
        },
        node("NodeGetInfo", paths: { _ in (nil, []) }) { try await $0.getInfo($1, context: $2) },
        node("NodeGetCapabilities", paths: { _ in (nil, []) }) { try await $0.getCapabilities($1, context: $2) },
        node("NodeExpandVolume", paths: { _ in (nil, []) }) { try await $0.expandVolume($1, context: $2) },
        controller("CreateSnapshot", check: checkCreateSnapshot) { try await $0.createSnapshot($1, context: $2) },
        controller("DeleteSnapshot") { try await $0.deleteSnapshot($1, context: $2) },
        controller("ListSnapshots", check: checkListSnapshots) { try await $0.listSnapshots($1, context: $2) },
        controller("GetSnapshot", check: checkGetSnapshot) { try await $0.getSnapshot($1, context: $2) },
    ]

    static func run(_ bytes: [UInt8]) {
        var reader = FuzzReader(bytes)
        let method = methods[Int(reader.byte()) % methods.count]
        let scenario = (reader.byte(), reader.byte())
        method.run(reader.rest(), scenario)
    }

    /// The request decoded as the dispatch layer decodes it, with every secret value (but the
    /// Heketi user name, which messages may show) marked; nil when it does not decode.
    static func decode<Request: Message>(_ type: Request.Type, _ bytes: [UInt8]) -> Request? {
        guard let request = try? Request(serializedBytes: bytes) else { return nil }
        return replacingSecrets(of: request) { key, value in key == "user" ? value : FuzzFixture.token + value }
    }

    /// With GLUSTERFS_CSI_FUZZ_VERBOSE=1 (replaying a corpus), each call prints what it did.
    static let verbose = getenv("GLUSTERFS_CSI_FUZZ_VERBOSE").map { String(cString: $0) == "1" } ?? false

    static func report<Response>(_ name: String, _ outcome: Result<Response, any Error>, backend: [String]) {
        guard verbose else { return }
        let answer: String
        switch outcome {
        case .success: answer = "OK"
        case .failure(let error): answer = "\(error)"
        }
        print("\(name): \(answer)\n    backend: \(backend.joined(separator: "; "))")
    }

    /// Runs a handler to its end on the concurrency pool: its response or what it threw.
    static func outcome<Response: Sendable>(
        of call: @escaping @Sendable () async throws -> Response
    ) -> Result<Response, any Error> {
        runBlocking {
            do {
                return .success(try await call())
            } catch {
                return .failure(error)
            }
        }
    }

    /// Checks an outcome against what every handler promises, whatever the method.
    static func checkOutcome<Response>(_ outcome: Result<Response, any Error>, logs: RecordingLogHandler.Store) {
        if case .failure(let error) = outcome {
            let csi = expectCSIError(error, "the handler")
            expect(!csi.message.contains(FuzzFixture.token), "a secret reached an error message: \(csi.message)")
        }
        for line in logs.lines.withLock({ $0 }) {
            expect(!line.contains(FuzzFixture.token), "a secret reached a log line: \(line)")
        }
    }

    static func context(_ logs: RecordingLogHandler.Store) -> RequestContext {
        RequestContext(logger: Logger(label: "fuzz") { _ in RecordingLogHandler(store: logs) }, requestID: "fuzz")
    }
}

// MARK: - Identity

extension CSIRequestsTarget {
    static func identity<Request: Message, Response: Message>(
        _ name: String, _ call: @escaping @Sendable (IdentityService, Request) -> Response
    ) -> Method {
        Method(name: name) { bytes, scenario in
            guard let request = decode(Request.self, bytes) else { return }
            let service = IdentityService(driverName: "glusterfs.csi.heketi.io", controllerEnabled: scenario.0 & 1 == 0)
            _ = call(service, request)
        }
    }
}

// MARK: - Controller

/// One controller call: the service, its configuration and what its fake Heketis saw.
final class ControllerRun: Sendable {
    static let defaultURL = "http://heketi.fuzz:8080"
    static let defaultKey = "controller-key-" + FuzzFixture.token

    let scenario: ControllerScenario
    let configuration: ControllerConfiguration
    let clients = Mutex<[FakeHeketi]>([])
    let logs = RecordingLogHandler.Store()

    init(_ scenario: ControllerScenario) {
        self.scenario = scenario
        configuration = ControllerConfiguration(
            defaultHeketiURL: scenario.noDefaultHeketi ? nil : Self.defaultURL, defaultKey: Self.defaultKey,
            defaultWait: .seconds(30))
    }

    func makeService() -> ControllerService {
        ControllerService(configuration: configuration) { [self] endpoint in
            let client = FakeHeketi(endpoint: endpoint, scenario: scenario)
            clients.withLock { $0.append(client) }
            return client
        }
    }
}

extension CSIRequestsTarget {
    static func controller<Request: Message, Response: Message>(
        _ name: String, check: @escaping @Sendable (Request, Response, ControllerRun) -> Void = { _, _, _ in },
        _ call: @escaping @Sendable (ControllerService, Request, RequestContext) async throws -> Response
    ) -> Method {
        Method(name: name) { bytes, scenario in
            guard let request = decode(Request.self, bytes) else { return }
            let run = ControllerRun(ControllerScenario(scenario.0))
            let service = run.makeService()
            let context = context(run.logs)
            let outcome = Self.outcome { try await call(service, request, context) }
            checkOutcome(outcome, logs: run.logs)
            checkHeketi(run)
            report(
                name, outcome,
                backend: run.clients.withLock { $0 }.flatMap { ["\($0.endpoint)"] + $0.changes.map { "\($0)" } })
            if case .success(let response) = outcome { check(request, response, run) }
        }
    }

    /// Who the controller talked to, as whom, and what it asked to change.
    static func checkHeketi(_ run: ControllerRun) {
        for client in run.clients.withLock({ $0 }) {
            let endpoint = client.endpoint
            expect(endpoint.user == "admin", "the controller acts as Heketi user '\(endpoint.user)'")
            expect(
                endpoint.url.hasPrefix("http://") || endpoint.url.hasPrefix("https://"),
                "the controller talks to '\(endpoint.url)'")
            expect(
                endpoint.key != ControllerRun.defaultKey || endpoint.url == run.configuration.defaultHeketiURL,
                "the controller's own key would be sent to \(endpoint.url), not its --heketi-url")
            for change in client.changes { checkChange(change) }
        }
    }

    static func checkChange(_ change: FakeHeketi.Change) {
        switch change {
        case .create(let request):
            let minimum = if case .disperse(let data, _) = request.durability { data } else { 1 }
            expect(request.sizeGiB >= minimum, "create of \(request.sizeGiB) GiB for \(request.durability)")
            expect(isHeketiName(request.name), "create with the name '\(request.name)'")
            expect((2000...2_147_483_647).contains(request.gid), "create with GID \(request.gid)")
            for cluster in request.clusters { expect(isHex(cluster), "create in cluster '\(cluster)'") }
            for option in request.glusterVolumeOptions {
                expect(option.split(separator: " ").count == 2, "create with the option '\(option)'")
            }
        case .expand(let id, let delta):
            expect(VolumeID.isHeketiID(id), "expand of '\(id)'")
            expect(delta > 0, "expand by \(delta) GiB")
        case .clone(let id, let name):
            expect(VolumeID.isHeketiID(id), "clone of '\(id)'")
            expect(isHeketiName(name), "clone named '\(name)'")
        case .delete(let id):
            expect(VolumeID.isHeketiID(id), "delete of '\(id)'")
        }
    }

    static func isHeketiName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 60
            && name.utf8.allSatisfy { isASCIIAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    static func isHex(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { isASCIIAlphanumeric($0) && (($0 | 0x20) <= UInt8(ascii: "f")) }
    }

    /// A volume the controller describes: its ID parses back, the node accepts the ID, and the node
    /// can mount from its context.
    static func checkVolume(_ volume: Csi_V1_Volume) {
        expect(VolumeID(parsing: volume.volumeID) != nil, "the controller answered the ID '\(volume.volumeID)'")
        // Already staged (so nothing is mounted), from the source the context names.
        let stagingPath = FuzzFixture.kubeletDirectory + "/plugins/stage/globalmount"
        let node = NodeRun(NodeScenario(4, 0), stagingPath: stagingPath, volumeContext: volume.volumeContext)
        let stage = node.service.map { service in
            var request = Csi_V1_NodeStageVolumeRequest()
            request.volumeID = volume.volumeID
            request.stagingTargetPath = stagingPath
            request.volumeCapability.mount = Csi_V1_VolumeCapability.MountVolume()
            request.volumeCapability.accessMode.mode = .multiNodeMultiWriter
            request.volumeContext = volume.volumeContext
            return runBlocking { [request] () -> (any Error)? in
                do {
                    _ = try await service.stageVolume(request, context: context(node.logs))
                    return nil
                } catch {
                    return error
                }
            }
        }
        if case .some(.some(let error)) = stage {
            fatalError("property violated: the node refuses a volume the controller made: \(error)")
        }
    }

    /// A snapshot the controller describes: its ID is a snapshot's and never a volume's, its
    /// source is a volume ID, and the node refuses the snapshot as a volume.
    static func checkSnapshot(_ snapshot: Csi_V1_Snapshot) {
        expect(SnapshotID(parsing: snapshot.snapshotID) != nil, "the snapshot ID '\(snapshot.snapshotID)'")
        expect(VolumeID(parsing: snapshot.snapshotID) == nil, "the snapshot ID '\(snapshot.snapshotID)' is a volume's")
        expect(VolumeID(parsing: snapshot.sourceVolumeID) != nil, "the source ID '\(snapshot.sourceVolumeID)'")
        expect(snapshot.hasCreationTime && snapshot.sizeBytes > 0, "snapshot without time or size")
        expect(
            (try? NodeRequestValidation.volumeID(snapshot.snapshotID)) == nil,
            "the node accepts the snapshot ID '\(snapshot.snapshotID)' as a volume")
    }

    static func checkCreateSnapshot(
        _ request: Csi_V1_CreateSnapshotRequest, _ response: Csi_V1_CreateSnapshotResponse, _: ControllerRun
    ) {
        checkSnapshot(response.snapshot)
        expect(response.snapshot.sourceVolumeID == request.sourceVolumeID, "a snapshot of another source")
    }

    static func checkListSnapshots(
        _ request: Csi_V1_ListSnapshotsRequest, _ response: Csi_V1_ListSnapshotsResponse, _: ControllerRun
    ) {
        for entry in response.entries { checkSnapshot(entry.snapshot) }
        if request.maxEntries > 0 { expect(response.entries.count <= request.maxEntries, "more than max_entries") }
    }

    static func checkGetSnapshot(
        _ request: Csi_V1_GetSnapshotRequest, _ response: Csi_V1_GetSnapshotResponse, _: ControllerRun
    ) {
        checkSnapshot(response.snapshot)
        expect(response.snapshot.snapshotID == request.snapshotID, "GetSnapshot answered another snapshot")
    }

    static func checkCreate(
        _ request: Csi_V1_CreateVolumeRequest, _ response: Csi_V1_CreateVolumeResponse, _: ControllerRun
    ) {
        checkVolume(response.volume)
        expect(response.volume.capacityBytes >= request.capacityRange.requiredBytes, "created a smaller volume")
    }

    static func checkExpand(
        _ request: Csi_V1_ControllerExpandVolumeRequest, _ response: Csi_V1_ControllerExpandVolumeResponse,
        _: ControllerRun
    ) {
        expect(response.capacityBytes >= request.capacityRange.requiredBytes, "expanded to less than asked")
    }

    static func checkList(_: Csi_V1_ListVolumesRequest, _ response: Csi_V1_ListVolumesResponse, _: ControllerRun) {
        for entry in response.entries { checkVolume(entry.volume) }
    }

    static func checkGet(
        _ request: Csi_V1_ControllerGetVolumeRequest, _ response: Csi_V1_ControllerGetVolumeResponse, _: ControllerRun
    ) {
        expect(response.volume.volumeID == request.volumeID, "GetVolume answered another volume")
        // An ID with a URL no StorageClass or flag could give is not one the controller made.
        guard let id = VolumeID(parsing: request.volumeID),
            id.heketiURL.isEmpty || (try? StorageClassParameters.url(id.heketiURL)) == id.heketiURL
        else { return }
        checkVolume(response.volume)
    }

    static func checkCapacity(_: Csi_V1_GetCapacityRequest, _ response: Csi_V1_GetCapacityResponse, _: ControllerRun) {
        expect(response.availableCapacity >= 0, "negative capacity \(response.availableCapacity)")
    }
}

// MARK: - Node

/// One node call: the service over a fake mounter and probe.
final class NodeRun: Sendable {
    static let kubeletDirectory: KubeletDirectory = {
        do {
            return try KubeletDirectory(FuzzFixture.kubeletDirectory)
        } catch {
            fatalError("kubelet directory: \(error)")
        }
    }()

    let mounter: FakeMounter
    let probe: FakeProbe
    let service: NodeService?
    let logs = RecordingLogHandler.Store()

    init(
        _ scenario: NodeScenario, stagingPath: String? = nil, targetPaths: [String] = [],
        volumeContext: [String: String] = [:]
    ) {
        let source = (try? GlusterVolumeSource(volumeContext: volumeContext))?.mountSource(nodeID: "fuzz-node")
        mounter = FakeMounter(
            stagingPath: stagingPath, targetPaths: targetPaths, mountSource: source ?? "gluster-1:/vol",
            scenario: scenario)
        probe = FakeProbe(answer: scenario.health)
        service = try? NodeService(
            nodeID: "fuzz-node", mounter: mounter, probe: probe, kubeletDirectory: Self.kubeletDirectory,
            logDirectory: FuzzFixture.logDirectory)
        expect(service != nil, "the node service does not start")
    }
}

extension CSIRequestsTarget {
    static func node<Request: Message, Response: Message>(
        _ name: String, paths: @escaping @Sendable (Request) -> (staging: String?, targets: [String]),
        context volumeContext: (@Sendable (Request) -> [String: String])? = nil,
        _ call: @escaping @Sendable (NodeService, Request, RequestContext) async throws -> Response
    ) -> Method {
        Method(name: name) { bytes, scenario in
            guard let request = decode(Request.self, bytes) else { return }
            let (staging, targets) = paths(request)
            let run = NodeRun(
                NodeScenario(scenario.0, scenario.1), stagingPath: staging, targetPaths: targets,
                volumeContext: volumeContext?(request) ?? [:])
            guard let service = run.service else { return }
            let context = context(run.logs)
            let outcome = Self.outcome { try await call(service, request, context) }
            checkOutcome(outcome, logs: run.logs)
            report(name, outcome, backend: run.mounter.calls + run.probe.probed.map { "probe \($0)" })
            // Whatever reached the mounter or the probe came from a request whose paths are all in
            // the kubelet directory.
            let touched = !run.mounter.calls.isEmpty || !run.probe.probed.isEmpty
            if touched {
                for path in [staging].compactMap({ $0 }) + targets {
                    expect(FuzzFixture.isConfined(path), "\(name) reached the mounter with the path '\(path)'")
                }
            }
            for path in run.probe.probed {
                expect(FuzzFixture.isConfined(path), "\(name) probed '\(path)'")
            }
        }
    }
}
