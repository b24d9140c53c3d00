import Synchronization

/// A counting semaphore for async code: at most `limit` holders at once, waiters served first
/// come, first served.
///
/// The Heketi client holds one permit for each mutating operation from its POST/DELETE until
/// Heketi's queue reports the outcome, so bulk provisioning stays under Heketi's own in-flight
/// limit (8 by default) instead of collecting 429s. The controller may share one limiter between
/// several clients of the same Heketi, or use it for its own work.
///
/// Waiting honours task cancellation: a cancelled waiter leaves the queue and gets a
/// `CancellationError`; a permit granted to it is never lost.
public final class AsyncLimiter: Sendable {
    /// The most permits held at once.
    public let limit: Int

    private let state: Mutex<State>

    private struct State {
        var available: Int
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }

    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Void, any Error>
    }

    /// Whether one `acquire` was cancelled, shared by the waiting task and its cancellation
    /// handler. Only read and written under `state`'s lock; the atomic just makes that Sendable.
    private final class Ticket: Sendable {
        let cancelled = Atomic<Bool>(false)
    }

    /// - Parameter limit: permits available at once; values below 1 are raised to 1.
    public init(limit: Int) {
        self.limit = max(1, limit)
        self.state = Mutex(State(available: max(1, limit)))
    }

    /// Permits free right now (for tests and metrics).
    public var availablePermits: Int { state.withLock { $0.available } }

    /// Tasks waiting for a permit right now (for tests and metrics).
    public var waitingCount: Int { state.withLock { $0.waiters.count } }

    /// Takes a permit if one is free, without waiting.
    public func tryAcquire() -> Bool {
        state.withLock { state in
            guard state.available > 0 else { return false }
            state.available -= 1
            return true
        }
    }

    /// Waits for a permit. Every successful `acquire` must be balanced by one `release`.
    public func acquire() async throws(CancellationError) {
        if Task.isCancelled { throw CancellationError() }
        if tryAcquire() { return }
        let id = state.withLock { state -> UInt64 in
            state.nextID &+= 1
            return state.nextID
        }
        // The ticket covers a cancellation that lands before the waiter is queued.
        let ticket = Ticket()
        do {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let granted = state.withLock { state -> Bool? in
                        if ticket.cancelled.load(ordering: .relaxed) { return nil }
                        if state.available > 0 {
                            state.available -= 1
                            return true
                        }
                        state.waiters.append(Waiter(id: id, continuation: continuation))
                        return false
                    }
                    switch granted {
                    case .some(true): continuation.resume()
                    case .some(false): break
                    case .none: continuation.resume(throwing: CancellationError())
                    }
                }
            } onCancel: {
                let removed = state.withLock { state -> Waiter? in
                    ticket.cancelled.store(true, ordering: .relaxed)
                    guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.waiters.remove(at: index)
                }
                removed?.continuation.resume(throwing: CancellationError())
            }
        } catch {
            throw CancellationError()
        }
    }

    /// Returns a permit: the longest waiter gets it, or it becomes free.
    public func release() {
        let next = state.withLock { state -> Waiter? in
            if state.waiters.isEmpty {
                state.available = min(limit, state.available + 1)
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.continuation.resume()
    }

    /// Runs `body` holding a permit, released when `body` returns or throws.
    public func withPermit<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await acquire()
        defer { release() }
        return try await body()
    }
}
