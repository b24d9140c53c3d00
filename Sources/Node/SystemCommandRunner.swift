import CSICore
import Glibc

/// Runs programs with `posix_spawn`, each in its own process group, waited for on a dedicated
/// thread, and killed — the whole group, then reaped — when it outlives its timeout.
///
/// Killing matters: a timed-out `mount.glusterfs` left running keeps a half-made FUSE mount and
/// poisons every later attempt on that path (field notes, "Mount hangs"). The group kill also takes
/// the shell script's children (`glusterfs` before it daemonizes, the `stat` it runs on the new
/// mount). A daemonized client has left the group by then and is handled by unmounting instead.
///
/// Cancelling the calling task does not stop a program: it runs to completion or to its timeout,
/// so a client that gives up never cuts a mount off halfway (the volume lock is held until then).
public struct SystemCommandRunner: CommandRunner {
    /// The environment given to every program: a fixed PATH (helpers like `mount.glusterfs` are
    /// found through it) and the C locale, so error text does not depend on the node's settings.
    public static let defaultEnvironment = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LC_ALL=C",
    ]

    /// Environment entries (`NAME=value`) for the child.
    public var environment: [String]
    /// How many bytes of output to keep (the last ones; errors come at the end).
    public var outputLimit: Int

    /// - Parameters:
    ///   - environment: the child's whole environment, `NAME=value` entries.
    ///   - outputLimit: bytes of output kept (the last ones).
    public init(environment: [String] = SystemCommandRunner.defaultEnvironment, outputLimit: Int = 16 * 1024) {
        self.environment = environment
        self.outputLimit = outputLimit
    }

    public func run(_ executable: String, _ arguments: [String], timeout: Duration) async throws -> CommandResult {
        let environment = environment
        let outputLimit = outputLimit
        let outcome = await BlockingThread.run { () -> Result<CommandResult, SpawnError> in
            do throws(SpawnError) {
                let child = try SpawnedChild(executable, arguments, environment: environment)
                return .success(child.wait(timeout: timeout, outputLimit: outputLimit))
            } catch {
                return .failure(error)
            }
        }
        return try outcome.get()
    }
}

/// A started child: its pid (also its process group ID) and the read end of its output pipe.
private struct SpawnedChild {
    let pid: pid_t
    let output: Int32

    /// Starts `executable` with stdin on /dev/null and stdout+stderr into a pipe.
    init(_ executable: String, _ arguments: [String], environment: [String]) throws(SpawnError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw SpawnError(executable: executable, errno: errno) }
        // Close-on-exec so that no other program we start holds this pipe open; dup2 below clears
        // it on the child's copies. Non-blocking read end: we drain it without ever waiting on it,
        // because a daemon the child leaves behind may keep the write end open forever.
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        defer { close(fds[1]) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group (pgid = pid) so that a timeout can kill everything the child started.
        // Signal mask cleared and commonly ignored signals reset, because an ignored SIGPIPE or
        // SIGTERM inherited from a server process would change how mount helpers behave.
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        let argv = CStringArray([executable] + arguments)
        let envp = CStringArray(environment)
        var pid = pid_t()
        // The arrays own the C strings; they must outlive the call, not just their last mention.
        let status = withExtendedLifetime((argv, envp)) {
            posix_spawn(&pid, executable, &actions, &attributes, argv.pointers, envp.pointers)
        }
        guard status == 0 else {
            close(fds[0])
            throw SpawnError(executable: executable, errno: status)
        }
        self.pid = pid
        self.output = fds[0]
    }

    /// Waits for the child, collecting its output, and kills its process group at the deadline.
    ///
    /// Runs on a dedicated thread (it blocks). Poll intervals are short (≤ 20 ms) only while the
    /// pipe is open or after it closed; the common case — the child writes, exits, the pipe hits
    /// EOF — costs no sleeping at all.
    func wait(timeout: Duration, outputLimit: Int) -> CommandResult {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var collected = TailBuffer(limit: outputLimit)
        var pipeOpen = true
        var pause: Int64 = 250  // microseconds between exit checks once the pipe is closed
        defer { close(output) }

        while true {
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid {
                if pipeOpen { _ = drain(into: &collected) }
                return CommandResult(termination: Self.termination(status), output: collected.text)
            }
            if reaped == -1 && errno != EINTR {
                // ECHILD: someone else reaped it (SIGCHLD ignored process-wide). The status is lost.
                return CommandResult(termination: .exited(-1), output: collected.text + "\n(exit status lost)")
            }
            let remaining = clock.now.duration(to: deadline)
            if remaining <= .zero {
                // The child is not reaped yet, so its pid (= the group ID) cannot have been reused.
                kill(-pid, SIGKILL)
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                if pipeOpen { _ = drain(into: &collected) }
                return CommandResult(termination: .timedOut, output: collected.text)
            }
            if pipeOpen {
                var descriptor = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
                _ = poll(&descriptor, 1, Int32(min(remaining.milliseconds + 1, 20)))
                pipeOpen = drain(into: &collected)
            } else {
                usleep(useconds_t(min(pause, max(1, remaining.nanoseconds / 1000))))
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

    private static func termination(_ status: Int32) -> CommandResult.Termination {
        // The WIFEXITED/WEXITSTATUS macros are not imported into Swift; this is their definition.
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }
}

/// Keeps the last `limit` bytes appended to it.
struct TailBuffer {
    let limit: Int
    private(set) var bytes: [UInt8] = []

    init(limit: Int) { self.limit = limit }

    mutating func append(_ more: ArraySlice<UInt8>) {
        bytes.append(contentsOf: more)
        // Trim in batches so appending stays amortized O(n) for chatty programs.
        if bytes.count > 2 * limit { bytes.removeFirst(bytes.count - limit) }
    }

    var text: String {
        String(decoding: bytes.suffix(limit), as: UTF8.self)
    }
}

/// A NULL-terminated `char *[]` whose strings live as long as the value.
private final class CStringArray {
    let pointers: [UnsafeMutablePointer<CChar>?]

    init(_ strings: [String]) {
        pointers = strings.map { strdup($0) } + [nil]
    }

    deinit {
        for pointer in pointers { free(pointer) }
    }
}
