import CSICore
import Glibc
import ProcessSpawn
import Synchronization
import Testing

@testable import Node

@Suite("SystemCommandRunner (real processes)")
struct SystemCommandRunnerTests {
    let runner = SystemCommandRunner()

    @Test("exit status and output, from an argument array that no shell re-parses")
    func exitAndOutput() async throws {
        let result = try await runner.run("/bin/echo", ["a b", "$HOME", "*", ";", "x"], timeout: .seconds(5))
        #expect(result.termination == .exited(0))
        #expect(result.output == "a b $HOME * ; x\n")
        let failed = try await runner.run("/bin/sh", ["-c", "echo oops >&2; exit 3"], timeout: .seconds(5))
        #expect(failed.termination == .exited(3))
        #expect(failed.output == "oops\n")
    }

    @Test("a missing program is a spawn error")
    func missingProgram() async {
        await #expect(throws: SpawnFailure.self) {
            _ = try await runner.run("/nonexistent/mount", [], timeout: .seconds(1))
        }
    }

    @Test("the environment is fixed and stdin is empty")
    func environment() async throws {
        let result = try await runner.run("/usr/bin/env", [], timeout: .seconds(5))
        #expect(
            result.output.split(separator: "\n").sorted()
                == SystemCommandRunner.defaultEnvironment.map { Substring($0) }.sorted())
        let cat = try await runner.run("/bin/cat", [], timeout: .seconds(5))
        #expect(cat.termination == .exited(0) && cat.output.isEmpty)
    }

    @Test("output is bounded to its tail")
    func boundedOutput() async throws {
        let small = SystemCommandRunner(outputLimit: 100)
        let result = try await small.run("/bin/sh", ["-c", "seq 1 100000; echo END"], timeout: .seconds(10))
        #expect(result.termination == .exited(0))
        #expect(result.output.utf8.count == 100)
        #expect(result.output.hasSuffix("100000\nEND\n"))
    }

    @Test("a timeout kills the whole process group and reaps the child")
    func timeoutKillsGroup() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        // The shell starts a grandchild and waits; both must die.
        let result = try await runner.run(
            "/bin/sh", ["-c", "sleep 30 & echo $!; wait"], timeout: .milliseconds(300))
        #expect(result.termination == .timedOut)
        #expect(clock.now - start < .seconds(5))
        let grandchild = try #require(pid_t(result.output.trimmingWhitespace()))
        // Killed: gone, or a zombie waiting for init to reap it.
        var dead = false
        for _ in 0..<50 {
            dead = kill(grandchild, 0) != 0 || processState(grandchild) == "Z"
            if dead { break }
            usleep(20_000)
        }
        #expect(dead, "the grandchild \(grandchild) survived the timeout")
    }

    @Test("a daemon that keeps the output pipe open does not hold up the result")
    func daemonHoldsPipe() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await runner.run(
            "/bin/sh", ["-c", "setsid sleep 10 >/dev/stderr 2>&1 & echo started"], timeout: .seconds(20))
        #expect(result.termination == .exited(0))
        #expect(result.output.hasPrefix("started"))
        // Well before the daemon's 10 s, with room for a busy test process on two cores.
        #expect(clock.now - start < .seconds(5))
    }

    @Test("many runs at once do not block the cooperative pool")
    func concurrentRuns() async throws {
        let runner = runner
        let results = try await withThrowingTaskGroup(of: CommandResult.self) { group in
            for _ in 0..<12 { group.addTask { try await runner.run("/bin/sleep", ["0.3"], timeout: .seconds(10)) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0.succeeded })
    }
}

func processState(_ pid: pid_t) -> String? {
    guard let bytes = try? FileIO.readAll("/proc/\(pid)/stat") else { return nil }
    let text = String(decoding: bytes, as: UTF8.self)
    guard let close = text.lastIndex(of: ")") else { return nil }
    return text[text.index(close, offsetBy: 2)...].split(separator: " ").first.map(String.init)
}

/// A runner that records argument arrays and answers from a script.
final class RecordingRunner: CommandRunner {
    let calls = Mutex<[[String]]>([])
    let answer: @Sendable ([String]) -> CommandResult

    init(answer: @escaping @Sendable ([String]) -> CommandResult) { self.answer = answer }

    func run(
        _ executable: String, _ arguments: [String], timeout: Duration, placement: ClientPlacementRequest?
    ) async throws -> CommandResult {
        let command = [executable] + arguments
        calls.withLock { $0.append(command) }
        return answer(command)
    }
}

@Suite("SystemMounter argument arrays (recording runner, scripted mount table)")
struct SystemMounterTests {
    /// A mounter over a mountinfo file in a temp dir that the scripted runner rewrites.
    final class Setup: @unchecked Sendable {
        // @unchecked: the table file is only touched from the test's own task, in order.
        let directory = makeTemporaryDirectory()
        var mountInfo: String { directory + "/mountinfo" }
        init() {}
        deinit { removeTree(directory) }
        func setTable(_ lines: [String]) { try? writeFile(mountInfo, lines.joined(separator: "\n") + "\n") }
    }

    static let root = "1 0 254:0 / / rw - ext4 /dev/vda rw"
    static let mounted = "50 1 0:40 / /mnt/x rw - fuse.glusterfs h:/v rw"

    @Test("glusterfs mount, bind and read-only remount commands")
    func mountCommands() async throws {
        let setup = Setup()
        setup.setTable([Self.root])
        let runner = RecordingRunner { command in
            // Like the kernel: whatever the command mounts appears at its last argument.
            setup.setTable([Self.root, "50 1 0:40 / \(command.last!) rw - fuse.glusterfs h:/v rw"])
            return CommandResult(termination: .exited(0), output: "")
        }
        let mounter = SystemMounter(mountInfoPath: setup.mountInfo, runner: runner)
        try await mounter.mount(
            source: "h:/v", target: "/mnt/x", fsType: "glusterfs", options: ["ro", "log-level=ERROR"],
            timeout: .seconds(1), placement: nil)
        setup.setTable([Self.root])
        try await mounter.bindMount(source: "/mnt/x", target: "/mnt/y", timeout: .seconds(1))
        try await mounter.remountReadOnly(target: "/mnt/y", timeout: .seconds(1))
        #expect(
            runner.calls.withLock { $0 } == [
                ["/bin/mount", "-t", "glusterfs", "-o", "ro,log-level=ERROR", "h:/v", "/mnt/x"],
                ["/bin/mount", "--bind", "/mnt/x", "/mnt/y"],
                ["/bin/mount", "-o", "remount,bind,ro", "/mnt/y"],
            ])
    }

    @Test("a mount that exits 0 without mounting is an error")
    func falseSuccess() async throws {
        let setup = Setup()
        setup.setTable([Self.root])
        let runner = RecordingRunner { _ in CommandResult(termination: .exited(0), output: "Usage: ...") }
        let mounter = SystemMounter(mountInfoPath: setup.mountInfo, runner: runner)
        await #expect(
            throws: MountError(
                kind: .notMountedAfterSuccess, command: ["/bin/mount", "-t", "glusterfs", "h:/v", "/mnt/x"])
        ) {
            try await mounter.mount(
                source: "h:/v", target: "/mnt/x", fsType: "glusterfs", options: [], timeout: .seconds(1),
                placement: nil)
        }
    }

    @Test(
        "unmount escalates normal → force → lazy and trusts the table",
        arguments: [
            (1, UnmountOutcome.unmounted), (2, .forced), (3, .lazy),
        ])
    func escalation(succeedsAt: Int, outcome: UnmountOutcome) async throws {
        let setup = Setup()
        setup.setTable([Self.root, Self.mounted])
        let attempts = Mutex(0)
        let runner = RecordingRunner { _ in
            let attempt = attempts.withLock {
                $0 += 1; return $0
            }
            if attempt == succeedsAt {
                setup.setTable([Self.root])
                return CommandResult(termination: .exited(0), output: "")
            }
            return CommandResult(termination: attempt == 1 ? .timedOut : .exited(32), output: "target is busy")
        }
        let mounter = SystemMounter(mountInfoPath: setup.mountInfo, runner: runner)
        #expect(try await mounter.unmount(target: "/mnt/x", timeout: .seconds(4)) == outcome)
        let expected = [
            ["/bin/umount", "--no-canonicalize", "/mnt/x"], ["/bin/umount", "--no-canonicalize", "--force", "/mnt/x"],
            ["/bin/umount", "--no-canonicalize", "--lazy", "/mnt/x"],
        ]
        #expect(runner.calls.withLock { $0 } == Array(expected.prefix(succeedsAt)))
    }

    @Test("unmount of a path with nothing mounted runs nothing; a mount that will not go is an error")
    func unmountEdges() async throws {
        let setup = Setup()
        setup.setTable([Self.root])
        let runner = RecordingRunner { _ in CommandResult(termination: .exited(32), output: "busy") }
        let mounter = SystemMounter(mountInfoPath: setup.mountInfo, runner: runner)
        #expect(try await mounter.unmount(target: "/mnt/x", timeout: .seconds(1)) == .notMounted)
        #expect(runner.calls.withLock { $0 }.isEmpty)
        setup.setTable([Self.root, Self.mounted])
        await #expect(throws: MountError.self) { _ = try await mounter.unmount(target: "/mnt/x", timeout: .seconds(1)) }
        #expect(runner.calls.withLock { $0 }.count == 3)
    }

    @Test("a real mount program that hangs is killed with its children at the timeout")
    func hangingProgram() async throws {
        let setup = Setup()
        setup.setTable([Self.root])
        let program = setup.directory + "/hanging-mount"
        try writeFile(program, "#!/bin/sh\nsleep 30 &\necho $! > \(setup.directory)/child\nsleep 30\n")
        chmod(program, 0o755)
        let mounter = SystemMounter(mountProgram: program, mountInfoPath: setup.mountInfo)
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: MountError.self) {
            try await mounter.mount(
                source: "h:/v", target: "/mnt/x", fsType: "glusterfs", options: [],
                timeout: .milliseconds(300), placement: nil)
        }
        #expect(error?.kind == .timedOut(.milliseconds(300)))
        #expect(clock.now - start < .seconds(3))
        let child = try #require(pid_t(try readText(setup.directory + "/child").trimmingWhitespace()))
        try await waitUntil { kill(child, 0) != 0 || processState(child) == "Z" }
    }

    @Test("mount errors become CSI errors with the command and its output")
    func errorMapping() {
        let failed = MountError(kind: .failed(.exited(32)), command: ["/bin/mount", "a", "b"], output: " bad option\n")
        #expect(failed.csiError == CSIError(.internal, "'/bin/mount a b' failed with exit status 32: bad option"))
        let timedOut = MountError(kind: .timedOut(.seconds(60)), command: ["/bin/mount"])
        #expect(timedOut.csiError.code == .deadlineExceeded)
        #expect(timedOut.csiError.message.contains("was killed"))
    }
}

@Suite("SystemFileSystemProbe and BlockingThread")
struct ProbeTests {
    @Test("health and usage of real paths")
    func realPaths() async throws {
        let probe = SystemFileSystemProbe()
        #expect(await probe.health(of: "/tmp", timeout: .seconds(5)) == .healthy)
        #expect(await probe.health(of: "/nonexistent/x", timeout: .seconds(5)) == .missing)
        #expect(await probe.health(of: "/etc/passwd/x", timeout: .seconds(5)) == .failed(errno: ENOTDIR))
        let usage = try #require(await probe.healthAndUsage(of: "/tmp", timeout: .seconds(5)).usage)
        #expect(usage.totalBytes > 0 && usage.availableBytes <= usage.totalBytes)
        #expect(usage.usedBytes + usage.availableBytes <= usage.totalBytes)
        #expect(usage.totalInodes >= usage.usedInodes)
    }

    @Test("health and usage in one round: the usage is the statvfs that proved the path healthy")
    func healthAndUsage() async throws {
        let probe = SystemFileSystemProbe()
        let (health, usage) = await probe.healthAndUsage(of: "/tmp", timeout: .seconds(5))
        #expect(health == .healthy)
        var direct = statvfs()
        #expect(statvfs("/tmp", &direct) == 0)
        let blockSize = Int64(direct.f_frsize)
        #expect(usage?.totalBytes == Int64(direct.f_blocks) * blockSize && usage?.totalInodes == Int64(direct.f_files))
        let missing = await probe.healthAndUsage(of: "/nonexistent/x", timeout: .seconds(5))
        #expect(missing.health == .missing && missing.usage == nil)
        let notADirectory = await probe.healthAndUsage(of: "/etc/passwd/x", timeout: .seconds(5))
        #expect(notADirectory.health == .failed(errno: ENOTDIR) && notADirectory.usage == nil)
    }

    @Test("corrupting errnos")
    func errnos() {
        #expect(PathHealth.corruptingErrnos == [ENOTCONN, ESTALE, EIO, EHOSTDOWN, EACCES, ECONNABORTED])
    }

    @Test("a call that hangs is abandoned after its timeout")
    func timeout() async {
        let clock = ContinuousClock()
        let start = clock.now
        let result = await BlockingThread.run(timeout: .milliseconds(100)) { () -> Int in
            usleep(10_000_000)
            return 1
        }
        #expect(result == nil)
        // Well before the body's 10 s, with room for a busy test process on two cores.
        #expect(clock.now - start < .seconds(5))
        #expect(await BlockingThread.run(timeout: .seconds(5)) { 7 } == 7)
    }
}

@Suite("KeyedTryLock")
struct KeyedTryLockTests {
    @Test("exclusive and shared holders")
    func modes() async throws {
        let lock = KeyedTryLock<String>(noun: "volume")
        try await lock.withLock("a") {
            #expect(lock.isHeld("a"))
            await #expect(
                throws: CSIError.aborted("another operation on volume a is in progress; retry when it has finished")
            ) {
                try await lock.withLock("a") {}
            }
            await #expect(throws: CSIError.self) { try await lock.withSharedLock("a") {} }
            try await lock.withLock("b") {}
        }
        #expect(!lock.isHeld("a"))
        try await lock.withSharedLock("a") {
            try await lock.withSharedLock("a") {
                await #expect(throws: CSIError.self) { try await lock.withLock("a") {} }
            }
            #expect(lock.isHeld("a"))
        }
        #expect(!lock.isHeld("a"))
    }

    @Test("released when the body throws")
    func releaseOnThrow() async {
        let lock = KeyedTryLock<Int>()
        struct Boom: Error {}
        await #expect(throws: Boom.self) { try await lock.withLock(1) { throw Boom() } }
        #expect(!lock.isHeld(1))
    }
}
