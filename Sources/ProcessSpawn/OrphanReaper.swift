import CSpawnShim
import Glibc

/// Reaps the orphans that land on this process when it is PID 1 of its PID namespace.
///
/// A container's init inherits every process whose parent exits in it — the glusterfs client
/// daemonises by forking and letting its parent exit, and its auto_unmount helper follows — and
/// the kernel keeps each as a zombie until init reaps it. Without a reaper every unstaged volume
/// left two zombies counted against the pod's pids limit. The children this process waits for
/// itself (`ChildProcess`) are never touched: their waiters need the exit status.
public enum OrphanReaper {
    /// Starts reaping when this process is PID 1 (its container's init); returns whether it did.
    /// Call once, early, before any child is started.
    @discardableResult
    public static func startIfInit() -> Bool {
        guard getpid() == 1 else { return false }
        start()
        return true
    }

    /// Starts a thread that reaps orphans whenever a child ends (SIGCHLD).
    static func start() {
        var fds: [Int32] = [-1, -1]
        guard cspawn_pipe(&fds) == 0 else { return }
        // Never block the signal handler: a full pipe already means "look again".
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        guard cspawn_notify_child_exits(fds[1]) == 0 else { return }
        let wake = fds[0]
        var thread = pthread_t()
        let box = Unmanaged.passRetained(WakeDescriptor(wake))
        _ = pthread_create(
            &thread, nil,
            { argument in
                let wake = Unmanaged<WakeDescriptor>.fromOpaque(argument!).takeRetainedValue().fd
                var buffer = [UInt8](repeating: 0, count: 64)
                while true {
                    OrphanReaper.reapOrphans()
                    let count = buffer.withUnsafeMutableBytes { read(wake, $0.baseAddress, $0.count) }
                    if count < 0 && errno != EINTR { return nil }
                }
            }, box.toOpaque())
        pthread_detach(thread)
    }

    /// Reaps every ended child that no `ChildProcess` waits for; returns how many it reaped.
    ///
    /// waitid shows one ended child at a time. When that one is ours, its waiter reaps it within
    /// milliseconds (it polls), so this waits — up to `patience` — and looks again rather than
    /// leaving an orphan behind it until the next SIGCHLD, which may never come.
    @discardableResult
    public static func reapOrphans(patience: Duration = .seconds(5)) -> Int {
        var reaped = 0
        var patience = max(
            1, Int(patience.components.seconds * 100 + patience.components.attoseconds / 10_000_000_000_000_000))
        while true {
            let pid = cspawn_ended_child()
            guard pid > 0 else { return reaped }
            if ChildRegistry.reapUnlessRegistered(pid) {
                reaped += 1
            } else {
                patience -= 1
                if patience == 0 { return reaped }
                usleep(10_000)
            }
        }
    }
}

/// The pipe's read end, handed to the reaper thread.
private final class WakeDescriptor {
    let fd: Int32
    init(_ fd: Int32) { self.fd = fd }
}
