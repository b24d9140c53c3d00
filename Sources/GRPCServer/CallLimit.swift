import CSICore
import Synchronization

/// At most `maxRunning` calls of one service at once; up to `maxWaiting` more wait briefly for a
/// slot, and the rest are refused so that the client retries later.
///
/// Every running call has a thread of its own (its handler may block in a Heketi request or a
/// mount; see `BlockingThread`), so without a cap a flood of calls costs a thread per call:
/// 1,000 CreateVolume calls against a Heketi that did not answer made the controller start 1,013
/// threads. With the cap a service never runs more than `maxRunning` calls. A waiting call costs
/// no thread and no task, only an entry here and one in `DeadlineTimer`: it starts when a call of
/// the same service frees a slot, and is refused when it has waited `maxWait` (or at once when
/// `maxWaiting` calls already wait). Its refusal is answered from the timer's thread: a log line
/// and a non-blocking send, as quick as the timer's other actions.
///
/// A slot is held until the call *and the work it left running* have ended: a task its handler
/// starts (`Task {}`, `BlockingThread.task`) inherits the slot through a task-local value. This is
/// deliberate. The controller's Heketi operation outlives an RPC whose deadline passed
/// (`OperationTracker`) and keeps the thread it shares with the handler; were the slot freed with
/// the RPC, every retry round of a flood would leave `maxRunning` more threads behind. Work meant
/// to outlive every call must be started outside calls, or with `Task.detached`.
///
/// The limit only counts; the dispatcher decides how a call starts and how a refusal is answered.
public final class CallLimit: Sendable {
    /// The service, for messages: "controller", "node".
    public let service: String
    /// The flag that sets `maxRunning`, for messages: "--max-controller-calls".
    public let setting: String
    /// Calls of this service that may run at once.
    public let maxRunning: Int
    /// Calls that may wait for a slot at once; beyond it, calls are refused without waiting.
    public let maxWaiting: Int
    /// How long a call waits for a slot before it is refused.
    public let maxWait: Duration

    private let state = Mutex(State())
    private let timer: DeadlineTimer

    private struct State {
        var running = 0
        /// First come, first served. Short (`maxWaiting`), so removal by ticket is a scan.
        var waiting: [Waiter] = []
    }

    private struct Waiter {
        let ticket: UInt64
        let start: @Sendable (Slot) -> Void
        let refuse: @Sendable (Refusal) -> Void
        let timer: DeadlineTimer.Token
    }

    /// What `submit` did with a call.
    enum Admission: Sendable, Equatable {
        /// It took a free slot and started.
        case started
        /// It waits for a slot.
        case waiting
        /// The queue was full: refused.
        case refused
    }

    /// Why a call was refused.
    enum Refusal: Sendable, Equatable {
        /// `maxWaiting` calls were waiting already: refused on arrival.
        case queueFull
        /// No slot came free within `maxWait`.
        case waitedTooLong
        /// The client's deadline passed while the call waited.
        case deadlinePassed
    }

    /// - Parameters:
    ///   - service: the service's name for messages ("controller").
    ///   - setting: the flag that sets `maxRunning`, for messages ("--max-controller-calls").
    ///   - maxRunning: calls that may run at once (at least 1).
    ///   - maxWaiting: calls that may wait at once; `nil` for as many as may run.
    ///   - maxWait: how long a call waits for a slot. Long enough for short calls to make room
    ///     (most take milliseconds), short enough that a client hears "busy" long before its own
    ///     deadline (csi-provisioner's default is 10 s) and backs off.
    public init(
        service: String, setting: String, maxRunning: Int, maxWaiting: Int? = nil, maxWait: Duration = .seconds(1),
        timer: DeadlineTimer = .shared
    ) {
        self.service = service
        self.setting = setting
        self.maxRunning = max(1, maxRunning)
        self.maxWaiting = max(0, maxWaiting ?? maxRunning)
        self.maxWait = maxWait
        self.timer = timer
    }

    /// Calls holding a slot right now (for tests and diagnostics).
    public var runningCount: Int { state.withLock { $0.running } }

    /// Calls waiting for a slot right now (for tests and diagnostics).
    public var waitingCount: Int { state.withLock { $0.waiting.count } }

    /// Admits a call. When a slot is free, `start` runs at once on the caller's thread. Otherwise
    /// the call waits under `ticket` (unique among waiting calls): `start` runs later, on a thread
    /// of its own, when a slot comes free; or `refuse` runs once, when the call has waited
    /// `maxWait` or until `deadline` (on the timer's thread), or at once when the queue is full.
    /// Exactly one of them runs, exactly once, unless `withdraw` takes the call out first.
    /// Never blocks: the completion-queue thread calls it.
    @discardableResult
    func submit(
        ticket: UInt64, deadline: ContinuousClock.Instant?, start: @escaping @Sendable (Slot) -> Void,
        refuse: @escaping @Sendable (Refusal) -> Void
    ) -> Admission {
        let giveUp = min(ContinuousClock.now + maxWait, deadline ?? .now + maxWait)
        let admission = state.withLock { state -> Admission in
            if state.running < maxRunning {
                state.running += 1
                return .started
            }
            guard state.waiting.count < maxWaiting else { return .refused }
            // Scheduled under the lock, so the timer cannot fire for a waiter not yet queued. (The
            // timer takes only its own lock, and runs actions without it: no lock-order cycle.)
            let token = timer.schedule(at: giveUp) { [self] in expire(ticket, deadline: deadline) }
            state.waiting.append(Waiter(ticket: ticket, start: start, refuse: refuse, timer: token))
            return .waiting
        }
        switch admission {
        case .started: start(Slot(self))
        case .waiting: break
        case .refused: refuse(.queueFull)
        }
        return admission
    }

    /// Takes a waiting call out of the queue (its client cancelled or went away). Returns whether
    /// it was still waiting: then neither `start` nor `refuse` will run, and the caller answers it.
    func withdraw(_ ticket: UInt64) -> Bool {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.waiting.firstIndex(where: { $0.ticket == ticket }) else { return nil }
            return state.waiting.remove(at: index)
        }
        guard let waiter else { return false }
        timer.cancel(waiter.timer)
        return true
    }

    /// The client-facing text for a refusal: what happened and what to do.
    func message(for refusal: Refusal) -> String {
        let running = "the \(service) already runs \(Self.calls(maxRunning)) (\(setting))"
        switch refusal {
        case .queueFull where maxWaiting == 0:
            return "\(running); retry later"
        case .queueFull:
            return "\(running) and \(maxWaiting) more wait for a slot; retry later"
        case .waitedTooLong:
            return "\(running); this call waited \(Self.text(maxWait)) for one of them to finish; retry later"
        case .deadlinePassed:
            return "\(running); the call's deadline passed while it waited for one of them to finish"
        }
    }

    /// A slot came free: the longest-waiting call takes it over, or it returns to the pool.
    private func release() {
        let next = state.withLock { state -> Waiter? in
            guard !state.waiting.isEmpty else {
                state.running -= 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        guard let next else { return }
        timer.cancel(next.timer)
        // A slot is released where the last task holding it ends: on that task's thread, possibly
        // while the runtime tears that task down. Starting the next call there would tie its task
        // to that thread's executor (or copy the ending task's task-locals); a thread of its own
        // has neither. The hand-off is emptied when taken: a parked thread keeps its last job, and
        // must not keep the slot (or the call's request) with it.
        let handoff = Mutex<(Waiter, Slot)?>((next, Slot(self)))
        BlockingThread.start {
            guard let (waiter, slot) = handoff.withLock({ $0.take() }) else { return }
            waiter.start(slot)
        }
    }

    private func expire(_ ticket: UInt64, deadline: ContinuousClock.Instant?) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.waiting.firstIndex(where: { $0.ticket == ticket }) else { return nil }
            return state.waiting.remove(at: index)
        }
        guard let waiter else { return }
        let deadlinePassed = deadline.map { $0 <= .now } ?? false
        waiter.refuse(deadlinePassed ? .deadlinePassed : .waitedTooLong)
    }

    private static func calls(_ count: Int) -> String { count == 1 ? "1 call" : "\(count) calls" }

    /// "1 s", "1.5 s", "250 ms".
    private static func text(_ duration: Duration) -> String {
        let milliseconds = duration.milliseconds
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000) s" }
        if milliseconds > 1000 { return "\(Double(milliseconds) / 1000) s" }
        return "\(milliseconds) ms"
    }

    /// One running call's hold on the limit, given back when the last reference goes: the call's
    /// task binds it as a task-local value, which every task started from it inherits.
    final class Slot: Sendable {
        /// The slot of the call this task serves, or of the call that started it. Nothing reads it:
        /// the binding exists so that child and unstructured tasks copy it, and so keep the slot.
        @TaskLocal static var current: Slot?

        private let limit: CallLimit

        fileprivate init(_ limit: CallLimit) {
            self.limit = limit
        }

        deinit {
            limit.release()
        }
    }
}
