import Glibc
import Testing

@testable import ProcessSpawn

let environment = ["PATH=/usr/bin:/bin", "LC_ALL=C"]

/// The text of a small file, or nil.
func read(_ path: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var text = ""
    var buffer = [CChar](repeating: 0, count: 4096)
    while fgets(&buffer, Int32(buffer.count), file) != nil {
        text += String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    return text
}

/// Whether `pid` exists (a zombie counts).
func exists(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

@Suite("ChildProcess (real processes)")
struct ChildProcessTests {
    @Test("a child runs its program with exactly the given arguments and environment")
    func runs() throws {
        let child = try ChildProcess(
            "/bin/sh", ["-c", "echo \"$0|$1|$PATH\"; exit 4", "a b", "*"], environment: environment)
        let outcome = child.wait(timeout: .seconds(10), outputLimit: 1024)
        #expect(outcome.termination == .exited(4))
        #expect(outcome.output == "a b|*|/usr/bin:/bin\n")
    }

    @Test("a missing program fails at exec, with its errno, and leaves no child")
    func missingProgram() {
        #expect(throws: SpawnFailure(executable: "/nonexistent/mount", stage: .exec, errno: ENOENT)) {
            _ = try ChildProcess("/nonexistent/mount", [], environment: environment)
        }
    }

    @Test("a gated child does not exec until released")
    func gate() throws {
        let child = try ChildProcess(
            "/bin/sh", ["-c", "echo released"], environment: environment, placement: SpawnPlacement(gated: true))
        // Still a copy of this test process, waiting: not the shell.
        let before = try #require(read("/proc/\(child.pid)/cmdline"))
        #expect(!before.hasPrefix("/bin/sh"))
        #expect(exists(child.pid))
        try child.release()
        let outcome = child.wait(timeout: .seconds(10), outputLimit: 1024)
        #expect(outcome == ProcessOutcome(termination: .exited(0), output: "released\n"))
    }

    @Test("an abandoned gated child exits without running anything and is reaped")
    func abandon() throws {
        let child = try ChildProcess(
            "/bin/sh", ["-c", "echo never"], environment: environment, placement: SpawnPlacement(gated: true))
        let pid = child.pid
        child.abandon()
        #expect(!exists(pid))
    }

    @Test("a gated child whose exec fails reports it at release")
    func gatedExecFailure() throws {
        let child = try ChildProcess(
            "/nonexistent/x", [], environment: environment, placement: SpawnPlacement(gated: true))
        #expect(throws: SpawnFailure(executable: "/nonexistent/x", stage: .exec, errno: ENOENT)) {
            try child.release()
        }
    }

    @Test("a signal blocked or handled in the parent is default and unblocked in the child")
    func signalsReset() throws {
        signal(SIGPIPE, SIG_IGN)
        let child = try ChildProcess(
            "/bin/sh", ["-c", "grep -E '^Sig(Ign|Blk)' /proc/self/status"], environment: environment)
        let outcome = child.wait(timeout: .seconds(10), outputLimit: 1024)
        #expect(outcome.output.contains("SigBlk:\t0000000000000000"))
        // The shell itself ignores nothing it inherited; SIGPIPE (bit 13) must not be ignored.
        let ignored = outcome.output.split(separator: "\n").first { $0.hasPrefix("SigIgn:") }
        let mask = ignored.flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) } ?? 0
        #expect(mask & (1 << (UInt64(SIGPIPE) - 1)) == 0)
    }

    @Test("a child that outlives its timeout is killed with its process group")
    func timeout() throws {
        let child = try ChildProcess("/bin/sh", ["-c", "sleep 30 & echo $!; wait"], environment: environment)
        let outcome = child.wait(timeout: .milliseconds(300), outputLimit: 1024)
        #expect(outcome.termination == .timedOut)
        let grandchild = try #require(pid_t(outcome.output.filter { $0.isNumber }))
        // SIGKILL is delivered, not waited for: give the grandchild a moment to die.
        func gone() -> Bool {
            let state = read("/proc/\(grandchild)/stat").map { $0.split(separator: " ")[2] }
            return state == nil || state == "Z"
        }
        for _ in 0..<200 where !gone() { usleep(10_000) }
        #expect(gone())
    }
}

/// A v1 hierarchy this machine has, and root to write to it.
let pidsHierarchy = "/sys/fs/cgroup/pids"
let canMakeCgroups = getuid() == 0 && access(pidsHierarchy + "/cgroup.procs", W_OK) == 0

@Suite("ChildProcess placement into cgroups (real cgroup v1)", .enabled(if: canMakeCgroups))
struct ChildProcessCgroupTests {
    final class Cgroup {
        let path = "\(pidsHierarchy)/gcsi-spawn-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        init() { mkdir(path, 0o755) }
        deinit { rmdir(path) }
    }

    @Test("the child is in the cgroup before it execs, so everything it starts is too")
    func joins() throws {
        let cgroup = Cgroup()
        let name = String(cgroup.path.dropFirst(pidsHierarchy.count))
        let child = try ChildProcess(
            "/bin/sh", ["-c", "cat /proc/self/cgroup; (cat /proc/self/cgroup)"], environment: environment,
            placement: SpawnPlacement(cgroupFiles: [cgroup.path + "/cgroup.procs"]))
        let outcome = child.wait(timeout: .seconds(10), outputLimit: 8192)
        #expect(outcome.termination == .exited(0))
        let lines = outcome.output.split(separator: "\n").filter { $0.contains(":pids:") }
        #expect(lines.count == 2)
        #expect(lines.allSatisfy { $0.hasSuffix(":pids:\(name)") })
    }

    @Test("a refused move fails the start with the cgroup named, and nothing runs")
    func refused() {
        let missing = "\(pidsHierarchy)/gcsi-no-such-cgroup-\(getpid())"
        #expect(
            throws: SpawnFailure(executable: "/bin/true", stage: .cgroupJoin(missing), errno: ENOENT)
        ) {
            _ = try ChildProcess(
                "/bin/true", [], environment: environment,
                placement: SpawnPlacement(cgroupFiles: [missing + "/cgroup.procs"]))
        }
        // With a namespace to fall back on that is the one the child is in, there is nothing to
        // retry: the refusal is reported as it was.
        #expect(
            throws: SpawnFailure(executable: "/bin/true", stage: .cgroupJoin(missing), errno: ENOENT)
        ) {
            _ = try ChildProcess(
                "/bin/true", [], environment: environment,
                placement: SpawnPlacement(
                    cgroupFiles: [missing + "/cgroup.procs"], cgroupNamespace: "/proc/self/ns/cgroup"))
        }
        // A namespace that cannot be entered is reported with the refusal that made it necessary.
        let failure = #expect(throws: SpawnFailure.self) {
            _ = try ChildProcess(
                "/bin/true", [], environment: environment,
                placement: SpawnPlacement(cgroupFiles: [missing + "/cgroup.procs"], cgroupNamespace: "/nonexistent/ns"))
        }
        #expect(failure?.stage == .cgroupNamespace(namespace: "/nonexistent/ns", cgroup: missing, moveError: ENOENT))
        #expect(failure?.errno == ENOENT)
        #expect(failure?.description.contains("cannot move /bin/true into the cgroup \(missing)") == true)
    }

    @Test("a gated child waits inside its cgroup")
    func gatedInCgroup() throws {
        let cgroup = Cgroup()
        let child = try ChildProcess(
            "/bin/true", [], environment: environment,
            placement: SpawnPlacement(cgroupFiles: [cgroup.path + "/cgroup.procs"], gated: true))
        #expect(read(cgroup.path + "/cgroup.procs")?.split(separator: "\n") == ["\(child.pid)"])
        child.abandon()
        #expect(read(cgroup.path + "/cgroup.procs") == "")
    }
}

@Suite("OrphanReaper")
struct OrphanReaperTests {
    /// What the reaping test saw, gathered on a thread of its own (the reaper waits for up to
    /// 350 ms, which must not hold a thread of the cooperative pool the whole test process shares).
    struct Observed: Sendable {
        var spawned: Int32 = -1
        var firstPass = -1
        var orphanGone = false
        var secondPass = -1
        var ours: ProcessOutcome.Termination = .statusLost
    }

    @Test("reaps an ended child nobody waits for, never one a ChildProcess waits for")
    func reapsOnlyOrphans() async throws {
        let seen = await onOwnThread { () -> Observed in
            var seen = Observed()
            // An unregistered child, as an orphan that lands on an init would be.
            var orphan = pid_t()
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
            defer { free(argv[0]) }
            seen.spawned = posix_spawn(&orphan, "/bin/true", nil, nil, argv, nil)
            guard let ours = try? ChildProcess("/bin/sh", ["-c", "exit 9"], environment: environment) else {
                return seen
            }
            // Let both end: then each is a zombie, one ours and one an orphan.
            for _ in 0..<500 where read("/proc/\(ours.pid)/stat")?.contains(") Z ") != true { usleep(10_000) }
            usleep(50_000)
            seen.firstPass = OrphanReaper.reapOrphans(patience: .milliseconds(300))
            var status: Int32 = 0
            seen.orphanGone = waitpid(orphan, &status, WNOHANG) == -1 && errno == ECHILD
            seen.secondPass = OrphanReaper.reapOrphans(patience: .milliseconds(50))
            seen.ours = ours.wait(timeout: .seconds(10), outputLimit: 64).termination
            return seen
        }
        #expect(seen.spawned == 0)
        #expect(seen.firstPass == 1)
        #expect(seen.orphanGone)
        #expect(seen.secondPass == 0)
        #expect(seen.ours == .exited(9))
    }
}

/// Runs `body` on a new thread and returns its result.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let work = Unmanaged.passRetained(ThreadWork { continuation.resume(returning: body()) })
        var thread = pthread_t()
        let started = pthread_create(
            &thread, nil,
            { argument in
                Unmanaged<ThreadWork>.fromOpaque(argument!).takeRetainedValue().run()
                return nil
            }, work.toOpaque())
        precondition(started == 0, "pthread_create failed")
        pthread_detach(thread)
    }
}

final class ThreadWork: @unchecked Sendable {
    // @unchecked: run once, on the one thread it is handed to.
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}
