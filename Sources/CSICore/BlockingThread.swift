import Glibc
import Synchronization

/// Runs blocking system calls on threads of their own, never on Swift's cooperative pool.
///
/// The cooperative pool has one thread per core (two on a small node). A `waitpid` on a mount, a
/// `stat` on a dead FUSE mount that never returns, or a `curl_easy_perform` waiting for Heketi
/// would starve every other RPC if it ran there. Each call gets a thread to itself — a parked one
/// when one is idle, a new one otherwise — so fast work never queues behind slow work. Parking
/// matters for the controller: one CreateVolume/DeleteVolume pair makes five Heketi requests, and
/// creating a thread for each cost more than the request to a local Heketi. Concurrency is
/// bounded above this layer (per-volume locks, the Heketi client's limiter).
public enum BlockingThread {
    /// Runs `body` on a thread where it may block and returns its result: in place when the caller
    /// already runs on such a thread (a `DedicatedThreadExecutor`'s), on a thread of its own
    /// otherwise.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        if mayBlockCurrentThread { return body() }
        return await withCheckedContinuation { continuation in
            start { continuation.resume(returning: body()) }
        }
    }

    /// Runs `body` on a thread of its own and returns its result, or `nil` if it has not finished after
    /// `timeout`.
    ///
    /// On timeout the thread is abandoned, not stopped: a thread stuck in a syscall on a dead FUSE
    /// mount cannot be interrupted. Callers use this only for calls that are safe to leave behind
    /// (`stat`, `statvfs`) — processes, which can be killed, go through `SystemCommandRunner`.
    public static func run<T: Sendable>(timeout: Duration, _ body: @escaping @Sendable () -> T) async -> T? {
        await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
            // Whoever comes first (the body or the timer) resumes; the other finds it done.
            let once = OnceResume(continuation)
            let timer = DeadlineTimer.shared.schedule(at: .now + timeout) { once.resume(nil) }
            start {
                once.resume(body())
                DeadlineTimer.shared.cancel(timer)
            }
        }
    }

    /// Runs `body` on a thread of its own (for callers that resume their own continuation).
    public static func start(_ body: @escaping @Sendable () -> Void) {
        ThreadCache.shared.run(body)
    }
}

/// Resumes a continuation at most once, from whichever of several racing threads gets there first.
private final class OnceResume<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, Never>?>
    init(_ continuation: CheckedContinuation<T, Never>) { self.continuation = Mutex(continuation) }
    func resume(_ value: T) {
        let pending = continuation.withLock { pending in
            defer { pending = nil }
            return pending
        }
        pending?.resume(returning: value)
    }
}

extension Duration {
    /// This duration in whole nanoseconds, saturating.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return scaled.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }

    /// This duration in whole milliseconds, saturating, for `poll(2)`.
    public var milliseconds: Int64 { nanoseconds / 1_000_000 }
}
