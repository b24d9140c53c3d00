#if canImport(Glibc)
import Glibc
#endif

/// A unit systemd has loaded, as `SystemdConnection.units(matching:timeout:)` lists it.
public struct SystemdUnitStatus: Sendable, Equatable {
    /// The unit's name, e.g. `glusterfs-csi-0123456789abcdef.scope`.
    public var name: String
    /// Its ActiveState: `active`, `activating`, `deactivating`, `inactive`, `failed`, ...
    public var activeState: String

    /// A unit named `name` in state `activeState`.
    public init(name: String, activeState: String) {
        self.name = name
        self.activeState = activeState
    }
}

/// A connection to systemd's manager over D-Bus (libsystemd's sd-bus, loaded on first use), with what the node
/// plugin needs to run each glusterfs client in a transient scope of its own, as `systemd-run --scope` does: so
/// the client belongs to systemd, not to the plugin's container, and survives the plugin's restart.
///
/// Every method BLOCKS the calling thread for up to its timeout (a connect, a D-Bus round trip, a wait for a
/// job): call them from a dedicated thread (`BlockingThread`, a `DedicatedThreadExecutor`), never from Swift's
/// cooperative pool. Calls are serialised: one at a time uses the connection, the others wait for it.
///
/// The sd-bus connection underneath comes and goes; callers do not see it. systemd closes its private
/// connections when it re-executes itself (`systemctl daemon-reexec`, a package upgrade): a call that finds the
/// connection closed, or loses it on the way, opens a new one (waiting, within the connect timeout, for systemd
/// to listen again) and tries once more. And a connection idle for a few seconds is closed, because systemd
/// sends every direct connection all its signals, which pile up unread (see `BusSlot`); the next call opens a
/// new one (about 3 ms, against 0.2 ms for a call on an open connection).
public final class SystemdConnection: Sendable {
    /// The socket connected to.
    public let socketPath: String
    /// True when `socketPath` is a bus daemon's socket (the system bus) rather than systemd's own.
    public let isBusClient: Bool
    /// The bound on a connect, and on the bus daemon question of `sharesPIDNamespace()`.
    private let connectTimeout: Duration
    /// The connection, when one is open.
    let slot: BusSlot

    /// systemd's well-known bus name.
    static let managerName = "org.freedesktop.systemd1"

    /// Connects to systemd at `socketPath` and waits, at most `timeout`, until the connection is usable. A path
    /// ending in `dbus/system_bus_socket` is a bus daemon's (the system bus): the connection is a bus client
    /// there. Any other path is a socket systemd itself listens on, such as `/run/systemd/private`: a direct
    /// connection, which needs no bus daemon and works early in boot. BLOCKS.
    ///
    /// Throws when libsystemd cannot be loaded, nothing listens at the path, systemd refuses the connection (it
    /// does when it cannot see this process: outside its PID namespace), or the handshake does not finish in
    /// time; the error says which and what to do. Later connects (after a lost or idle connection) use `timeout`
    /// too.
    public convenience init(socketPath: String, timeout: Duration) throws(SystemdError) {
        try self.init(socketPath: socketPath, timeout: timeout, idleTimeout: .seconds(5))
    }

    /// As the public initialiser, closing the connection after `idleTimeout` without calls.
    init(socketPath: String, timeout: Duration, idleTimeout: Duration) throws(SystemdError) {
        self.socketPath = socketPath
        isBusClient = socketPath.hasSuffix("dbus/system_bus_socket")
        connectTimeout = timeout
        let first = try SystemdBusHandle(socketPath: socketPath, busClient: isBusClient, timeout: timeout)
        slot = BusSlot(first, connectTimeout: timeout, idleTimeout: idleTimeout)
    }

    deinit {
        slot.retire()
    }

    /// Whether systemd runs in this process's PID namespace, so that a PID this process gives it (the one
    /// `startScope` moves) means the same process to systemd. BLOCKS (at most the connect timeout).
    ///
    /// True when the process at the other end of the socket is visible here and its `/proc/<pid>/ns/pid` is
    /// ours; through a bus daemon, the same must hold for the owner of `org.freedesktop.systemd1` too. False in a
    /// container with a PID namespace of its own (a pod without `hostPID: true`).
    public func sharesPIDNamespace() throws(SystemdError) -> Bool {
        let timeout = connectTimeout
        return try withBus { (bus) throws(SystemdError) -> Bool in
            let peer = try bus.peerPID()
            guard peer > 0, try PIDNamespace.isOurs(peer) else { return false }
            guard bus.isBusClient else { return true }
            // The daemon answers with a PID of its own namespace. The peer just checked is the process that
            // listens on the socket: the daemon, or systemd when it activated the daemon's socket (as Debian's
            // dbus.socket does), and either lives with the daemon on any sane node.
            let manager = try bus.ownerPID(ofName: Self.managerName, timeout: timeout)
            guard manager > 0 else { return false }
            return try PIDNamespace.isOurs(manager)
        }
    }

    /// systemd's version (its manager's `Version` property, e.g. "252.39-1~deb12u2"): proof that it answers.
    /// BLOCKS for up to `timeout`.
    public func version(timeout: Duration) throws(SystemdError) -> String {
        try withBus { (bus) throws(SystemdError) -> String in try bus.version(timeout: timeout) }
    }

    /// Puts process `pid` into a new transient scope unit `name` (ending in `.scope`), the way
    /// `systemd-run --scope` does: StartTransientUnit with `description`, the PID, and CollectMode
    /// `inactive-or-failed` (systemd forgets the scope once its processes are gone or it is stopped); returns
    /// once the scope's start job is done. BLOCKS for up to `timeout`, the wait for the job included.
    ///
    /// `pid` is read in systemd's PID namespace: check `sharesPIDNamespace()` first. Throws when systemd
    /// refuses (`isUnitExists` when a unit of that name is loaded and `pid` is not in it; a scope of that name
    /// that already holds `pid` is success, so a retry after a lost connection is harmless), when the job ends
    /// otherwise than "done", or when the timeout passes.
    public func startScope(name: String, description: String, pid: Int32, timeout: Duration) throws(SystemdError) {
        do throws(SystemdError) {
            try withBus { (bus) throws(SystemdError) in
                try bus.startScope(name: name, description: description, pid: pid, timeout: timeout)
            }
        } catch let error where error.isUnitExists && Self.process(pid, isInUnit: name) {
            return
        }
    }

    /// The unit's ActiveState (`active`, `activating`, `deactivating`, `inactive`, `failed`, ...), or nil when
    /// systemd does not know it (never created, or collected). BLOCKS for up to `timeout`.
    public func activeState(of unit: String, timeout: Duration) throws(SystemdError) -> String? {
        try withBus { (bus) throws(SystemdError) -> String? in try bus.activeState(of: unit, timeout: timeout) }
    }

    /// Sends `signal` to every process of `unit` (KillUnit, who = "all"). A unit systemd does not know, or one
    /// without processes, is no error. Returns once systemd has sent the signals, not once the processes exited.
    /// BLOCKS for up to `timeout`.
    public func kill(unit: String, signal: Int32, timeout: Duration) throws(SystemdError) {
        try withBus { (bus) throws(SystemdError) in try bus.kill(unit: unit, signal: signal, timeout: timeout) }
    }

    /// Stops `unit` (StopUnit, mode "replace": systemd sends what is left in it SIGTERM, and SIGKILL after the
    /// unit's stop timeout, 90 s by default) and returns once the stop job is done. A unit systemd does not know
    /// is already stopped. BLOCKS for up to `timeout`, the wait for the job included: a process that ignores
    /// SIGTERM makes the call fail at `timeout` while systemd carries on (`kill(unit:signal:timeout:)` with
    /// SIGKILL first avoids that).
    public func stop(unit: String, timeout: Duration) throws(SystemdError) {
        try withBus { (bus) throws(SystemdError) in try bus.stop(unit: unit, timeout: timeout) }
    }

    /// The units systemd has loaded whose names match the shell-style `pattern` (e.g. `glusterfs-csi-*.scope`),
    /// whatever their state, with their ActiveState. BLOCKS for up to `timeout`.
    public func units(matching pattern: String, timeout: Duration) throws(SystemdError) -> [SystemdUnitStatus] {
        try withBus { (bus) throws(SystemdError) -> [SystemdUnitStatus] in
            try bus.units(matching: pattern, timeout: timeout)
        }
    }

    /// Runs `body` with an open connection (see `BusSlot.withBus`).
    private func withBus<T: Sendable>(
        _ body: (SystemdBusHandle) throws(SystemdError) -> T
    ) throws(SystemdError) -> T {
        try slot.withBus(body)
    }

    /// Whether process `pid` sits in a cgroup named `unit` in some hierarchy (`/proc/<pid>/cgroup`).
    static func process(_ pid: Int32, isInUnit unit: String) -> Bool {
        guard let text = ProcFile.read("/proc/\(pid)/cgroup") else { return false }
        return text.split(separator: "\n").contains { line in
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            return fields.count == 3 && fields[2].split(separator: "/").last.map(String.init) == unit
        }
    }
}
