import CSICore
import Logging
import Synchronization

/// Turns calls from the shim into handler invocations and their outcomes into answers.
///
/// Inline routes answer on the completion-queue thread. Async routes run in a task of their own
/// on a thread where they may block; a route with a `CallLimit` first takes one of its slots, or
/// waits for one (costing no thread), or is refused with the route's busy code.
final class Dispatcher: Sendable {
    private let router: Router
    private let logger: Logger
    private let nextRequestNumber = Atomic<UInt64>(1)
    /// Unanswered async calls, running or waiting for a slot, so cancellation can reach them. An
    /// entry is removed before its call is answered: the key (the call's address) cannot be reused
    /// while it is present.
    private let inFlight = Mutex<[UInt: PendingCall]>([:])

    init(router: Router, logger: Logger) {
        self.router = router
        self.logger = logger
    }

    /// Runs on the completion-queue thread: must not block.
    func accept<Call: AnswerableCall>(
        _ call: Call, path: String, request: [UInt8], deadlineNanoseconds: Int64
    ) {
        let number = nextRequestNumber.wrappingAdd(1, ordering: .relaxed).oldValue
        let requestID = String(number, radix: 16)
        let deadline = deadlineNanoseconds < 0 ? nil : ContinuousClock.now + .nanoseconds(deadlineNanoseconds)
        let route = router.route(for: path)
        // The child logger costs metadata allocations on every call. Inline routes whose lines are
        // filtered out (Probe at trace, called every few seconds) skip it; they do not log, and a
        // failure gets the metadata added in `finish`.
        var callLogger = logger
        if route.map({ !$0.isInline || logger.logLevel <= $0.logLevel }) ?? true {
            Self.attach(path: path, requestID: requestID, to: &callLogger)
        }
        let context = RequestContext(logger: callLogger, requestID: requestID, deadline: deadline)

        guard let route else {
            callLogger.debug("rpc for an unknown method")
            call.respond(
                status: .unimplemented, message: "method \(path) is not implemented by this driver", response: [])
            return
        }
        callLogger.log(level: route.logLevel, "rpc started")
        let started = ContinuousClock.now
        switch route.body {
        case .inline(let body):
            let outcome = Result { try body(request, context) }
            finish(call, outcome, context: context, level: route.logLevel, started: started, path: path)
        case .async(let body):
            let answer: @Sendable (Result<[UInt8], any Error>) -> Void = { outcome in
                _ = self.inFlight.withLock { $0.removeValue(forKey: call.key) }
                self.finish(call, outcome, context: context, level: route.logLevel, started: started, path: path)
            }
            let pending = PendingCall(ticket: number, limit: route.limit, answer: answer)
            // In the table before the task exists, so neither a fast task nor a cancellation can miss it.
            inFlight.withLock { $0[call.key] = pending }
            let run: @Sendable (CallLimit.Slot?) -> Void = { slot in
                // Each call gets a thread of its own, where backend work may block (see
                // DedicatedThreadExecutor): no hand-offs between threads while it runs.
                pending.attach(
                    BlockingThread.task {
                        answer(await Self.outcome(of: body, request: request, context: context, holding: slot))
                    })
            }
            guard let limit = route.limit else {
                run(nil)
                return
            }
            let admission = limit.submit(ticket: number, deadline: deadline, start: run) { refusal in
                let code: StatusCode = refusal == .deadlinePassed ? .deadlineExceeded : route.busyCode
                answer(.failure(CSIError(code, limit.message(for: refusal))))
            }
            if admission == .waiting {
                callLogger.log(
                    level: route.logLevel, "rpc waits for a call slot",
                    metadata: ["rpc.running": "\(limit.maxRunning)", "rpc.limit": "\(limit.setting)"])
            }
        }
    }

    /// Runs on the completion-queue thread: must not block. The call still has to be answered:
    /// by its task when it runs, here when it was waiting for a slot.
    func cancel(key: UInt) {
        guard let pending = inFlight.withLock({ $0[key] }) else { return }
        pending.cancel()
        if let limit = pending.limit, limit.withdraw(pending.ticket) {
            pending.answer(.failure(CancellationError()))
        }
    }

    /// Async calls not answered yet, running or waiting (for tests).
    var unansweredCount: Int { inFlight.withLock { $0.count } }

    /// The handler's outcome; with `slot` bound as a task-local value, so that tasks the handler
    /// starts inherit it and keep it until they end (see `CallLimit`).
    private static func outcome(
        of body: @Sendable ([UInt8], RequestContext) async throws -> [UInt8], request: [UInt8],
        context: RequestContext, holding slot: CallLimit.Slot?
    ) async -> Result<[UInt8], any Error> {
        do {
            guard let slot else { return .success(try await body(request, context)) }
            return .success(try await CallLimit.Slot.$current.withValue(slot) { try await body(request, context) })
        } catch {
            return .failure(error)
        }
    }

    private func finish(
        _ call: some AnswerableCall, _ outcome: Result<[UInt8], any Error>, context: RequestContext,
        level: Logger.Level, started: ContinuousClock.Instant, path: String
    ) {
        switch outcome {
        case .success(let response):
            context.logger.log(
                level: level, "rpc finished",
                metadata: ["rpc.status": "OK", "rpc.duration_ms": "\(milliseconds(since: started))"])
            call.respond(status: .ok, message: "", response: response)
        case .failure(let error):
            var context = context
            if context.logger[metadataKey: "rpc.request_id"] == nil {
                Self.attach(path: path, requestID: context.requestID, to: &context.logger)
            }
            let (status, message) = StatusMapping.status(for: error, context: context)
            context.logger.log(
                level: max(level, .info), "rpc failed",
                metadata: [
                    "rpc.status": "\(status)", "rpc.error": "\(message)",
                    "rpc.duration_ms": "\(milliseconds(since: started))",
                ])
            call.respond(status: status, message: message, response: [])
        }
    }

    private static func attach(path: String, requestID: String, to logger: inout Logger) {
        logger[metadataKey: "rpc.method"] = "\(path)"
        logger[metadataKey: "rpc.request_id"] = "\(requestID)"
    }

    /// Milliseconds with three decimals, e.g. `0.136`.
    private func milliseconds(since start: ContinuousClock.Instant) -> String {
        let (seconds, attoseconds) = (ContinuousClock.now - start).components
        let microseconds = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        let fraction = String(microseconds % 1000)
        return "\(microseconds / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}

/// One unanswered async call: how to answer it, and its task once it runs.
private final class PendingCall: Sendable {
    /// Its place in its limit's queue while it waits (the request number: unique).
    let ticket: UInt64
    let limit: CallLimit?
    /// Removes the call from the in-flight table and answers it.
    let answer: @Sendable (Result<[UInt8], any Error>) -> Void
    private let state = Mutex<(task: Task<Void, Never>?, cancelled: Bool)>((nil, false))

    init(ticket: UInt64, limit: CallLimit?, answer: @escaping @Sendable (Result<[UInt8], any Error>) -> Void) {
        self.ticket = ticket
        self.limit = limit
        self.answer = answer
    }

    /// Records the call's task, and cancels it at once when the cancellation came first (while
    /// the call was being taken out of the queue to start).
    func attach(_ task: Task<Void, Never>) {
        let cancelled = state.withLock { state in
            state.task = task
            return state.cancelled
        }
        if cancelled { task.cancel() }
    }

    /// The client cancelled, its deadline passed, or shutdown gave up: cancels the task if it runs.
    func cancel() {
        let task = state.withLock { state in
            state.cancelled = true
            return state.task
        }
        task?.cancel()
    }
}
