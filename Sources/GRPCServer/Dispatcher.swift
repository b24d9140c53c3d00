import CSICore
import Logging
import Synchronization

/// Turns calls from the shim into handler invocations and their outcomes into answers.
final class Dispatcher: Sendable {
    private let router: Router
    private let logger: Logger
    private let nextRequestNumber = Atomic<UInt64>(1)
    /// Tasks of unanswered async calls, so cancellation can reach them. An entry is removed before
    /// its call is answered: the key (the call's address) cannot be reused while it is present.
    private let inFlight = Mutex<[UInt: Task<Void, Never>]>([:])

    init(router: Router, logger: Logger) {
        self.router = router
        self.logger = logger
    }

    /// Runs on the completion-queue thread: must not block.
    func accept(_ call: CallHandle, path: String, request: [UInt8], deadlineNanoseconds: Int64) {
        let requestID = String(nextRequestNumber.wrappingAdd(1, ordering: .relaxed).oldValue, radix: 16)
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
            inFlight.withLock { table in
                // Inserted under the lock so a fast task cannot try to remove itself first. Each call
                // gets a thread of its own, where backend work may block (see
                // DedicatedThreadExecutor): no hand-offs between threads while it runs.
                table[call.key] = BlockingThread.task {
                    let outcome: Result<[UInt8], any Error>
                    do {
                        outcome = .success(try await body(request, context))
                    } catch {
                        outcome = .failure(error)
                    }
                    _ = self.inFlight.withLock { $0.removeValue(forKey: call.key) }
                    self.finish(call, outcome, context: context, level: route.logLevel, started: started, path: path)
                }
            }
        }
    }

    /// Runs on the completion-queue thread: must not block.
    func cancel(_ call: CallHandle) {
        let task = inFlight.withLock { $0[call.key] }
        task?.cancel()
    }

    private func finish(
        _ call: CallHandle, _ outcome: Result<[UInt8], any Error>, context: RequestContext, level: Logger.Level,
        started: ContinuousClock.Instant, path: String
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
