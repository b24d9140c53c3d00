import CSICore
import ProcessSpawn

/// Runs programs (`ChildProcess`), each in its own process group, waited for on a dedicated
/// thread, and killed — the whole group, then reaped — when it outlives its timeout.
///
/// Killing matters: a timed-out `mount.glusterfs` left running keeps a half-made FUSE mount and
/// poisons every later attempt on that path (field notes, "Mount hangs"). The group kill also takes
/// the shell script's children (`glusterfs` before it daemonizes, the `stat` it runs on the new
/// mount). A daemonized client has left the group by then and is handled by unmounting and by
/// removing its placement unit instead.
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

    public func run(
        _ executable: String, _ arguments: [String], timeout: Duration, placement: ClientPlacementRequest?
    ) async throws -> CommandResult {
        let environment = environment
        let outputLimit = outputLimit
        let outcome = await BlockingThread.run { () -> Result<ProcessOutcome, any Error> in
            do {
                let child = try Self.start(executable, arguments, environment: environment, placement: placement)
                return .success(child.wait(timeout: timeout, outputLimit: outputLimit))
            } catch {
                return .failure(error)
            }
        }
        let result = try outcome.get()
        switch result.termination {
        case .exited(let status): return CommandResult(termination: .exited(status), output: result.output)
        case .signaled(let signal): return CommandResult(termination: .signaled(signal), output: result.output)
        case .timedOut: return CommandResult(termination: .timedOut, output: result.output)
        case .statusLost: return CommandResult(termination: .exited(-1), output: result.output + "\n(exit status lost)")
        }
    }

    /// Starts the program, placed: the child joins the unit's cgroups itself, or waits at its
    /// gate until the placement has put it into the unit, and execs only then.
    private static func start(
        _ executable: String, _ arguments: [String], environment: [String], placement: ClientPlacementRequest?
    ) throws -> ChildProcess {
        guard let placement else { return try ChildProcess(executable, arguments, environment: environment) }
        let spawnPlacement = try placement.placement.prepare(placement.unit)
        let child = try ChildProcess(executable, arguments, environment: environment, placement: spawnPlacement)
        if spawnPlacement.gated {
            do {
                try placement.placement.adopt(child.pid, into: placement.unit)
            } catch {
                child.abandon()
                throw error
            }
            try child.release()
        }
        return child
    }
}
