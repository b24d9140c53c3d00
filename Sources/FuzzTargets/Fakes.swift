import CSICore
import Glibc
import Heketi
import Logging
import Node
import Synchronization

@testable import Controller

// The backends of the CSI requests target. They answer questions (what exists, what is mounted)
// from a scenario the input chose, record every call, and refuse every change with an error: a
// request is followed to the handler's first backend call, and nothing outside the process is
// ever touched.

/// A Heketi that has the volumes a scenario says and refuses every change.
final class FakeHeketi: HeketiAPI {
    /// A change the controller asked for.
    enum Change: Sendable {
        case create(VolumeCreateRequest)
        case expand(id: String, deltaGiB: Int)
        case clone(id: String, name: String)
        case delete(id: String)
    }

    /// What the refused changes end with.
    static let refusal = HeketiError.invalidRequest("the fuzz target's Heketi makes no changes")
    static let clusterID = "c0ffee0000000000000000000000000c"
    static let listedID = "0123456789abcdef0123456789abcdef"

    let endpoint: HeketiEndpoint
    let scenario: ControllerScenario
    private let recorded: Mutex<[Change]> = Mutex([])

    init(endpoint: HeketiEndpoint, scenario: ControllerScenario) {
        self.endpoint = endpoint
        self.scenario = scenario
    }

    var changes: [Change] { recorded.withLock { $0 } }

    private func refuse(_ change: Change) throws(HeketiError) -> Never {
        recorded.withLock { $0.append(change) }
        throw Self.refusal
    }

    private func existing(_ id: String) -> HeketiVolume {
        let name =
            scenario.volumesAreSnapshots
            ? HeketiSnapshotName(
                csiName: "snapshot-" + id, createdSeconds: 1_764_662_400, sourceHeketiID: Self.listedID
            )
            .value : "vol_" + id.prefix(8)
        return HeketiVolume(
            id: id, name: name, sizeGiB: scenario.existingSizeGiB, clusterID: Self.clusterID,
            gid: 2001, durability: .replicate(3), hosts: ["10.0.0.11", "gluster-2.example.com"], brickCount: 3)
    }

    func volumeIDs() async throws(HeketiError) -> [String] { scenario.listsVolume ? [Self.listedID] : [] }

    func volume(id: String) async throws(HeketiError) -> HeketiVolume {
        if scenario.volumesGone { throw .notFound("Id not found") }
        return existing(id)
    }

    func createVolume(_ request: VolumeCreateRequest) async throws(HeketiError) -> HeketiVolume {
        try refuse(.create(request))
    }

    func expandVolume(id: String, deltaGiB: Int) async throws(HeketiError) -> HeketiVolume {
        try refuse(.expand(id: id, deltaGiB: deltaGiB))
    }

    func cloneVolume(id: String, name: String) async throws(HeketiError) -> HeketiVolume {
        try refuse(.clone(id: id, name: name))
    }

    func deleteVolume(id: String) async throws(HeketiError) { try refuse(.delete(id: id)) }

    func clusterIDs() async throws(HeketiError) -> [String] { [Self.clusterID] }

    func cluster(id: String) async throws(HeketiError) -> HeketiCluster {
        guard id == Self.clusterID else { throw .notFound("Id not found") }
        return HeketiCluster(id: id, nodeIDs: ["feed0001", "feed0002"], volumeIDs: [])
    }

    func node(id: String) async throws(HeketiError) -> HeketiNode {
        HeketiNode(
            id: id, clusterID: Self.clusterID, storageHostnames: ["10.0.0.11"], online: true,
            devices: [HeketiNode.Device(name: "/dev/sdb", totalKiB: 104_857_600, freeKiB: 52_428_800, online: true)])
    }

    func operationsInFlight() async throws(HeketiError) -> Int { 0 }
}

/// The Heketi side of a scenario, from one input byte.
struct ControllerScenario: Sendable {
    /// The controller runs without --heketi-url.
    var noDefaultHeketi: Bool
    /// The size of every volume Heketi has.
    var existingSizeGiB: Int
    /// Heketi answers "Id not found" for every volume.
    var volumesGone: Bool
    /// `GET /volumes` lists one volume.
    var listsVolume: Bool
    /// Every volume Heketi has is named as a snapshot's clone.
    var volumesAreSnapshots: Bool

    init(_ byte: UInt8) {
        noDefaultHeketi = byte & 1 != 0
        existingSizeGiB = [1, 2, 10, 100][Int(byte >> 1) & 3]
        volumesGone = byte & 8 != 0
        listsVolume = byte & 16 != 0
        volumesAreSnapshots = byte & 32 != 0
    }
}

/// The mount side of a scenario, from two input bytes: what is mounted at the request's paths and
/// what a stat of them says.
struct NodeScenario: Sendable {
    var stagingFSType: String
    var stagingSourceMatches: Bool
    var stagingReadOnly: Bool
    /// 0: a bind of the staging mount, 1: the same read-only, 2: another client of the same
    /// volume, 3: a tmpfs.
    var targetKind: Int
    var health: PathHealth
    var tableUnreadable: Bool

    init(_ first: UInt8, _ second: UInt8) {
        stagingFSType = ["fuse.glusterfs", "fuse.glusterfs", "ext4", "proc"][Int(first) & 3]
        stagingSourceMatches = first & 4 != 0
        stagingReadOnly = first & 8 != 0
        targetKind = Int(first >> 4) & 3
        let answers: [PathHealth] = [
            .healthy, .corrupted(reason: "Transport endpoint is not connected"), .missing, .failed(errno: ENOTDIR),
        ]
        health = answers[Int(first >> 6)]
        tableUnreadable = second & 1 != 0
    }
}

/// A mount table with an entry at every path of the request, so that no handler finds a path
/// unmounted and goes on to create or remove directories. It refuses every change, and checks
/// that the node only ever unmounts what it mounted.
final class FakeMounter: Mounter {
    static let refusal = MountError(kind: .system("the fuzz target's mounter makes no changes"), command: ["mount"])

    let table: [MountInfo]
    let unreadable: Bool
    private let recorded: Mutex<[String]> = Mutex([])

    /// - Parameters: the paths of the request (staging first) and the scenario; the staging
    ///   source is what `volumeContext` names when the scenario says it matches.
    init(stagingPath: String?, targetPaths: [String], mountSource: String, scenario: NodeScenario) {
        var table: [MountInfo] = []
        let staging = MountInfo(
            mountID: 100, parentID: 1, major: 0, minor: 50, root: "/", mountPoint: stagingPath ?? "/staging",
            mountOptions: [scenario.stagingReadOnly ? "ro" : "rw", "relatime"], fsType: scenario.stagingFSType,
            source: scenario.stagingSourceMatches ? mountSource : "other-host:/other-volume", superOptions: ["rw"])
        if stagingPath != nil { table.append(staging) }
        for (offset, path) in targetPaths.enumerated() {
            var target = staging
            target.mountID = 101 + offset
            target.mountPoint = path
            switch scenario.targetKind {
            case 0: break
            case 1: target.mountOptions[0] = "ro"
            case 2: target.minor = 51
            default:
                target.fsType = "tmpfs"
                target.source = "tmpfs"
                target.minor = 52
            }
            table.append(target)
        }
        self.table = table
        self.unreadable = scenario.tableUnreadable
    }

    /// What was asked of the mounter, in order.
    var calls: [String] { recorded.withLock { $0 } }

    private func record(_ call: String) { recorded.withLock { $0.append(call) } }

    func mountTable() throws(MountError) -> [MountInfo] {
        record("mountTable")
        if unreadable { throw Self.refusal }
        return table
    }

    func unmount(target: String, timeout: Duration) async throws(MountError) -> UnmountOutcome {
        record("unmount \(target)")
        let top = table.last { $0.mountPoint == target }
        expect(top?.fsType == "fuse.glusterfs", "unmounted \(target), where \(top?.fsType ?? "nothing") is mounted")
        throw Self.refusal
    }

    func mount(
        source: String, target: String, fsType: String, options: [String], timeout: Duration,
        placement: ClientPlacementRequest?
    ) async throws(MountError) {
        record("mount \(target)")
        expect(false, "mounted at \(target), which the table has mounted already: the harness touched the disk")
    }

    func bindMount(source: String, target: String, timeout: Duration) async throws(MountError) {
        record("bind \(target)")
        expect(false, "bound at \(target), which the table has mounted already: the harness touched the disk")
    }

    func remountReadOnly(target: String, timeout: Duration) async throws(MountError) {
        record("remount \(target)")
        throw Self.refusal
    }
}

/// A probe that answers the scenario's health for every path and records which it was asked.
final class FakeProbe: FileSystemProbe {
    let answer: PathHealth
    private let recorded: Mutex<[String]> = Mutex([])

    init(answer: PathHealth) { self.answer = answer }

    var probed: [String] { recorded.withLock { $0 } }

    func health(of path: String, timeout: Duration) async -> PathHealth {
        recorded.withLock { $0.append(path) }
        return answer
    }

    func healthAndUsage(of path: String, timeout: Duration) async -> HealthAndUsage {
        recorded.withLock { $0.append(path) }
        let usage = FilesystemUsage(
            totalBytes: 10 << 30, availableBytes: 6 << 30, usedBytes: 4 << 30, totalInodes: 1000,
            availableInodes: 700, usedInodes: 300)
        return (answer, answer == .healthy ? usage : nil)
    }
}

/// A log handler at trace level that keeps every line (message and metadata as text), so a target
/// can look for what must never be logged.
struct RecordingLogHandler: LogHandler {
    final class Store: Sendable {
        let lines = Mutex<[String]>([])
    }

    let store: Store
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        for (key, value) in event.metadata ?? [:] { merged[key] = value }
        let line = "\(event.level) \(event.message) " + merged.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        store.lines.withLock { $0.append(line) }
    }
}
