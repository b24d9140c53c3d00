/// How a command ended.
public struct CommandResult: Sendable, Equatable {
    /// How the process terminated.
    public enum Termination: Sendable, Equatable {
        /// It exited with this status.
        case exited(Int32)
        /// A signal killed it (not by us).
        case signaled(Int32)
        /// It ran past its timeout; its whole process group was killed and it was reaped.
        case timedOut
    }

    /// How the process terminated.
    public var termination: Termination
    /// Its standard output and standard error, interleaved, capped at the last few KiB.
    public var output: String

    /// Creates a result; runners and test fakes use this.
    public init(termination: Termination, output: String) {
        self.termination = termination
        self.output = output
    }

    /// Whether it exited with status 0.
    public var succeeded: Bool { termination == .exited(0) }
}

/// Runs an external program from an argument array — never through a shell, so no argument is
/// ever re-parsed, word-split or globbed.
///
/// The seam lets `SystemMounter` be tested for the exact argument arrays it builds without mounting.
public protocol CommandRunner: Sendable {
    /// Runs `executable` (an absolute path) with `arguments` (not including argv[0]) and waits for
    /// it, killing its process group after `timeout`. With a `placement`, the program — and so
    /// everything it starts — is put into the placement's unit before it execs. Throws only when
    /// the program cannot be started or placed (`SpawnFailure`, `PlacementError`).
    func run(
        _ executable: String, _ arguments: [String], timeout: Duration, placement: ClientPlacementRequest?
    ) async throws -> CommandResult
}

extension CommandRunner {
    /// Runs `executable` where the driver runs (no placement).
    public func run(_ executable: String, _ arguments: [String], timeout: Duration) async throws -> CommandResult {
        try await run(executable, arguments, timeout: timeout, placement: nil)
    }
}
