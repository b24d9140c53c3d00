import Dispatch
import Glibc
import Synchronization

/// Runs blocking system calls on a thread of their own, never on Swift's cooperative pool.
///
/// The cooperative pool has one thread per core (two on a small node). A `waitpid` on a mount, a
/// `stat` on a dead FUSE mount that never returns, or a `curl_easy_perform` waiting for Heketi
/// would starve every other RPC if it ran there. A fresh detached pthread per call costs tens of
/// microseconds — noise next to a mount or an HTTP exchange — and, unlike a fixed pool, never
/// makes fast work queue behind slow work. Concurrency is bounded above this layer (per-volume
/// locks, the Heketi client's limiter).
public enum BlockingThread {
    /// Runs `body` on a new thread and returns its result.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            start { continuation.resume(returning: body()) }
        }
    }

    /// Runs `body` on a new thread and returns its result, or `nil` if it has not finished after
    /// `timeout`.
    ///
    /// On timeout the thread is abandoned, not stopped: a thread stuck in a syscall on a dead FUSE
    /// mount cannot be interrupted. Callers use this only for calls that are safe to leave behind
    /// (`stat`, `statvfs`) — processes, which can be killed, go through `SystemCommandRunner`.
    public static func run<T: Sendable>(timeout: Duration, _ body: @escaping @Sendable () -> T) async -> T? {
        await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
            // Whoever comes first (the body or the timer) resumes; the other finds it done.
            let once = OnceResume(continuation)
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout.dispatchInterval) {
                once.resume(nil)
            }
            start { once.resume(body()) }
        }
    }

    /// Starts a detached pthread running `body` (for callers that resume their own continuation).
    public static func start(_ body: @escaping @Sendable () -> Void) {
        // The closure is boxed and its +1 reference handed to the new thread, which takes it back
        // (takeRetainedValue) — ownership moves across the pthread boundary exactly once.
        let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let status = pthread_create(
            &thread, &attributes,
            { argument in
                Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue().body()
                return nil
            }, box)
        if status != 0 {
            // Out of threads: running inline blocks a pool thread, but losing the work would be
            // worse (a continuation never resumed hangs the RPC forever).
            Unmanaged<ThreadBody>.fromOpaque(box).takeRetainedValue().body()
        }
    }
}

private final class ThreadBody: Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
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
    /// This duration as a Dispatch interval (nanosecond precision, negative clamped to zero).
    public var dispatchInterval: DispatchTimeInterval {
        .nanoseconds(Int(clamping: max(0, nanoseconds)))
    }

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
