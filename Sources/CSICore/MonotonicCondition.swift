import Glibc

/// pthread condition variables whose timed waits count by CLOCK_MONOTONIC, so a step of the wall
/// clock (NTP, an admin) neither cuts a wait short nor stretches it.
enum MonotonicCondition {
    /// A new condition variable (free it with `destroy`).
    static func make() -> UnsafeMutablePointer<pthread_cond_t> {
        let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
        return condition
    }

    static func destroy(_ condition: UnsafeMutablePointer<pthread_cond_t>) {
        pthread_cond_destroy(condition)
        condition.deallocate()
    }

    /// The absolute time for `pthread_cond_timedwait`, `duration` from now. Clamped to between
    /// zero and an hour: callers that wait longer wake up and wait again, and no far-off deadline
    /// can overflow the arithmetic.
    static func deadline(after duration: Duration) -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let nanoseconds = Int64(now.tv_nsec) + min(max(duration.nanoseconds, 0), 3_600_000_000_000)
        return timespec(
            tv_sec: now.tv_sec + Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    }
}
