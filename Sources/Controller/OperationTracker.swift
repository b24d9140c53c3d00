import CSICore
import Synchronization

/// Runs at most one backend operation per key, lets it outlive the RPC that started it, and hands
/// its outcome to the next caller when the first one stopped waiting.
///
/// Heketi creates a real volume in seconds; the CO may give up earlier and retry. Abandoning the
/// operation would make the retry start a second one (the duplicate-volume bug users of earlier
/// drivers suffered). Instead the operation runs in its own task, the RPC waits for it only until
/// its deadline, and a retry either finds it still running (ABORTED, retry later) or receives its
/// outcome, exactly once. An outcome nobody collects (the CO gave up, e.g. the PVC was deleted) is
/// dropped after `keepOutcome`, so it can neither pile up nor reach a much later, unrelated call.
final class OperationTracker<Value: Sendable>: Sendable {
    private let operations = Mutex<[String: PendingOperation<Value>]>([:])
    /// What the operations do, for messages: "creating", "deleting", "expanding".
    private let verb: String
    /// How long an uncollected outcome is kept. The CO's retries back off to a few minutes at most
    /// (external-provisioner: 5 min), so a retry that is still coming arrives well within this.
    private let keepOutcome: Duration

    init(verb: String, keepOutcome: Duration = .seconds(600)) {
        self.verb = verb
        self.keepOutcome = keepOutcome
    }

    /// Starts `operation` for `key` (or collects the outcome of an earlier one) and waits for it
    /// until `deadline`.
    ///
    /// - Throws: ABORTED when an operation for `key` is still running, or when `deadline` passed
    ///   first (the operation goes on; a retry collects its outcome). `CancellationError` when the
    ///   calling task is cancelled. Otherwise whatever the operation threw.
    func run(
        key: String, subject: String, deadline: ContinuousClock.Instant,
        operation: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        let (pending, isNew) = operations.withLock { table -> (PendingOperation<Value>, Bool) in
            if let existing = table[key] { return (existing, false) }
            let pending = PendingOperation<Value>()
            table[key] = pending
            return (pending, true)
        }
        if isNew {
            // Unstructured on purpose: the operation must not be cancelled with the RPC. It runs on
            // a thread of its own, so its Heketi requests run back to back without thread hand-offs.
            BlockingThread.task { [keepOutcome] in
                let collected = pending.finish(await Result { try await operation() })
                if !collected {
                    _ = DeadlineTimer.shared.schedule(at: .now + keepOutcome) { self.forget(key, pending) }
                }
            }
        } else if let earlier = pending.outcome {
            forget(key, pending)
            return try earlier.get()
        } else {
            throw CSIError.aborted("the driver is still \(verb) \(subject); retry later")
        }

        guard let outcome = await pending.wait(until: deadline) else {
            try Task.checkCancellation()
            throw CSIError.aborted(
                "the driver is still \(verb) \(subject) and goes on in the background; retry to collect the result")
        }
        forget(key, pending)
        return try outcome.get()
    }

    /// Whether an operation for `key` is running or holds an uncollected outcome (for tests).
    func isTracking(_ key: String) -> Bool {
        operations.withLock { $0[key] != nil }
    }

    private func forget(_ key: String, _ pending: PendingOperation<Value>) {
        operations.withLock { table in
            if table[key] === pending { table[key] = nil }
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}

/// One operation's outcome and whoever waits for it.
final class PendingOperation<Value: Sendable>: Sendable {
    private struct State {
        var outcome: Result<Value, any Error>?
        var waiters: [Int: CheckedContinuation<Result<Value, any Error>?, Never>] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    var outcome: Result<Value, any Error>? { state.withLock { $0.outcome } }

    /// Stores the outcome and hands it to whoever waits. Returns whether anyone did.
    func finish(_ outcome: Result<Value, any Error>) -> Bool {
        let waiters = state.withLock { state in
            state.outcome = outcome
            defer { state.waiters = [:] }
            return state.waiters.values
        }
        for waiter in waiters { waiter.resume(returning: outcome) }
        return !waiters.isEmpty
    }

    /// The outcome, or nil when `deadline` passed or the caller was cancelled first.
    func wait(until deadline: ContinuousClock.Instant) async -> Result<Value, any Error>? {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        let timer = DeadlineTimer.shared.schedule(at: deadline) { self.expire(id) }
        defer { DeadlineTimer.shared.cancel(timer) }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Result<Value, any Error>?? in
                    if let outcome = state.outcome { return .some(outcome) }
                    if Task.isCancelled || ContinuousClock.now >= deadline { return .some(nil) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            expire(id)
        }
    }

    private func expire(_ id: Int) {
        let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
        waiter?.resume(returning: nil)
    }
}
