import Glibc
import Synchronization

/// The children this process started and waits for itself (`ChildProcess`), so that an orphan
/// reaper never takes their exit status.
enum ChildRegistry {
    private static let pids = Mutex<Set<pid_t>>([])

    /// Runs `start` (which forks) under the lock and records the pid it returns (0: nothing
    /// started). Returns `start`'s status.
    static func registering(_ start: () -> (pid: pid_t, status: Int32)) -> Int32 {
        pids.withLock { pids in
            let started = start()
            if started.pid > 0 { pids.insert(started.pid) }
            return started.status
        }
    }

    /// Forgets `pid` once it was reaped.
    static func forget(_ pid: pid_t) {
        _ = pids.withLock { $0.remove(pid) }
    }

    /// Reaps `pid` unless it is registered; whether it did. Under the lock, so a registration
    /// cannot slip in between the check and the reaping.
    static func reapUnlessRegistered(_ pid: pid_t) -> Bool {
        pids.withLock { pids in
            guard !pids.contains(pid) else { return false }
            var status: Int32 = 0
            return waitpid(pid, &status, WNOHANG) == pid
        }
    }
}
