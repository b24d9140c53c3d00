import CSICore

/// Mounts and unmounts filesystems and reports what is mounted.
///
/// `NodeService` talks only to this protocol, so service tests run against a recording fake and
/// only `SystemMounter` needs root and a real GlusterFS. Every operation that can wait on the
/// outside world takes a timeout; implementations must not block the cooperative thread pool.
public protocol Mounter: Sendable {
    /// Mounts `source` of type `fsType` on the existing directory `target` with `options`
    /// (joined with commas into one `-o`; callers validate them, see `GlusterMountOptions`). With
    /// a `placement`, the mount helper and the client it leaves running go into that unit.
    func mount(
        source: String, target: String, fsType: String, options: [String], timeout: Duration,
        placement: ClientPlacementRequest?
    ) async throws(MountError)

    /// Makes the tree mounted at `source` visible at the existing directory `target` too.
    func bindMount(source: String, target: String, timeout: Duration) async throws(MountError)

    /// Makes the mount at `target` read-only (per mount point; other bind mounts are unaffected).
    func remountReadOnly(target: String, timeout: Duration) async throws(MountError)

    /// Removes the topmost mount at `target`, escalating from a normal to a forced to a lazy
    /// unmount so that a dead or unreachable FUSE client can always be detached within `timeout`.
    /// Succeeds with `.notMounted` when nothing is mounted there.
    func unmount(target: String, timeout: Duration) async throws(MountError) -> UnmountOutcome

    /// The current mount table, from `/proc/self/mountinfo` — never from `mount` output.
    func mountTable() throws(MountError) -> [MountInfo]
}

/// How `Mounter.unmount` got the mount off its path.
public enum UnmountOutcome: Sendable, Equatable {
    /// Nothing was mounted there.
    case notMounted
    /// A normal unmount worked.
    case unmounted
    /// Only a forced unmount (`umount -f`, which aborts a FUSE connection) worked.
    case forced
    /// Only a lazy unmount (`umount -l`) worked: the path is free, the filesystem goes away when
    /// its last user lets go.
    case lazy
}

extension Mounter {
    /// The topmost mount at exactly `path`, if any (the last entry: later mounts cover earlier ones).
    public func mountPoint(at path: String) throws(MountError) -> MountInfo? {
        try mountTable().last { $0.mountPoint == path }
    }
}

/// A mount operation that failed. Converted to a `CSIError` by `csiError`, next to its definition.
public struct MountError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// The command ran and failed.
        case failed(CommandResult.Termination)
        /// The command did not finish in time and was killed.
        case timedOut(Duration)
        /// The command reported success but the kernel's mount table disagrees.
        case notMountedAfterSuccess
        /// The program could not be started, or the mount table could not be read.
        case system(String)
        /// The mount helper could not be placed into its unit; the mount was not attempted.
        case placement(String)
    }

    /// What went wrong.
    public var kind: Kind
    /// The command line, for the message (mount options here are never secret; see
    /// `GlusterMountOptions`).
    public var command: [String]
    /// The command's output (bounded).
    public var output: String

    /// Creates an error; mounters and test fakes use this.
    public init(kind: Kind, command: [String], output: String = "") {
        self.kind = kind
        self.command = command
        self.output = output
    }

    public var description: String {
        let commandLine = command.joined(separator: " ")
        let trimmedOutput = output.trimmingWhitespace()
        let detail = trimmedOutput.isEmpty ? "" : ": \(trimmedOutput)"
        switch kind {
        case .failed(.exited(let status)):
            return "'\(commandLine)' failed with exit status \(status)\(detail)"
        case .failed(.signaled(let signal)):
            return "'\(commandLine)' was killed by signal \(signal)\(detail)"
        case .failed(.timedOut), .timedOut:
            let limit = if case .timedOut(let limit) = kind { " after \(limit)" } else { "" }
            return "'\(commandLine)' did not finish\(limit) and was killed\(detail)"
        case .notMountedAfterSuccess:
            return "'\(commandLine)' reported success but nothing is mounted there\(detail)"
        case .system(let reason):
            return "'\(commandLine)': \(reason)"
        case .placement(let reason):
            return "'\(commandLine)' was not run: \(reason)"
        }
    }

    /// The status a CSI caller sees: DEADLINE_EXCEEDED for a killed command, UNAVAILABLE for a
    /// placement that failed (nothing was mounted), INTERNAL otherwise. The CO retries them all;
    /// the message carries the command output so users can act on it.
    public var csiError: CSIError {
        switch kind {
        case .timedOut, .failed(.timedOut):
            CSIError(.deadlineExceeded, "\(description); check that the storage servers are reachable")
        case .placement:
            CSIError(.unavailable, description)
        default:
            CSIError(.internal, description)
        }
    }
}

extension String {
    /// This string without leading and trailing spaces, tabs and newlines.
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(self[first...last])
    }
}
