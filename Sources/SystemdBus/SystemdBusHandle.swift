import CSystemdShim

#if canImport(Glibc)
import Glibc
#endif

/// Owns one `csd_bus` (an sd-bus connection to systemd's manager) and closes it in `deinit`; one Swift method per
/// shim function, each turning the shim's `csd_error` into a `SystemdError`.
///
/// Not `Sendable`: the connection is not thread-safe. `SystemdConnection` keeps it inside a `Mutex`, so one
/// thread at a time uses it. Every method BLOCKS for up to its timeout.
final class SystemdBusHandle {
    /// OWNED; closed in deinit.
    private let bus: OpaquePointer
    /// The socket connected to.
    let socketPath: String
    /// Whether this is a client of a bus daemon rather than a direct connection to systemd.
    let isBusClient: Bool

    /// Connects to `socketPath` and waits until the connection is usable, for at most `timeout`.
    init(socketPath: String, busClient: Bool, timeout: Duration) throws(SystemdError) {
        var error = csd_error()
        var bus: OpaquePointer?
        let code = csd_bus_open(socketPath, busClient ? 1 : 0, Self.microseconds(timeout), &bus, &error)
        guard code >= 0, let bus else {
            throw SystemdError(error, hint: Self.connectHint(error, socketPath: socketPath, busClient: busClient))
        }
        self.bus = bus
        self.socketPath = socketPath
        isBusClient = busClient
    }

    deinit {
        csd_bus_close(bus)
    }

    /// False once the connection ended (systemd closed it, as it does with every private connection when it
    /// re-executes itself, or a read or write failed): a new one is needed.
    var isOpen: Bool { csd_bus_is_open(bus) != 0 }

    /// The PID of the process that listens on the socket (systemd, also for its socket-activated bus daemon), as
    /// this process sees it; 0 when it is not visible in this PID namespace.
    func peerPID() throws(SystemdError) -> pid_t {
        var error = csd_error()
        var pid: pid_t = 0
        guard csd_bus_peer_pid(bus, &pid, &error) >= 0 else { throw SystemdError(error) }
        return pid
    }

    /// For a bus client: the PID of the owner of bus name `name`, as the bus daemon sees it.
    func ownerPID(ofName name: String, timeout: Duration) throws(SystemdError) -> pid_t {
        var error = csd_error()
        var pid: pid_t = 0
        guard csd_bus_name_owner_pid(bus, name, Self.microseconds(timeout), &pid, &error) >= 0 else {
            throw SystemdError(error)
        }
        return pid
    }

    /// The manager's Version property.
    func version(timeout: Duration) throws(SystemdError) -> String {
        var error = csd_error()
        var version = [CChar](repeating: 0, count: 256)
        let code = version.withUnsafeMutableBufferPointer {
            csd_manager_version(bus, Self.microseconds(timeout), $0.baseAddress, $0.count, &error)
        }
        guard code >= 0 else { throw SystemdError(error, hint: Self.callHint(error)) }
        return Self.string(version)
    }

    /// StartTransientUnit of scope `name` holding `pid`; returns once its start job is done.
    func startScope(name: String, description: String, pid: pid_t, timeout: Duration) throws(SystemdError) {
        var error = csd_error()
        guard csd_unit_start_scope(bus, name, description, pid, Self.microseconds(timeout), &error) >= 0 else {
            let hint: String? =
                if error.code == -EIO {
                    "`journalctl -u \(name)` on the node says why"
                } else if SystemdError.string(fromCString: error.name) == SystemdError.unitExists {
                    "a unit of that name is still loaded; stop it first (`systemctl stop \(name)`)"
                } else {
                    Self.callHint(error)
                }
            throw SystemdError(error, hint: hint)
        }
    }

    /// StopUnit and wait for its job; a unit systemd does not know is stopped already.
    func stop(unit: String, timeout: Duration) throws(SystemdError) {
        var error = csd_error()
        guard csd_unit_stop(bus, unit, Self.microseconds(timeout), &error) >= 0 else {
            throw SystemdError(error, hint: Self.callHint(error))
        }
    }

    /// KillUnit(unit, "all", signal); a unit systemd does not know is no error.
    func kill(unit: String, signal: Int32, timeout: Duration) throws(SystemdError) {
        var error = csd_error()
        guard csd_unit_kill(bus, unit, signal, Self.microseconds(timeout), &error) >= 0 else {
            throw SystemdError(error, hint: Self.callHint(error))
        }
    }

    /// The unit's ActiveState, or nil when systemd does not know it.
    func activeState(of unit: String, timeout: Duration) throws(SystemdError) -> String? {
        var error = csd_error()
        var state = [CChar](repeating: 0, count: 64)
        let code = state.withUnsafeMutableBufferPointer {
            csd_unit_active_state(bus, unit, Self.microseconds(timeout), $0.baseAddress, $0.count, &error)
        }
        guard code >= 0 else { throw SystemdError(error, hint: Self.callHint(error)) }
        return code == 0 ? nil : Self.string(state)
    }

    /// The loaded units whose names match `pattern`, with their ActiveState.
    func units(matching pattern: String, timeout: Duration) throws(SystemdError) -> [SystemdUnitStatus] {
        var error = csd_error()
        var units: [SystemdUnitStatus] = []
        // The visitor cannot capture (it is a C function pointer): the array travels as its context.
        let code = withUnsafeMutablePointer(to: &units) { context in
            csd_manager_list_units(
                bus, pattern, Self.microseconds(timeout),
                { context, name, activeState in
                    guard let context, let name, let activeState else { return }
                    context.assumingMemoryBound(to: [SystemdUnitStatus].self).pointee.append(
                        SystemdUnitStatus(name: String(cString: name), activeState: String(cString: activeState)))
                }, context, &error)
        }
        guard code >= 0 else { throw SystemdError(error, hint: Self.callHint(error)) }
        return units
    }

    /// A timeout for the shim: whole microseconds, at least 1 (the shim reads 0 as 1 too, but a negative
    /// duration must not wrap around).
    static func microseconds(_ duration: Duration) -> UInt64 {
        guard duration > .zero else { return 1 }
        // Both components are non-negative for a positive duration.
        let (seconds, attoseconds) = duration.components
        let (scaled, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000)
        if overflow { return UInt64.max }
        let total = scaled.addingReportingOverflow(UInt64(attoseconds) / 1_000_000_000_000)
        return total.overflow ? UInt64.max : max(1, total.partialValue)
    }

    /// What to do about a failed connect.
    private static func connectHint(_ error: csd_error, socketPath: String, busClient: Bool) -> String? {
        switch -error.code {
        case ELIBACC:
            // The loader's sentence already says what to install.
            return nil
        case ECONNRESET where !busClient, EPIPE where !busClient:
            // systemd closes a private connection at once when the peer is not root, or when it cannot see the
            // peer's PID (the peer lives outside its PID namespace and the namespaces below it); its journal says
            // "Incoming private connection from unprivileged client, refusing". Our handshake then meets a reset
            // or a broken pipe, whichever comes first.
            return "systemd refused the connection: it accepts private connections only from root processes it can "
                + "see; run the node plugin as root in the host's PID namespace (hostPID: true)"
        case ENOENT, ECONNREFUSED, ENOTDIR:
            return "check that systemd runs on the node and that its \(directory(of: socketPath)) is mounted at "
                + "the same path into the node plugin's container"
        case EACCES, EPERM:
            return "connecting to systemd needs root (the node plugin runs as root, privileged)"
        case ETIMEDOUT:
            return "systemd may be hung or overloaded; `systemctl status` on the node tells"
        default:
            return nil
        }
    }

    /// What to do about a failed call.
    private static func callHint(_ error: csd_error) -> String? {
        switch -error.code {
        case ETIMEDOUT:
            return "systemd may be busy (a long job queue) or hung; `systemctl list-jobs` on the node tells"
        case ECONNRESET, ENOTCONN, EPIPE, ESHUTDOWN:
            return "systemd closed the connection (it does when it re-executes itself); the next request reconnects"
        default:
            return nil
        }
    }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return path }
        return String(path[..<slash])
    }

    private static func string(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
