import Glibc

/// Runs actions at deadlines, from one thread of its own.
///
/// Every CreateVolume and DeleteVolume waits for its Heketi operation only until the RPC's
/// deadline. A sleeping task per wait costs a task, a Dispatch timer and a cancellation — several
/// thread wake-ups per RPC, about as much as the RPC's real work. Here a wait costs a table entry:
/// the timer thread sleeps until the earliest deadline and is woken only when a new deadline is
/// earlier still. A cancelled entry is just removed; the thread finds nothing due when it wakes.
public final class DeadlineTimer: @unchecked Sendable {
    public static let shared = DeadlineTimer()

    /// Identifies one scheduled action, for `cancel`.
    public struct Token: Sendable, Hashable {
        fileprivate let id: UInt64
    }

    private struct Entry {
        let deadline: ContinuousClock.Instant
        let action: @Sendable () -> Void
    }

    /// Guards everything below.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let changed: UnsafeMutablePointer<pthread_cond_t>
    private var entries: [UInt64: Entry] = [:]
    private var nextID: UInt64 = 0
    private var started = false
    /// Whether the timer thread is waiting on `changed`, and until when (nil: with nothing due).
    private var sleeping = false
    private var sleepingUntil: ContinuousClock.Instant?

    public init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        changed = MonotonicCondition.make()
    }

    /// Calls `action` (on the timer thread; it must be quick and must not block) at `deadline`,
    /// unless `cancel` comes first. A deadline already past fires at once.
    public func schedule(at deadline: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> Token {
        pthread_mutex_lock(mutex)
        let id = nextID
        nextID += 1
        entries[id] = Entry(deadline: deadline, action: action)
        let start = !started
        started = true
        if !start, sleeping, sleepingUntil.map({ deadline < $0 }) ?? true {
            pthread_cond_signal(changed)
        }
        pthread_mutex_unlock(mutex)
        if start {
            ThreadCache.shared.run { [self] in fireForever() }
        }
        return Token(id: id)
    }

    /// Drops the action if it has not run yet. Never waits for an action that is running.
    public func cancel(_ token: Token) {
        pthread_mutex_lock(mutex)
        entries[token.id] = nil
        pthread_mutex_unlock(mutex)
    }

    /// How many actions are scheduled (for tests).
    var pendingCount: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return entries.count
    }

    private func fireForever() {
        pthread_mutex_lock(mutex)
        while true {
            let now = ContinuousClock.now
            let due = entries.filter { $0.value.deadline <= now }
            if !due.isEmpty {
                for id in due.keys { entries[id] = nil }
                pthread_mutex_unlock(mutex)
                for entry in due.values { entry.action() }
                pthread_mutex_lock(mutex)
                continue
            }
            let earliest = entries.values.lazy.map(\.deadline).min()
            sleeping = true
            sleepingUntil = earliest
            if let earliest {
                // At most an hour at a time (MonotonicCondition): a far deadline (a client may ask
                // for centuries) needs no exact wake-up, and the loop re-arms.
                var wake = MonotonicCondition.deadline(after: earliest - now)
                pthread_cond_timedwait(changed, mutex, &wake)
            } else {
                pthread_cond_wait(changed, mutex)
            }
            sleeping = false
        }
    }
}
