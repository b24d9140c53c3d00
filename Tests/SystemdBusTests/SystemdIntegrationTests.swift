import Glibc
import Testing

@testable import SystemdBus

/// Against a real systemd; skipped unless GLUSTERFS_CSI_TEST_SYSTEMD=1.
///
/// GLUSTERFS_CSI_TEST_SYSTEMD_SOCKET names its socket: /run/systemd/private (the default) for a direct
/// connection, or /run/dbus/system_bus_socket for the system bus. A systemd 252 of its own runs as PID 1 of new
/// namespaces (tmpfs on /tmp, /var/tmp and /run BEFORE it starts, or its boot-time clean-up empties the machine's
/// /tmp; Tests/e2e/restart_harness.py's SystemdMachine does all that and keeps its cgroups below its own):
///
///     unshare --cgroup --pid --fork --mount --mount-proc --propagation private env container=x sh -c \
///         'mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /var/tmp && mount -t tmpfs tmpfs /run &&
///          exec /lib/systemd/systemd --system --unit=basic.target' &
///
/// Inside its PID and mount namespaces every test runs, the PIDs given to systemd being the PIDs it sees:
///
///     nsenter -t <systemd's PID> -m -p -C -- env GLUSTERFS_CSI_TEST_SYSTEMD=1 \
///         .build/debug/glusterfs-csiPackageTests.xctest --testing-library swift-testing --filter SystemdBusTests
///
/// Elsewhere, only the tests that need no shared PID namespace run, and `sharesPIDNamespace()` must say false:
/// in a PID namespace below systemd's (`nsenter ... -- unshare --pid --fork --mount-proc ...`: a pod without
/// hostPID), or outside it through /proc/<systemd's PID>/root/run/dbus/system_bus_socket. Outside it, systemd
/// refuses a direct connection (it cannot see the peer's PID), and the error must say so. Whether this process
/// shares systemd's PID namespace is judged independently of the code under test: PID 1 here is systemd.
@Suite(
    "SystemdBus against a real systemd", .serialized, .enabled(if: RealSystemd.enabled), .timeLimit(.minutes(2)))
struct SystemdIntegrationTests {
    static let socketPath = RealSystemd.socketPath

    let timeout = Duration.seconds(10)

    @Test("systemd answers with its version", .enabled(if: RealSystemd.connects))
    func version() throws {
        let connection = try SystemdConnection(socketPath: Self.socketPath, timeout: timeout)
        let version = try connection.version(timeout: timeout)
        #expect(version.first?.isNumber == true, "\(version)")
    }

    @Test("sharesPIDNamespace is true inside systemd's PID namespace", .enabled(if: RealSystemd.insideItsNamespace))
    func sharesPIDNamespace() throws {
        let connection = try SystemdConnection(socketPath: Self.socketPath, timeout: timeout)
        #expect(try connection.sharesPIDNamespace())
    }

    @Test(
        "outside systemd's PID namespace sharesPIDNamespace is false, or systemd refuses and the error says why",
        .enabled(if: !RealSystemd.insideItsNamespace))
    func doesNotSharePIDNamespace() throws {
        let connection: Result<SystemdConnection, SystemdError> = Result { () throws(SystemdError) in
            try SystemdConnection(socketPath: Self.socketPath, timeout: timeout)
        }
        switch connection {
        case .success(let connection):
            #expect(try !connection.sharesPIDNamespace())
        case .failure(let refusal):
            print("a direct connection from outside: \(refusal)")
            #expect((refusal.errno == ECONNRESET || refusal.errno == EPIPE) && RealSystemd.isDirect, "\(refusal)")
            #expect(refusal.description.contains("hostPID: true"), "\(refusal)")
        }
    }

    @Test("units systemd does not know: no state, stop and kill succeed", .enabled(if: RealSystemd.connects))
    func unknownUnits() throws {
        let connection = try SystemdConnection(socketPath: Self.socketPath, timeout: timeout)
        let name = Self.uniqueName()
        #expect(try connection.activeState(of: name, timeout: timeout) == nil)
        try connection.stop(unit: name, timeout: timeout)
        try connection.kill(unit: name, signal: SIGTERM, timeout: timeout)
        #expect(try connection.units(matching: name, timeout: timeout).isEmpty)
    }

    @Test(
        "a scope holds the process it was started for, a second one of that name is refused, killing empties it",
        .enabled(if: RealSystemd.insideItsNamespace))
    func scopeLifecycle() throws {
        let connection = try SystemdConnection(socketPath: Self.socketPath, timeout: timeout)
        let name = Self.uniqueName()
        let child = try Sleeper()
        let started = ContinuousClock.now
        try connection.startScope(name: name, description: "glusterfs-csi test scope", pid: child.pid, timeout: timeout)
        print("startScope took \(ContinuousClock.now - started)")
        let line = try #require(Self.systemdCgroupLine(of: child.pid))
        #expect(line.hasSuffix("/" + name), "\(line)")
        #expect(try connection.activeState(of: name, timeout: timeout) == "active")
        let listed = try connection.units(matching: "glusterfs-csi-test-*.scope", timeout: timeout)
        #expect(listed.contains(SystemdUnitStatus(name: name, activeState: "active")), "\(listed)")

        // Same name and PID again, as a retry after a lost connection would: already done.
        try connection.startScope(name: name, description: "glusterfs-csi test scope", pid: child.pid, timeout: timeout)
        // Same name, another process: refused, and the error says why.
        let other = try Sleeper()
        let error = #expect(throws: SystemdError.self) {
            try connection.startScope(name: name, description: "other", pid: other.pid, timeout: timeout)
        }
        print("a second scope of the same name: \(String(describing: error))")
        #expect(error?.isUnitExists == true)
        #expect(
            error?.description.contains("org.freedesktop.systemd1.UnitExists") == true, "\(String(describing: error))")
        #expect(error?.description.contains("systemctl stop \(name)") == true, "\(String(describing: error))")
        #expect(!(Self.systemdCgroupLine(of: other.pid) ?? "").hasSuffix("/" + name))

        try connection.kill(unit: name, signal: SIGTERM, timeout: timeout)
        #expect(child.wait() == SIGTERM)
        // Its only process gone, the scope is collected (CollectMode inactive-or-failed).
        #expect(try Self.eventually { try connection.activeState(of: name, timeout: timeout) == nil })
        #expect(try connection.units(matching: name, timeout: timeout).isEmpty)
    }

    @Test("stopping a scope kills what is in it and unloads it", .enabled(if: RealSystemd.insideItsNamespace))
    func stopScope() throws {
        let connection = try SystemdConnection(socketPath: Self.socketPath, timeout: timeout)
        let name = Self.uniqueName()
        let child = try Sleeper()
        try connection.startScope(name: name, description: "glusterfs-csi test scope", pid: child.pid, timeout: timeout)
        let started = ContinuousClock.now
        try connection.stop(unit: name, timeout: timeout)
        print("stop took \(ContinuousClock.now - started)")
        #expect(child.wait() == SIGTERM)
        #expect(try Self.eventually { try connection.activeState(of: name, timeout: timeout) == nil })
        // Stopping it again: nothing there, fine.
        try connection.stop(unit: name, timeout: timeout)
    }

    @Test("a scope for a process that does not exist fails with systemd's reason", .enabled(if: RealSystemd.connects))
    func scopeForMissingProcess() throws {
        let connection = try SystemdConnection(socketPath: Self.socketPath, timeout: timeout)
        let name = Self.uniqueName()
        let error = #expect(throws: SystemdError.self) {
            try connection.startScope(name: name, description: "none", pid: 1 << 30, timeout: timeout)
        }
        print("a scope for a missing process: \(String(describing: error))")
        #expect(error?.dbusName != nil, "\(String(describing: error))")
        #expect(error?.description.hasPrefix("StartTransientUnit \(name) for PID 1073741824: ") == true)
        #expect(try connection.activeState(of: name, timeout: timeout) == nil)
    }

    @Test(
        "after systemd re-executes itself (closing every private connection) the next call reconnects",
        .enabled(if: RealSystemd.insideItsNamespace && RealSystemd.isDirect))
    func reconnectsAfterDaemonReexec() throws {
        let connection = try SystemdConnection(socketPath: Self.socketPath, timeout: timeout)
        let before = try connection.version(timeout: timeout)
        #expect(try Sleeper.run(["/bin/systemctl", "daemon-reexec"]) == 0)
        #expect(try connection.version(timeout: timeout) == before)
        #expect(connection.slot.lost == 1)
        let name = Self.uniqueName()
        let child = try Sleeper()
        try connection.startScope(name: name, description: "after reexec", pid: child.pid, timeout: timeout)
        #expect(try connection.activeState(of: name, timeout: timeout) == "active")
        try connection.stop(unit: name, timeout: timeout)
        #expect(child.wait() == SIGTERM)
    }

    @Test(
        "calls made while systemd re-executes itself wait for it and succeed",
        .enabled(if: RealSystemd.insideItsNamespace && RealSystemd.isDirect))
    func callsDuringDaemonReexec() throws {
        let connection = try SystemdConnection(socketPath: Self.socketPath, timeout: timeout)
        let reexec = try Sleeper(["/bin/systemctl", "daemon-reexec"])
        let deadline = ContinuousClock.now + .seconds(2)
        var calls = 0
        while ContinuousClock.now < deadline {
            #expect(try connection.activeState(of: "init.scope", timeout: timeout) == "active")
            calls += 1
        }
        #expect(reexec.wait() == 0)
        print("\(calls) calls and \(connection.slot.lost) reconnects while systemd re-executed")
        #expect(connection.slot.lost >= 1, "\(calls) calls")
    }

    @Test("an idle connection is closed, and the next call opens another", .enabled(if: RealSystemd.connects))
    func idleConnectionIsClosed() throws {
        let connection = try SystemdConnection(
            socketPath: Self.socketPath, timeout: timeout, idleTimeout: .milliseconds(200))
        let version = try connection.version(timeout: timeout)
        // Calls closer together than the idle timeout keep it.
        for _ in 0..<5 {
            usleep(100_000)
            #expect(try connection.version(timeout: timeout) == version)
        }
        #expect(connection.slot.isConnected)
        #expect(connection.slot.opened == 1)
        #expect(try Self.eventually { !connection.slot.isConnected })
        #expect(try connection.version(timeout: timeout) == version)
        #expect(connection.slot.opened == 2)
        #expect(connection.slot.lost == 0)
    }

    @Test(
        "calls from many threads are serialised on one connection",
        .enabled(if: RealSystemd.insideItsNamespace))
    func concurrentCalls() async throws {
        let connection = try SystemdConnection(socketPath: Self.socketPath, timeout: timeout)
        let timeout = timeout
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for _ in 0..<20 {
                        _ = try connection.version(timeout: timeout)
                        #expect(try connection.activeState(of: Self.uniqueName(), timeout: timeout) == nil)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// A scope name no other test (or run) uses.
    static func uniqueName() -> String {
        "glusterfs-csi-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).scope"
    }

    /// The path of the name=systemd (v1) or unified (v2) line of /proc/<pid>/cgroup.
    static func systemdCgroupLine(of pid: pid_t) -> String? {
        guard let text = ProcFile.read("/proc/\(pid)/cgroup") else { return nil }
        let lines = text.split(separator: "\n").map(String.init)
        return lines.first { $0.contains(":name=systemd:") } ?? lines.first { $0.hasPrefix("0::") }
    }

    /// Polls `condition` for up to 5 s.
    static func eventually(_ condition: () throws -> Bool) throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            usleep(20_000)
        }
        return try condition()
    }
}

/// Where the real systemd is, read from the environment.
enum RealSystemd {
    /// GLUSTERFS_CSI_TEST_SYSTEMD=1 runs the tests.
    static let enabled = getenv("GLUSTERFS_CSI_TEST_SYSTEMD").map { String(cString: $0) == "1" } ?? false
    /// GLUSTERFS_CSI_TEST_SYSTEMD_SOCKET, default /run/systemd/private.
    static let socketPath =
        getenv("GLUSTERFS_CSI_TEST_SYSTEMD_SOCKET").map { String(cString: $0) } ?? "/run/systemd/private"
    /// Whether the socket is systemd's own (a direct connection), not a bus daemon's.
    static let isDirect = !socketPath.hasSuffix("dbus/system_bus_socket")
    /// Whether systemd is PID 1 of this process's PID namespace.
    static let insideItsNamespace = ProcFile.read("/proc/1/comm").map { $0.hasPrefix("systemd") } ?? false
    /// Whether a connection can be made at all (systemd refuses direct ones from processes it cannot see).
    static let connects = enabled && (try? SystemdConnection(socketPath: socketPath, timeout: .seconds(5))) != nil
}

/// A child process (`sleep 60` unless told otherwise), killed and reaped when the value goes away.
final class Sleeper {
    let pid: pid_t
    private var reaped = false

    init(_ arguments: [String] = ["/bin/sleep", "60"]) throws {
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // The test runs on a thread that blocks most signals (SIGTERM included), and a child inherits its mask:
        // it would ignore the SIGTERM systemd sends. Unblock all and restore default dispositions in the child.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let result = posix_spawn(&pid, arguments[0], nil, &attributes, argv, environ)
        guard result == 0 else {
            throw TestFailure("posix_spawn \(arguments[0]): \(String(cString: strerror(result)))")
        }
        self.pid = pid
    }

    /// Runs `arguments` to the end; its exit status.
    static func run(_ arguments: [String]) throws -> Int32 {
        let process = try Sleeper(arguments)
        var status: Int32 = 0
        while waitpid(process.pid, &status, 0) < 0 && errno == EINTR {}
        process.reaped = true
        return (status >> 8) & 0xff
    }

    /// Waits for the child to end; the signal that ended it, or 0 when it exited.
    func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        reaped = true
        return status & 0x7f
    }

    deinit {
        guard !reaped else { return }
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}
