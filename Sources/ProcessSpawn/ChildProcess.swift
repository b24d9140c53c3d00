import CSpawnShim
import Glibc

/// Where a child goes between fork and exec.
public struct SpawnPlacement: Sendable, Equatable {
    /// cgroup.procs files the child writes itself into before it execs (the cgroup placement).
    public var cgroupFiles: [String]
    /// A cgroup namespace file (`/proc/1/ns/cgroup`) the child enters when the kernel refuses a
    /// move from the namespace it was born in; nil: a refused move fails the start.
    public var cgroupNamespace: String?
    /// Whether the child waits at a gate until `ChildProcess.release()` (the systemd placement:
    /// the scope must hold the child before it starts anything).
    public var gated: Bool

    /// No placement: the child stays where the caller is and execs at once.
    public static let inPlace = SpawnPlacement()

    /// - Parameters: see the properties.
    public init(cgroupFiles: [String] = [], cgroupNamespace: String? = nil, gated: Bool = false) {
        self.cgroupFiles = cgroupFiles
        self.cgroupNamespace = cgroupNamespace
        self.gated = gated
    }
}

/// A child could not be started, or not placed where it was asked to go.
public struct SpawnFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The step that failed.
    public enum Stage: Sendable, Equatable {
        /// Creating pipes or forking: the program never ran.
        case fork
        /// Moving the child into this cgroup (a directory) was refused.
        case cgroupJoin(String)
        /// Moving the child into `cgroup` was refused (with `moveError`), and entering the
        /// cgroup namespace `namespace` to retry failed (with the failure's `errno`).
        case cgroupNamespace(namespace: String, cgroup: String, moveError: Int32)
        /// exec failed (missing program, no permission).
        case exec
        /// The child ended before it could report (killed from outside).
        case vanished
    }

    /// The program that was to run.
    public var executable: String
    /// The step that failed.
    public var stage: Stage
    /// The `errno` of that step (0 for `.vanished`).
    public var errno: Int32

    /// Creates a failure; the spawner and test fakes use this.
    public init(executable: String, stage: Stage, errno: Int32) {
        self.executable = executable
        self.stage = stage
        self.errno = errno
    }

    public var description: String {
        let reason = String(cString: strerror(errno))
        switch stage {
        case .fork, .exec:
            return "cannot start \(executable): \(reason)"
        case .cgroupJoin(let directory):
            return "cannot move \(executable) into the cgroup \(directory): \(reason)"
        case .cgroupNamespace(let namespace, let cgroup, let moveError):
            return "cannot move \(executable) into the cgroup \(cgroup): \(String(cString: strerror(moveError))); "
                + "entering the host's cgroup namespace (\(namespace)) to retry failed: \(reason)"
        case .vanished:
            return "\(executable) ended before it started"
        }
    }
}

/// A program started with `spawn`: its pid (also its process group ID) and the read end of the
/// pipe holding its stdout and stderr.
///
/// A gated child waits, already placed in its cgroups, until `release()` or `abandon()`. Every
/// started child must be waited for exactly once with `wait(timeout:outputLimit:)` (after
/// `release()` for a gated one); `abandon()` and a failed `release()` reap it themselves.
/// Not thread-safe: one thread at a time, and every call blocks.
public final class ChildProcess {
    /// The child's pid, which is also its process group ID.
    public let pid: pid_t
    private var child: cspawn_child
    private let output: Int32
    private let executable: String
    private var finished = false

    /// Starts `executable` (an absolute path) with `arguments` (argv[0] excluded) and exactly
    /// `environment` (`NAME=value`), stdin on /dev/null, stdout and stderr into a pipe, in a
    /// process group of its own, placed as `placement` says. Blocks only until the child exec'd
    /// or waits at its gate.
    public init(
        _ executable: String, _ arguments: [String], environment: [String], placement: SpawnPlacement = .inPlace
    ) throws(SpawnFailure) {
        var fds: [Int32] = [-1, -1]
        guard cspawn_pipe(&fds) == 0 else {
            throw SpawnFailure(executable: executable, stage: .fork, errno: Glibc.errno)
        }
        // Non-blocking read end: `wait` drains it without ever waiting on it, because a daemon the
        // child leaves behind (the glusterfs client) may keep the write end open forever.
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        defer { close(fds[1]) }

        let argv = CStringArray([executable] + arguments)
        let envp = CStringArray(environment)
        let cgroupFiles = CStringArray(placement.cgroupFiles)
        var started = cspawn_child()
        var failure = cspawn_failure()
        let status = withExtendedLifetime((argv, envp, cgroupFiles)) { () -> Int32 in
            executable.withCString { path in
                Self.withOptionalCString(placement.cgroupNamespace) { namespace in
                    var request = cspawn_request()
                    request.path = path
                    request.argv = argv.mutablePointers
                    request.envp = envp.mutablePointers
                    request.output_fd = fds[1]
                    request.cgroup_files = cgroupFiles.constPointers
                    request.cgroup_count = placement.cgroupFiles.count
                    request.cgroup_namespace = namespace
                    request.gated = placement.gated ? 1 : 0
                    // Registered under the registry's lock: an orphan reaper never takes a child
                    // of ours for an orphan in the moment between fork and registration.
                    return ChildRegistry.registering { () -> (pid_t, Int32) in
                        let status = cspawn_start(&request, &started, &failure)
                        return (status == 0 ? started.pid : 0, status)
                    }
                }
            }
        }
        guard status == 0 else {
            close(fds[0])
            throw Self.failure(failure, executable: executable, placement: placement)
        }
        self.pid = started.pid
        self.child = started
        self.output = fds[0]
        self.executable = executable
    }

    deinit {
        close(output)
    }

    /// Lets a gated child exec. Throws when its exec fails (the child is reaped then). A no-op for
    /// an ungated child.
    public func release() throws(SpawnFailure) {
        var failure = cspawn_failure()
        guard cspawn_release(&child, 1, &failure) == 0 else {
            finished = true
            ChildRegistry.forget(pid)
            throw Self.failure(failure, executable: executable, placement: .inPlace)
        }
    }

    /// Makes a gated child exit without exec'ing, and reaps it.
    public func abandon() {
        var failure = cspawn_failure()
        _ = cspawn_release(&child, 0, &failure)
        finished = true
        ChildRegistry.forget(pid)
    }

    /// Waits for the child, collecting its output, and kills its process group at the deadline.
    ///
    /// Blocks (call it from a thread that may block). Poll intervals are short (≤ 20 ms) only
    /// while the pipe is open or after it closed; the common case — the child writes, exits, the
    /// pipe hits EOF — costs no sleeping at all.
    public func wait(timeout: Duration, outputLimit: Int) -> ProcessOutcome {
        precondition(!finished, "a child is waited for once")
        finished = true
        defer { ChildRegistry.forget(pid) }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var collected = TailBuffer(limit: outputLimit)
        var pipeOpen = true
        var pause: Int64 = 250  // microseconds between exit checks once the pipe is closed

        while true {
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid {
                if pipeOpen { _ = drain(into: &collected) }
                return ProcessOutcome(termination: Self.termination(status), output: collected.text)
            }
            if reaped == -1 && errno != EINTR {
                // ECHILD: someone else reaped it (SIGCHLD ignored process-wide). The status is lost.
                return ProcessOutcome(termination: .statusLost, output: collected.text)
            }
            let remaining = clock.now.duration(to: deadline)
            if remaining <= .zero {
                // The child is not reaped yet, so its pid (= the group ID) cannot have been reused.
                kill(-pid, SIGKILL)
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                if pipeOpen { _ = drain(into: &collected) }
                return ProcessOutcome(termination: .timedOut, output: collected.text)
            }
            if pipeOpen {
                var descriptor = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
                _ = poll(&descriptor, 1, Int32(min(remaining.wholeMilliseconds + 1, 20)))
                pipeOpen = drain(into: &collected)
            } else {
                usleep(useconds_t(min(pause, max(1, remaining.wholeMicroseconds))))
                pause = min(pause * 2, 20_000)
            }
        }
    }

    /// Reads whatever the pipe holds without blocking. Returns false once the pipe reached EOF.
    private func drain(into buffer: inout TailBuffer) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            if count > 0 {
                buffer.append(chunk[0..<count])
            } else if count == 0 {
                return false
            } else {
                // EAGAIN: nothing more for now. Any other error: treat the pipe as finished.
                return errno == EAGAIN || errno == EINTR
            }
        }
    }

    private static func termination(_ status: Int32) -> ProcessOutcome.Termination {
        // The WIFEXITED/WEXITSTATUS macros are not imported into Swift; this is their definition.
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }

    private static func failure(
        _ failure: cspawn_failure, executable: String, placement: SpawnPlacement
    ) -> SpawnFailure {
        let index = Int(failure.index)
        let file = placement.cgroupFiles.indices.contains(index) ? placement.cgroupFiles[index] : "?"
        let cgroup = file.hasSuffix("/cgroup.procs") ? String(file.dropLast("/cgroup.procs".count)) : file
        let stage: SpawnFailure.Stage
        switch failure.stage {
        case Int32(CSPAWN_STAGE_CGROUP_JOIN): stage = .cgroupJoin(cgroup)
        case Int32(CSPAWN_STAGE_CGROUP_NAMESPACE):
            stage = .cgroupNamespace(
                namespace: placement.cgroupNamespace ?? "?", cgroup: cgroup, moveError: failure.move_error)
        case Int32(CSPAWN_STAGE_EXEC): stage = .exec
        case Int32(CSPAWN_STAGE_VANISHED): stage = .vanished
        default: stage = .fork
        }
        return SpawnFailure(executable: executable, stage: stage, errno: failure.error)
    }

    private static func withOptionalCString<T>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> T) -> T {
        guard let string else { return body(nil) }
        return string.withCString { body($0) }
    }
}

/// How a child ended, and what it wrote.
public struct ProcessOutcome: Sendable, Equatable {
    /// How the process terminated.
    public enum Termination: Sendable, Equatable {
        /// It exited with this status.
        case exited(Int32)
        /// A signal killed it (not by us).
        case signaled(Int32)
        /// It ran past its timeout; its whole process group was killed and it was reaped.
        case timedOut
        /// Someone else reaped it; how it ended is unknown.
        case statusLost
    }

    /// How the process terminated.
    public var termination: Termination
    /// Its stdout and stderr, interleaved: the last `outputLimit` bytes.
    public var output: String
}

extension Duration {
    fileprivate var wholeMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }

    fileprivate var wholeMicroseconds: Int64 {
        components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
    }
}
