import CSICore
import ProcessSpawn

#if canImport(Glibc)
import Glibc
#endif

/// Where the glusterfs FUSE client of a staged volume runs (`--mount-placement`).
///
/// A client is a process. Left where the node plugin starts it — in the plugin container's cgroup
/// and PID namespace — it dies whenever that container stops (runtimes kill every process of the
/// container's cgroup; the kernel kills every process of a PID namespace whose init exits), and
/// every pod using the volume on the node gets "Transport endpoint is not connected".
public enum MountPlacement: String, CaseIterable, Sendable {
    /// The best that works here: systemd, else cgroup, else none.
    case auto
    /// A transient scope of the host's systemd per volume, created over D-Bus.
    case systemd
    /// A cgroup per volume that the driver makes outside its container, in the host's tree.
    case cgroup
    /// Where the plugin runs: the clients die with the plugin's container.
    case none
}

/// The unit a staged volume's client is placed in: `glusterfs-csi-<16 hex digits>`, derived from
/// the volume ID and the staging path alone, so any plugin instance — not only the one that
/// staged — finds it again, and two staging mounts of one volume (two node plugins on one test
/// machine) never share one.
public struct ClientUnit: Sendable, Hashable, CustomStringConvertible {
    /// The CSI volume ID the unit belongs to.
    public let volumeID: String
    /// The staging path the client serves.
    public let stagingPath: String
    /// `glusterfs-csi-` and the 64-bit FNV-1a hash of the volume ID, a NUL and the staging path, in
    /// hex: a valid systemd unit name and cgroup directory name whatever characters they hold.
    public let name: String

    /// What every unit's name starts with.
    public static let namePrefix = "glusterfs-csi-"

    /// The unit of the client serving `volumeID` at `stagingPath`.
    public init(volumeID: String, stagingPath: String) {
        self.volumeID = volumeID
        self.stagingPath = stagingPath
        let hex = String(fnv1a64(volumeID + "\u{0}" + stagingPath), radix: 16)
        name = Self.namePrefix + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The systemd scope's unit name.
    public var scopeName: String { name + ".scope" }

    public var description: String { name }
}

/// Puts the processes a Gluster mount starts — the mount helper and the glusterfs client it
/// leaves running — into a per-volume unit outside the node plugin's container, and removes
/// those units again.
///
/// The mount code is the same for every placement: the runner forks the helper, asks `prepare`
/// how it joins the unit (cgroups it writes itself into, or a gate at which it waits until
/// `adopt` placed it), and only then lets it exec. All methods block and are called on threads
/// that may block.
public protocol ClientPlacement: Sendable {
    /// Which placement this is.
    var kind: MountPlacement { get }
    /// Where units live, for log lines ("systemd scopes", "/sys/fs/cgroup/…/glusterfs-csi").
    var location: String { get }
    /// Makes `unit` ready to receive a process and says how a forked child joins it.
    func prepare(_ unit: ClientUnit) throws(PlacementError) -> SpawnPlacement
    /// Places the child `pid`, waiting at its gate, into `unit` (only for gated placements).
    func adopt(_ pid: pid_t, into unit: ClientUnit) throws(PlacementError)
    /// Ends what is left in `unit` — waiting up to `grace` for its processes to exit by
    /// themselves, then SIGTERM, then SIGKILL — and removes it. A unit that does not exist is fine.
    func remove(_ unit: ClientUnit, grace: Duration) throws(PlacementError)
    /// The units earlier instances of the plugin left, looked at once at start-up: those still
    /// holding a client are left alone (their mounts are adopted as they are), empty ones are
    /// removed (a plugin that stopped between an unmount and the unit's removal).
    func reconcile() -> PlacementInventory
}

/// What `ClientPlacement.reconcile` found.
public struct PlacementInventory: Sendable, Equatable {
    /// Units that hold a client: the mounts of volumes staged before this instance started.
    public var running: [String]
    /// Empty units that were removed.
    public var removed: [String]

    /// - Parameters: the unit names of each kind.
    public init(running: [String] = [], removed: [String] = []) {
        self.running = running
        self.removed = removed
    }
}

/// A placement failed: the unit could not be made, joined or removed.
public struct PlacementError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What failed and what to do.
    public var description: String

    /// Creates the error with its message.
    public init(_ description: String) { self.description = description }

    /// UNAVAILABLE: the mount was not attempted (or its unit not removed), nothing is lost, and
    /// kubelet retries.
    public var csiError: CSIError { CSIError(.unavailable, description) }
}

/// `none`: children stay where the plugin runs.
public struct NoPlacement: ClientPlacement {
    /// Creates it.
    public init() {}
    public var kind: MountPlacement { .none }
    public var location: String { "the node plugin's own cgroup" }
    public func prepare(_ unit: ClientUnit) throws(PlacementError) -> SpawnPlacement { .inPlace }
    public func adopt(_ pid: pid_t, into unit: ClientUnit) throws(PlacementError) {}
    public func remove(_ unit: ClientUnit, grace: Duration) throws(PlacementError) {}
    public func reconcile() -> PlacementInventory { PlacementInventory() }
}

/// A placement and the unit to use, handed to `Mounter.mount` for the one mount that starts a
/// long-lived client.
public struct ClientPlacementRequest: Sendable {
    /// The placement.
    public var placement: any ClientPlacement
    /// The unit of the volume being mounted.
    public var unit: ClientUnit

    /// - Parameters: the placement and the unit.
    public init(_ placement: any ClientPlacement, unit: ClientUnit) {
        self.placement = placement
        self.unit = unit
    }
}
