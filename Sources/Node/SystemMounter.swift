import ProcessSpawn

/// The real `Mounter`: runs `/bin/mount` and `/bin/umount` (which hand `-t glusterfs` to
/// `mount.glusterfs`) through a `CommandRunner`, and reads the kernel's mount table.
///
/// Every command is an argument array — paths and options are never re-parsed by a shell here.
/// (`mount.glusterfs` itself is a shell script that word-splits its options, which is why
/// `GlusterMountOptions` only lets through characters that survive that.)
public struct SystemMounter: Mounter {
    /// Path of the `mount` program.
    public var mountProgram: String
    /// Path of the `umount` program.
    public var umountProgram: String
    /// Where the mount table is read from.
    public var mountInfoPath: String
    /// Runs the programs.
    public var runner: any CommandRunner

    /// - Parameters: the programs and mount table to use (defaults: the system's), and the
    ///   runner that executes the programs.
    public init(
        mountProgram: String = "/bin/mount", umountProgram: String = "/bin/umount",
        mountInfoPath: String = "/proc/self/mountinfo", runner: any CommandRunner = SystemCommandRunner()
    ) {
        self.mountProgram = mountProgram
        self.umountProgram = umountProgram
        self.mountInfoPath = mountInfoPath
        self.runner = runner
    }

    public func mount(
        source: String, target: String, fsType: String, options: [String], timeout: Duration,
        placement: ClientPlacementRequest?
    ) async throws(MountError) {
        var arguments = ["-t", fsType]
        if !options.isEmpty { arguments += ["-o", options.joined(separator: ",")] }
        arguments += [source, target]
        try await runMount(arguments, target: target, timeout: timeout, placement: placement)
    }

    public func bindMount(source: String, target: String, timeout: Duration) async throws(MountError) {
        try await runMount(["--bind", source, target], target: target, timeout: timeout, placement: nil)
    }

    public func remountReadOnly(target: String, timeout: Duration) async throws(MountError) {
        // `bind` makes this a per-mount-point change (MS_REMOUNT|MS_BIND|MS_RDONLY): it turns this
        // one path read-only without touching the superblock, which other pods share.
        try await run(mountProgram, ["-o", "remount,bind,ro", target], timeout: timeout)
    }

    public func unmount(target: String, timeout: Duration) async throws(MountError) -> UnmountOutcome {
        guard let mounted = try mountPoint(at: target) else { return .notMounted }
        // --no-canonicalize: umount must not stat the path, because a stat on a hung FUSE mount
        // blocks. Our paths are already absolute and clean. Each step gets a share of the budget,
        // so the whole escalation stays within `timeout`.
        let steps: [(flags: [String], share: Int64, outcome: UnmountOutcome)] = [
            ([], 2, .unmounted), (["--force"], 4, .forced), (["--lazy"], 4, .lazy),
        ]
        var lastError: MountError?
        for step in steps {
            let arguments = ["--no-canonicalize"] + step.flags + [target]
            do throws(MountError) {
                try await run(umountProgram, arguments, timeout: timeout / step.share)
            } catch {
                lastError = error
            }
            // The table, not the exit status, decides: umount also fails when someone else
            // unmounted it first, and succeeds-then-remounts races are caught by the ID.
            let now = try mountPoint(at: target)
            if now?.mountID != mounted.mountID { return step.outcome }
        }
        throw lastError
            ?? MountError(kind: .failed(.exited(0)), command: [umountProgram, target], output: "still mounted")
    }

    public func mountTable() throws(MountError) -> [MountInfo] {
        do {
            let bytes = try FileIO.readAll(mountInfoPath)
            return try MountInfo.parseTable(String(decoding: bytes, as: UTF8.self))
        } catch let error as FileIOError {
            throw MountError(kind: .system("cannot read the mount table: \(error)"), command: [mountInfoPath])
        } catch {
            throw MountError(kind: .system("cannot parse the mount table: \(error)"), command: [mountInfoPath])
        }
    }

    /// Runs a mount command and checks the kernel agrees something new is mounted at `target`
    /// (some helpers, `mount.glusterfs` among them, exit 0 on usage errors).
    private func runMount(
        _ arguments: [String], target: String, timeout: Duration, placement: ClientPlacementRequest?
    ) async throws(MountError) {
        let before = try mountPoint(at: target)?.mountID
        try await run(mountProgram, arguments, timeout: timeout, placement: placement)
        let after = try mountPoint(at: target)?.mountID
        if after == nil || after == before {
            throw MountError(kind: .notMountedAfterSuccess, command: [mountProgram] + arguments)
        }
    }

    private func run(
        _ program: String, _ arguments: [String], timeout: Duration, placement: ClientPlacementRequest? = nil
    ) async throws(MountError) {
        let command = [program] + arguments
        let result: CommandResult
        do {
            result = try await runner.run(program, arguments, timeout: timeout, placement: placement)
        } catch let error as PlacementError {
            throw MountError(kind: .placement(error.description), command: command)
        } catch let error as SpawnFailure {
            switch error.stage {
            case .cgroupJoin, .cgroupNamespace: throw MountError(kind: .placement(error.description), command: command)
            default: throw MountError(kind: .system(error.description), command: command)
            }
        } catch {
            throw MountError(kind: .system("\(error)"), command: command)
        }
        switch result.termination {
        case .exited(0):
            return
        case .timedOut:
            throw MountError(kind: .timedOut(timeout), command: command, output: result.output)
        default:
            throw MountError(kind: .failed(result.termination), command: command, output: result.output)
        }
    }
}
