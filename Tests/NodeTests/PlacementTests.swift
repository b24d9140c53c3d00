import CSICore
import Glibc
import Logging
import ProcessSpawn
import Synchronization
import Testing

@testable import Node

/// Runs `body` on a thread of its own. Placements block (sleeps between signals, fork, D-Bus), and
/// the cooperative pool that every other test shares must not wait for them: on two cores a
/// four-second removal starved timing-sensitive tests elsewhere.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await BlockingThread.run { Result { try body() } }.get()
}

/// A placement that records what the service asks of it.
final class RecordingPlacement: ClientPlacement {
    enum Call: Equatable {
        case prepare(String)
        case remove(String)
    }

    let recorded = Mutex<[Call]>([])
    let removeFailure: PlacementError?
    var calls: [Call] { recorded.withLock { $0 } }

    init(removeFailure: PlacementError? = nil) { self.removeFailure = removeFailure }

    var kind: MountPlacement { .cgroup }
    var location: String { "recorded" }
    func prepare(_ unit: ClientUnit) throws(PlacementError) -> SpawnPlacement {
        recorded.withLock { $0.append(.prepare(unit.name)) }
        return .inPlace
    }
    func adopt(_ pid: pid_t, into unit: ClientUnit) throws(PlacementError) {}
    func remove(_ unit: ClientUnit, grace: Duration) throws(PlacementError) {
        recorded.withLock { $0.append(.remove(unit.name)) }
        if let removeFailure { throw removeFailure }
    }
    func reconcile() -> PlacementInventory { PlacementInventory() }
}

@Suite("Client units and cgroup membership")
struct ClientUnitTests {
    @Test(
        "a unit's name is derived from the volume ID and staging path: stable, distinct, safe for systemd and cgroupfs")
    func names() {
        let id = "v1:0123abcd:http://heketi:8080"
        let unit = ClientUnit(volumeID: id, stagingPath: "/var/lib/kubelet/plugins/x/globalmount")
        #expect(unit == ClientUnit(volumeID: id, stagingPath: "/var/lib/kubelet/plugins/x/globalmount"))
        #expect(unit.name.hasPrefix("glusterfs-csi-"))
        let hex = unit.name.dropFirst("glusterfs-csi-".count)
        #expect(hex.count == 16 && hex.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        #expect(unit.scopeName == unit.name + ".scope")
        // The same FNV-1a 64 the client log's name uses (docs/upgrade.md shows how to compute it).
        #expect(unit.name == "glusterfs-csi-" + String(fnv1a64(id + "\u{0}" + unit.stagingPath), radix: 16))
        #expect(ClientUnit(volumeID: "v1:0123abce:http://heketi:8080", stagingPath: unit.stagingPath).name != unit.name)
        // Two staging mounts of one volume (two node plugins on one machine) have two units.
        #expect(ClientUnit(volumeID: id, stagingPath: "/other/globalmount").name != unit.name)
        // Leading zeros are kept: every name has the same length.
        #expect(ClientUnit(volumeID: "", stagingPath: "").name.count == unit.name.count)
    }

    static let container = CgroupMembership(
        parsing:
            "9:name=systemd:/kubepods/pod1/c1\n8:pids:/kubepods/pod1/c1\n4:memory:/kubepods/pod1/c1\n3:cpuset:/\n0::/")

    @Test(
        "where a process sits relative to its container's cgroups",
        arguments: [
            // Moved out everywhere the container is confined.
            (
                "9:name=systemd:/glusterfs-csi/u\n8:pids:/glusterfs-csi/u\n4:memory:/glusterfs-csi/u\n3:cpuset:/x\n0::/x",
                [String]()
            ),
            // Still inside in one hierarchy (pids), or exactly the container's cgroup (memory).
            (
                "9:name=systemd:/glusterfs-csi/u\n8:pids:/kubepods/pod1/c1/sub\n4:memory:/kubepods/pod1/c1",
                ["4:memory", "8:pids"]
            ),
            // A sibling whose name starts like the container's is not inside.
            ("9:name=systemd:/kubepods/pod1/c10\n8:pids:/x\n4:memory:/x", []),
            // Outside a private namespace's root.
            ("9:name=systemd:/../../u\n8:pids:/../u\n4:memory:/../../../u", []),
        ])
    func inside(placed: String, expected: [String]) {
        let membership = CgroupMembership(parsing: placed)
        #expect(membership.hierarchiesInside(Self.container, rootIsNamespaced: false) == expected)
    }

    @Test("the root confines a process only when it is the root of a private cgroup namespace")
    func namespacedRoot() {
        let container = CgroupMembership(parsing: "0::/")
        #expect(
            CgroupMembership(parsing: "0::/glusterfs-csi/u").hierarchiesInside(container, rootIsNamespaced: false)
                .isEmpty)
        #expect(
            CgroupMembership(parsing: "0::/glusterfs-csi/u").hierarchiesInside(container, rootIsNamespaced: true) == [
                "0:"
            ])
        #expect(
            CgroupMembership(parsing: "0::/../glusterfs-csi/u").hierarchiesInside(container, rootIsNamespaced: true)
                .isEmpty)
    }

    @Test("a unit is found by the last component of a cgroup path")
    func containsUnit() {
        let membership = CgroupMembership(parsing: "1:name=systemd:/system.slice/glusterfs-csi-00ff.scope\n0::/")
        #expect(membership.contains(unitNamed: "glusterfs-csi-00ff.scope"))
        #expect(!membership.contains(unitNamed: "glusterfs-csi-00f"))
    }
}

@Suite("CgroupPlacement on a pretend tree")
struct CgroupPlacementTreeTests {
    @Test("no cgroup tree at the root is an error that says what to mount")
    func notATree() {
        let directory = makeTemporaryDirectory()
        defer { removeTree(directory) }
        #expect(throws: PlacementError.self) { try CgroupPlacement(root: directory) }
        let error = try? CgroupPlacement(root: directory + "/missing")
        #expect(error == nil)
    }

    @Test("cgroup v2: one tree, units under <root>/glusterfs-csi")
    func v2() throws {
        let root = makeTemporaryDirectory()
        defer { removeTree(root) }
        try writeFile(root + "/cgroup.controllers", "cpu memory pids\n")
        let placement = try CgroupPlacement(root: root)
        #expect(placement.hierarchies == [root])
        let unit = ClientUnit(volumeID: "vol-1", stagingPath: "/staging")
        let spawn = try placement.prepare(unit)
        #expect(spawn.cgroupFiles == ["\(root)/glusterfs-csi/\(unit.name)/cgroup.procs"])
        #expect(spawn.cgroupNamespace == "/proc/1/ns/cgroup")
        #expect(!spawn.gated)
        #expect(fileExists("\(root)/glusterfs-csi/\(unit.name)"))
        try placement.remove(unit, grace: .zero)
        #expect(!fileExists("\(root)/glusterfs-csi/\(unit.name)"))
        try placement.remove(unit, grace: .zero)  // gone already: fine
    }

    @Test("at start-up, units that hold a client are kept and empty ones removed")
    func reconcile() throws {
        let root = makeTemporaryDirectory()
        defer { removeTree(root) }
        try writeFile(root + "/cgroup.controllers", "pids\n")
        let parent = root + "/glusterfs-csi"
        for name in ["glusterfs-csi-00000000000000aa", "glusterfs-csi-00000000000000bb", "someone-else"] {
            mkdir(parent, 0o755)
            mkdir("\(parent)/\(name)", 0o755)
        }
        try writeFile("\(parent)/glusterfs-csi-00000000000000bb/cgroup.procs", "4242\n")
        // Empty but just made: another instance may be about to move a helper into it.
        #expect(try CgroupPlacement(root: root).reconcile().removed.isEmpty)
        var old = [timespec(tv_sec: 1_000_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000_000, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, "\(parent)/glusterfs-csi-00000000000000aa", &old, 0) == 0)
        let inventory = try CgroupPlacement(root: root).reconcile()
        #expect(
            inventory
                == PlacementInventory(
                    running: ["glusterfs-csi-00000000000000bb"], removed: ["glusterfs-csi-00000000000000aa"]))
        #expect(!fileExists("\(parent)/glusterfs-csi-00000000000000aa"))
        #expect(fileExists("\(parent)/someone-else"))
    }

    @Test("cgroup v1: every mounted hierarchy once, symlinks and plain files skipped")
    func v1() throws {
        let root = makeTemporaryDirectory()
        defer { removeTree(root) }
        for name in ["pids", "memory", "cpu,cpuacct"] {
            mkdir("\(root)/\(name)", 0o755)
            try writeFile("\(root)/\(name)/cgroup.procs", "")
        }
        symlink("cpu,cpuacct", "\(root)/cpu")
        mkdir("\(root)/not-a-hierarchy", 0o755)
        try writeFile("\(root)/stray", "")
        let placement = try CgroupPlacement(root: root)
        #expect(placement.hierarchies == ["\(root)/cpu,cpuacct", "\(root)/memory", "\(root)/pids"])
        #expect(placement.location == "\(root)/*/glusterfs-csi")
    }
}

/// Whether this process may make cgroups in this machine's v1 tree (root, cgroup v1).
let realCgroupsWritable = getuid() == 0 && access("/sys/fs/cgroup/pids/cgroup.procs", W_OK) == 0

@Suite("CgroupPlacement on the real cgroup tree", .enabled(if: realCgroupsWritable))
struct CgroupPlacementRealTests {
    @Test("a placed command and what it leaves running are in the unit in every hierarchy; remove ends them")
    func placesAndRemoves() async throws {
        let placement = try CgroupPlacement(root: "/sys/fs/cgroup")
        let unit = ClientUnit(
            volumeID: "placement test", stagingPath: "\(getpid()) \(UInt32.random(in: 0...UInt32.max))")
        defer { try? placement.remove(unit, grace: .zero) }
        // Like mount.glusterfs: the command exits, a daemon it started stays.
        let result = try await SystemCommandRunner().run(
            "/bin/sh", ["-c", "setsid sleep 60 >/dev/null 2>&1 < /dev/null & echo $!"], timeout: .seconds(10),
            placement: ClientPlacementRequest(placement, unit: unit))
        let daemon = try #require(pid_t(result.output.trimmingWhitespace()))
        #expect(placement.processes(in: unit) == [daemon])
        let membership = try #require(CgroupMembership.of("\(daemon)"))
        for hierarchy in placement.hierarchies {
            let controllers = String(hierarchy.split(separator: "/").last!)
            let line = membership.paths.first { key, _ in
                key.split(separator: ":", omittingEmptySubsequences: false).dropFirst().first.map {
                    $0.split(separator: ",").contains(Substring(controllers)) || $0 == "name=\(controllers)"
                        || (controllers == "unified" && $0.isEmpty)
                } ?? false
            }
            #expect(line?.value == "/glusterfs-csi/\(unit.name)", "hierarchy \(hierarchy)")
        }

        try await blocking { try placement.remove(unit, grace: .milliseconds(100)) }
        #expect(placement.processes(in: unit).isEmpty)
        #expect(placement.directories(of: unit).allSatisfy { !fileExists($0) })
        // SIGTERM ended it: gone, or a zombie until its parent (not us) reaps it.
        let state = processStateText(daemon)
        #expect(state == nil || state == "Z")
    }

    /// A real cgroup2 hierarchy where this machine has one (the hybrid layout's `unified`): the
    /// placement treats it as a v2 tree, one directory per unit.
    static let cgroup2 = "/sys/fs/cgroup/unified"

    @Test(
        "on a cgroup v2 tree the unit is one directory, and the client is in it",
        .enabled(if: fileExists(cgroup2 + "/cgroup.controllers")))
    func cgroupV2() async throws {
        let placement = try CgroupPlacement(root: Self.cgroup2)
        #expect(placement.hierarchies == [Self.cgroup2])
        let unit = ClientUnit(volumeID: "v2 test", stagingPath: "\(getpid()) \(UInt32.random(in: 0...UInt32.max))")
        defer { try? placement.remove(unit, grace: .zero) }
        let result = try await SystemCommandRunner().run(
            "/bin/sh", ["-c", "setsid sleep 60 >/dev/null 2>&1 < /dev/null & echo $!"], timeout: .seconds(10),
            placement: ClientPlacementRequest(placement, unit: unit))
        let daemon = try #require(pid_t(result.output.trimmingWhitespace()))
        #expect(placement.processes(in: unit) == [daemon])
        #expect(CgroupMembership.of("\(daemon)")?.paths["0:"] == "/glusterfs-csi/\(unit.name)")
        try await blocking { try placement.remove(unit, grace: .milliseconds(100)) }
        #expect(!fileExists("\(Self.cgroup2)/glusterfs-csi/\(unit.name)"))
    }

    @Test("the start-up trial passes here: the placed child leaves this process's cgroups")
    func trial() async throws {
        let placement = try CgroupPlacement(root: "/sys/fs/cgroup")
        #expect(try await blocking { PlacementSelector.trial(placement, mustLeaveOwnCgroups: true) } == nil)
    }
}

func processStateText(_ pid: pid_t) -> String? {
    guard let bytes = try? FileIO.readAll("/proc/\(pid)/stat") else { return nil }
    let text = String(decoding: bytes, as: UTF8.self)
    guard let close = text.lastIndex(of: ")") else { return nil }
    return text[text.index(close, offsetBy: 2)...].split(separator: " ").first.map(String.init)
}

/// systemd as far as the placement sees it: a scope is a real cgroup in the pids hierarchy named
/// like the scope, so the check that the process landed in it is real; signals are delivered to
/// the processes in it; an empty scope is collected, as systemd does.
final class FakeScopes: SystemdScopes {
    struct State {
        var calls: [String] = []
        var units: Set<String> = []
    }

    let state = Mutex(State())
    var calls: [String] { state.withLock { $0.calls } }
    /// When set, units never look empty (a scope systemd keeps for its own reasons).
    let neverEmpty: Bool

    init(neverEmpty: Bool = false) { self.neverEmpty = neverEmpty }

    func directory(_ unit: String) -> String { "/sys/fs/cgroup/pids/\(unit)" }

    func pids(_ unit: String) -> [pid_t] {
        let bytes = (try? FileIO.readAll(directory(unit) + "/cgroup.procs")) ?? []
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { pid_t($0) }
    }

    func startScope(name: String, description: String, pid: Int32, timeout: Duration) throws {
        let exists = state.withLock { state -> Bool in
            state.calls.append("start \(name) \(description) \(pid)")
            return state.units.contains(name)
        }
        if exists { throw PlacementError("org.freedesktop.systemd1.UnitExists: Unit \(name) already exists.") }
        mkdir(directory(name), 0o755)
        try FileIO.write(Array("\(pid)".utf8), to: directory(name) + "/cgroup.procs")
        state.withLock { _ = $0.units.insert(name) }
    }

    func activeState(of unit: String, timeout: Duration) throws -> String? {
        guard state.withLock({ $0.units.contains(unit) }) else { return nil }
        if pids(unit).isEmpty && !neverEmpty {
            rmdir(directory(unit))
            state.withLock { _ = $0.units.remove(unit) }
            return nil
        }
        return "active"
    }

    func kill(unit: String, signal: Int32, timeout: Duration) throws {
        state.withLock { $0.calls.append("kill \(unit) \(signal)") }
        for pid in pids(unit) { Glibc.kill(pid, signal) }
    }

    func unitNames(matching pattern: String, timeout: Duration) throws -> [String] {
        let prefix = String(pattern.prefix { $0 != "*" })
        return state.withLock { $0.units.filter { $0.hasPrefix(prefix) }.sorted() }
    }

    func stop(unit: String, timeout: Duration) throws {
        state.withLock { state in
            state.calls.append("stop \(unit)")
            state.units.remove(unit)
        }
        for pid in pids(unit) { Glibc.kill(pid, SIGKILL) }
        for _ in 0..<200 where rmdir(directory(unit)) != 0 { usleep(10_000) }
    }
}

@Suite("SystemdScopePlacement (fake systemd, real cgroups)", .enabled(if: realCgroupsWritable))
struct SystemdScopePlacementTests {
    static func unit(_ label: String) -> ClientUnit {
        ClientUnit(volumeID: label, stagingPath: "\(getpid()) \(UInt32.random(in: 0...UInt32.max))")
    }

    @Test("the helper waits at its gate until systemd holds it in the volume's scope, then runs")
    func adoptsAtTheGate() async throws {
        let scopes = FakeScopes()
        let placement = SystemdScopePlacement(systemd: scopes)
        let unit = Self.unit("gate")
        defer { try? placement.remove(unit, grace: .zero) }
        let result = try await SystemCommandRunner().run(
            "/bin/cat", ["/proc/self/cgroup"], timeout: .seconds(10),
            placement: ClientPlacementRequest(placement, unit: unit))
        #expect(result.output.contains(":pids:/\(unit.scopeName)\n"))
        #expect(scopes.calls.count == 1)
        #expect(
            scopes.calls[0].hasPrefix(
                "start \(unit.scopeName) glusterfs-csi: glusterfs client of volume \(unit.volumeID) "))
        // The command exited: the scope is empty, and removing it costs no signal.
        try await blocking { try placement.remove(unit, grace: .seconds(1)) }
        #expect(scopes.calls.count == 1)
    }

    @Test("on cgroup v1 the helper first joins the root of every hierarchy, so systemd's scope is all it is in")
    func leavesUnmanagedHierarchies() async throws {
        let scopes = FakeScopes()
        let placement = SystemdScopePlacement(systemd: scopes, cgroupRoot: "/sys/fs/cgroup")
        #expect(placement.v1Hierarchies == CgroupPlacement.v1Hierarchies(under: "/sys/fs/cgroup"))
        let unit = Self.unit("roots")
        defer { try? placement.remove(unit, grace: .zero) }
        let result = try await SystemCommandRunner().run(
            "/bin/cat", ["/proc/self/cgroup"], timeout: .seconds(10),
            placement: ClientPlacementRequest(placement, unit: unit))
        let paths = CgroupMembership(parsing: result.output).paths
        // The fake systemd manages the pids hierarchy only; everywhere else the helper is at the root.
        #expect(paths.filter { $0.key.hasSuffix(":pids") }.values.first == "/\(unit.scopeName)")
        #expect(paths.filter { !$0.key.hasSuffix(":pids") && !$0.key.hasPrefix("0:") }.values.allSatisfy { $0 == "/" })
    }

    @Test("a scope systemd says it made but that does not hold the process is an error about hostPID")
    func wrongPIDNamespace() throws {
        struct Liar: SystemdScopes {
            func startScope(name: String, description: String, pid: Int32, timeout: Duration) throws {}
            func activeState(of unit: String, timeout: Duration) throws -> String? { nil }
            func kill(unit: String, signal: Int32, timeout: Duration) throws {}
            func stop(unit: String, timeout: Duration) throws {}
            func unitNames(matching pattern: String, timeout: Duration) throws -> [String] { [] }
        }
        let placement = SystemdScopePlacement(systemd: Liar())
        let error = #expect(throws: PlacementError.self) {
            try placement.adopt(getpid(), into: ClientUnit(volumeID: "v", stagingPath: "/s"))
        }
        #expect(error?.description.contains("hostPID: true") == true)
    }

    @Test("an old scope of the volume that still holds a client is ended and the start retried")
    func oldScope() async throws {
        let scopes = FakeScopes()
        let placement = SystemdScopePlacement(systemd: scopes)
        let unit = Self.unit("old")
        defer { try? placement.remove(unit, grace: .zero) }
        // An earlier client of the volume, still running in the scope.
        async let old = SystemCommandRunner().run(
            "/bin/sleep", ["60"], timeout: .seconds(30), placement: ClientPlacementRequest(placement, unit: unit))
        for _ in 0..<500 where scopes.pids(unit.scopeName).isEmpty { try await Task.sleep(for: .milliseconds(10)) }

        let result = try await SystemCommandRunner().run(
            "/bin/true", [], timeout: .seconds(10), placement: ClientPlacementRequest(placement, unit: unit))
        #expect(result.termination == .exited(0))
        #expect(try await old.termination == .signaled(SIGTERM))
        let starts = scopes.calls.filter { $0.hasPrefix("start ") }.count
        #expect(starts == 3, "the old one, the refused one, the retry: \(scopes.calls)")
        #expect(scopes.calls.contains("kill \(unit.scopeName) \(SIGTERM)"))
    }

    @Test("a client that ignores SIGTERM after its mount is gone gets SIGKILL")
    func removeEscalates() async throws {
        let scopes = FakeScopes()
        let placement = SystemdScopePlacement(systemd: scopes)
        let unit = Self.unit("stubborn")
        async let stubborn = SystemCommandRunner().run(
            "/bin/sh", ["-c", "trap '' TERM; sleep 60"], timeout: .seconds(30),
            placement: ClientPlacementRequest(placement, unit: unit))
        for _ in 0..<500 where scopes.pids(unit.scopeName).count < 2 { try await Task.sleep(for: .milliseconds(10)) }
        try await blocking { try placement.remove(unit, grace: .milliseconds(50)) }
        #expect(try await stubborn.termination == .signaled(SIGKILL))
        #expect(
            scopes.calls.dropFirst() == ["kill \(unit.scopeName) \(SIGTERM)", "kill \(unit.scopeName) \(SIGKILL)"])
    }

    @Test("at start-up, every scope of ours systemd lists holds a client")
    func reconcile() throws {
        let scopes = FakeScopes()
        let placement = SystemdScopePlacement(systemd: scopes)
        let unit = Self.unit("listed")
        let child = try ChildProcess("/bin/true", [], environment: [], placement: SpawnPlacement(gated: true))
        try scopes.startScope(name: unit.scopeName, description: "x", pid: child.pid, timeout: .seconds(1))
        let inventory = placement.reconcile()
        // The child goes (and is reaped) first: the fake's stop then finds an empty cgroup.
        child.abandon()
        try scopes.stop(unit: unit.scopeName, timeout: .seconds(1))
        #expect(inventory == PlacementInventory(running: [unit.name]))
    }

    @Test("a scope systemd keeps although it is empty is stopped")
    func removeStops() async throws {
        let scopes = FakeScopes(neverEmpty: true)
        let placement = SystemdScopePlacement(systemd: scopes)
        let unit = Self.unit("kept")
        let child = try ChildProcess("/bin/true", [], environment: [], placement: SpawnPlacement(gated: true))
        try scopes.startScope(name: unit.scopeName, description: "x", pid: child.pid, timeout: .seconds(1))
        child.abandon()
        try await blocking { try placement.remove(unit, grace: .milliseconds(20)) }
        #expect(scopes.calls.last == "stop \(unit.scopeName)")
    }
}

@Suite("PlacementSelector")
struct PlacementSelectorTests {
    static func noSystemd() -> Result<any SystemdScopes, PlacementError> {
        .failure(PlacementError("systemd does not answer on /run/systemd/private: no such file"))
    }

    @Test("none is none, without a reason, and the start-up line warns what a restart does")
    func none() {
        let choice = PlacementSelector.choose(
            requested: .none, cgroupRoot: "/nonexistent", connectSystemd: Self.noSystemd)
        #expect(choice.placement.kind == .none)
        #expect(choice.reasons.isEmpty)
        let logs = RecordingLogHandler.Store()
        choice.log(to: Logger(label: "t") { _ in RecordingLogHandler(store: logs) })
        let lines = logs.messages.withLock { $0 }
        #expect(lines.count == 1)
        #expect(lines.first?.0 == .warning)
        #expect(logs.everything.contains("kills the glusterfs client of every volume"))
        #expect(logs.everything.contains("hostPID: true"))
    }

    @Test("auto falls back through systemd and cgroup to none, naming each cause")
    func autoFallsBack() {
        let choice = PlacementSelector.choose(
            requested: .auto, cgroupRoot: "/nonexistent", connectSystemd: Self.noSystemd)
        #expect(choice.placement.kind == .none)
        #expect(choice.reasons.count == 2)
        #expect(choice.reasons[0].hasPrefix("systemd: systemd does not answer"))
        #expect(choice.reasons[1].hasPrefix("cgroup: "))
    }

    @Test("an explicit systemd that does not work falls back to none, not to cgroup")
    func explicitSystemd() {
        let choice = PlacementSelector.choose(
            requested: .systemd, cgroupRoot: "/sys/fs/cgroup", connectSystemd: Self.noSystemd)
        #expect(choice.placement.kind == .none)
        #expect(choice.reasons.count == 1)
    }

    // Where this test runs in exactly PID 1's cgroups, the driver would take itself for a
    // container's init's sibling and rightly refuse: nothing to test there.
    @Test(
        "auto takes cgroup where it works",
        .enabled(if: realCgroupsWritable && Namespaces.privatePIDNamespaceReason() == nil))
    func autoTakesCgroup() async throws {
        let choice = try await blocking {
            PlacementSelector.choose(
                requested: .auto, cgroupRoot: "/sys/fs/cgroup", connectSystemd: Self.noSystemd)
        }
        #expect(choice.placement.kind == .cgroup, "\(choice.reasons)")
        let logs = RecordingLogHandler.Store()
        choice.log(to: Logger(label: "t") { _ in RecordingLogHandler(store: logs) })
        #expect(logs.messages.withLock { $0.first?.0 } == .warning, "not the best placement: say why")
    }
}

@Suite("NodeService and its client placement")
struct NodeServicePlacementTests {
    @Test("staging mounts into the volume's unit; unstaging removes the unit after unmounting")
    func stageAndUnstage() async throws {
        let placement = RecordingPlacement()
        let fixture = Fixture(placement: placement)
        try await fixture.stage()
        #expect(fixture.mounter.placedUnits == [ClientUnit(volumeID: "vol-1", stagingPath: fixture.staging)])
        _ = try await fixture.service.unstageVolume(fixture.unstageRequest(), context: fixture.context)
        #expect(placement.calls == [.remove(ClientUnit(volumeID: "vol-1", stagingPath: fixture.staging).name)])
        #expect(fixture.mounter.calls.last == .unmount(target: fixture.staging))
    }

    @Test(
        "unstaging a volume nothing is mounted for still removes its unit (its client died, or another instance staged it)"
    )
    func unstageWithoutMount() async throws {
        let placement = RecordingPlacement()
        let fixture = Fixture(placement: placement)
        _ = try await fixture.service.unstageVolume(fixture.unstageRequest(), context: fixture.context)
        #expect(placement.calls == [.remove(ClientUnit(volumeID: "vol-1", stagingPath: fixture.staging).name)])
    }

    @Test("a volume still published keeps its client's unit when the staging mount goes")
    func stillPublished() async throws {
        let placement = RecordingPlacement()
        let fixture = Fixture(placement: placement)
        try await fixture.stage()
        try await fixture.publish()
        _ = try await fixture.service.unstageVolume(fixture.unstageRequest(), context: fixture.context)
        #expect(placement.calls.isEmpty)
    }

    @Test("a unit that cannot be removed fails the unstage with UNAVAILABLE, so kubelet retries")
    func removeFails() async throws {
        let placement = RecordingPlacement(removeFailure: PlacementError("cannot remove the cgroup x: busy"))
        let fixture = Fixture(placement: placement)
        let error = await csiError {
            _ = try await fixture.service.unstageVolume(fixture.unstageRequest(), context: fixture.context)
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("cannot remove the cgroup x") == true)
    }

    @Test("recovering a dead mount removes the dead client's unit before the new client starts in it")
    func recovery() async throws {
        let placement = RecordingPlacement()
        let fixture = Fixture(placement: placement)
        try await fixture.stage()
        fixture.probe.set(fixture.staging, .corrupted(reason: "Transport endpoint is not connected"))
        try await fixture.stage()
        #expect(placement.calls == [.remove(ClientUnit(volumeID: "vol-1", stagingPath: fixture.staging).name)])
        #expect(fixture.mounter.placedUnits.count == 2)
    }

    @Test("a failed mount removes what it left in the unit")
    func failedMount() async throws {
        let placement = RecordingPlacement()
        let fixture = Fixture(placement: placement)
        fixture.mounter.failMounts([MountError(kind: .failed(.exited(1)), command: ["mount"], output: "no")])
        _ = await csiError { try await fixture.stage() }
        #expect(placement.calls == [.remove(ClientUnit(volumeID: "vol-1", stagingPath: fixture.staging).name)])
    }

    @Test("a placement failure is UNAVAILABLE and says the mount was not run")
    func placementFailure() {
        let error = MountError(
            kind: .placement("cannot move /bin/mount into the cgroup /x: Permission denied"), command: ["/bin/mount"])
        #expect(error.csiError.code == .unavailable)
        #expect(error.csiError.message.contains("was not run: cannot move /bin/mount into the cgroup /x"))
    }
}
