import CSICore
import ProcessSpawn

#if canImport(Glibc)
import Glibc
#endif

/// What `SystemdScopePlacement` needs of systemd's D-Bus API. The driver implements it with
/// libsystemd's sd-bus (target SystemdBus); tests with a fake. Every method blocks.
public protocol SystemdScopes: Sendable {
    /// StartTransientUnit of scope `name` holding `pid`; returns once its start job finished.
    func startScope(name: String, description: String, pid: Int32, timeout: Duration) throws
    /// The unit's ActiveState, or nil when systemd does not know it.
    func activeState(of unit: String, timeout: Duration) throws -> String?
    /// Sends `signal` to every process of the unit; a unit that does not exist is fine.
    func kill(unit: String, signal: Int32, timeout: Duration) throws
    /// Stops the unit and waits for the job; a unit that does not exist is fine.
    func stop(unit: String, timeout: Duration) throws
    /// The names of the loaded units that match the glob `pattern`.
    func unitNames(matching pattern: String, timeout: Duration) throws -> [String]
}

/// `systemd`: each volume's client in a transient scope of the host's systemd,
/// `glusterfs-csi-<hash>.scope`, as `systemd-run --scope` would make it (and as the in-tree
/// plugin did): the helper is forked, waits at a gate while systemd moves it into the new scope,
/// then execs; the client it starts is born in the scope. systemd owns the scope from then on —
/// it outlives the plugin — and collects it when its last process exits.
///
/// On cgroup v1, systemd moves a scope's processes only in the hierarchies it manages; in the
/// others (freezer, cpuset, net_cls, …) the helper would stay in the plugin container's cgroup,
/// frozen whenever the runtime freezes the container to stop it, and keeping that cgroup busy so
/// it can never be removed. So before the gate the helper joins the root cgroup of every v1
/// hierarchy of the host's tree — where the host's own services sit in those — and systemd then
/// takes it from there into the scope wherever it manages.
public struct SystemdScopePlacement: ClientPlacement {
    /// The connection to systemd.
    public let systemd: any SystemdScopes
    /// The host's v1 hierarchies (empty on cgroup v2, or without the host's tree).
    public let v1Hierarchies: [String]
    /// Bound on each D-Bus call.
    public let callTimeout: Duration
    /// How often `remove` asks whether the scope is gone.
    static let pollInterval: Duration = .milliseconds(20)

    /// A placement over `systemd`; `cgroupRoot` is the host's cgroup tree (`--cgroup-root`), or
    /// nil where it is not available.
    public init(systemd: any SystemdScopes, cgroupRoot: String? = nil, callTimeout: Duration = .seconds(10)) {
        self.systemd = systemd
        self.callTimeout = callTimeout
        if let cgroupRoot, FileIO.size(cgroupRoot + "/cgroup.controllers") == nil {
            v1Hierarchies = CgroupPlacement.v1Hierarchies(under: cgroupRoot)
        } else {
            v1Hierarchies = []
        }
    }

    public var kind: MountPlacement { .systemd }
    public var location: String { "systemd scopes glusterfs-csi-*.scope" }

    public func prepare(_ unit: ClientUnit) throws(PlacementError) -> SpawnPlacement {
        SpawnPlacement(
            cgroupFiles: v1Hierarchies.map { $0 + "/cgroup.procs" },
            cgroupNamespace: v1Hierarchies.isEmpty ? nil : CgroupPlacement.hostCgroupNamespace, gated: true)
    }

    public func adopt(_ pid: pid_t, into unit: ClientUnit) throws(PlacementError) {
        let description = "glusterfs-csi: glusterfs client of volume \(unit.volumeID) at \(unit.stagingPath)"
        do {
            try systemd.startScope(name: unit.scopeName, description: description, pid: pid, timeout: callTimeout)
        } catch {
            // A scope of this name that still holds processes is the remains of an earlier client
            // of this volume (a hung one that a forced unmount left behind): nothing mounts
            // through it any more. Stop it and try once more.
            guard (try? systemd.activeState(of: unit.scopeName, timeout: callTimeout)) != nil else {
                throw failure("cannot start the systemd scope \(unit.scopeName)", error)
            }
            try remove(unit, grace: .zero)
            do {
                try systemd.startScope(name: unit.scopeName, description: description, pid: pid, timeout: callTimeout)
            } catch {
                throw failure("cannot start the systemd scope \(unit.scopeName) after stopping an old one", error)
            }
        }
        // systemd moves the PID it was given; if the plugin does not share systemd's PID
        // namespace that is another process. Check it is ours that moved.
        guard let membership = CgroupMembership.of("\(pid)"), membership.contains(unitNamed: unit.scopeName) else {
            throw PlacementError(
                "systemd started \(unit.scopeName) but process \(pid) is not in it; the node plugin must share "
                    + "the host's PID namespace (hostPID: true)")
        }
    }

    public func remove(_ unit: ClientUnit, grace: Duration) throws(PlacementError) {
        let clock = ContinuousClock()
        do {
            guard try systemd.activeState(of: unit.scopeName, timeout: callTimeout) != nil else { return }
            // The client exits by itself once its mount is gone, and systemd collects the empty
            // scope; signals only for what lingers.
            for (signal, wait) in [(Int32(0), grace), (SIGTERM, Duration.seconds(2)), (SIGKILL, Duration.seconds(2))] {
                if signal != 0 { try systemd.kill(unit: unit.scopeName, signal: signal, timeout: callTimeout) }
                let deadline = clock.now.advanced(by: wait)
                while clock.now < deadline, try systemd.activeState(of: unit.scopeName, timeout: callTimeout) != nil {
                    sleepBlocking(Self.pollInterval)
                }
                if try systemd.activeState(of: unit.scopeName, timeout: callTimeout) == nil { return }
            }
            // Still known (an abandoned or failed scope): stopping it makes systemd let it go.
            try systemd.stop(unit: unit.scopeName, timeout: callTimeout)
        } catch {
            throw failure("cannot remove the systemd scope \(unit.scopeName) of volume \(unit.volumeID)", error)
        }
    }

    /// systemd collects a scope once it is empty, so every scope of ours it lists holds a client.
    public func reconcile() -> PlacementInventory {
        let names = (try? systemd.unitNames(matching: ClientUnit.namePrefix + "*.scope", timeout: callTimeout)) ?? []
        return PlacementInventory(running: names.map { String($0.dropLast(".scope".count)) }.sorted())
    }

    private func failure(_ what: String, _ error: any Error) -> PlacementError {
        PlacementError("\(what): \(error); check that the host's /run/systemd is mounted and systemd runs")
    }
}
