import Glibc
import Synchronization

/// The children this process started and waits for itself (`ChildProcess`), so that an orphan
/// reaper never takes their exit status.
enum ChildRegistry {
    private struct State {
        var pids: Set<pid_t> = []
        /// Starts under way: their child may exist before its pid is known here.
        var starting = 0
    }

    private static let state = Mutex(State())

    /// Runs `start` (which forks or spawns) and records the pid it returns (0: nothing started).
    /// Returns `start`'s status. Starts run side by side; while any is under way the reaper
    /// leaves unknown children alone (see `reapUnlessRegistered`).
    static func registering(_ start: () -> (pid: pid_t, status: Int32)) -> Int32 {
        state.withLock { $0.starting += 1 }
        let started = start()
        state.withLock { state in
            state.starting -= 1
            if started.pid > 0 { state.pids.insert(started.pid) }
        }
        return started.status
    }

    /// Forgets `pid` once it was reaped.
    static func forget(_ pid: pid_t) {
        _ = state.withLock { $0.pids.remove(pid) }
    }

    /// Reaps `pid` unless it is ours, or may be (a start is under way); whether it did. Under the
    /// lock, so a registration cannot slip in between the check and the reaping.
    static func reapUnlessRegistered(_ pid: pid_t) -> Bool {
        state.withLock { state in
            guard state.starting == 0, !state.pids.contains(pid) else { return false }
            var status: Int32 = 0
            return waitpid(pid, &status, WNOHANG) == pid
        }
    }
}
