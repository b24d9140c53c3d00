import CSICore
import Logging

// Heketi's asynchronous pattern (heketi-api.md, "Asynchronous operations"):
//
//   POST/DELETE ...            -> 202, Location: /queue/<QID>
//   GET /queue/<QID> running   -> 200, X-Pending: true         (poll again, after a growing delay)
//   GET /queue/<QID> done      -> 303, Location: /volumes/<ID>  (create, expand, clone)
//                              -> 204                           (delete)
//                              -> 500, text = executor error
//   GET /queue/<QID> again     -> 404 (the result is delivered exactly once)
//
// A 404 while polling therefore means Heketi no longer knows the operation — in practice it was
// restarted and its in-memory queue is gone. HeketiAPI.swift is shared and has no case for that,
// so it is reported as `operationFailed` with a message saying the outcome is unknown and that a
// retry is safe (the controller finds an existing volume by name before creating).

extension HeketiClient {
    /// How a queue ended successfully.
    enum QueueOutcome: Equatable {
        /// 303: the API path of the resulting volume.
        case redirect(String)
        /// 204: done, nothing to fetch (delete).
        case done
    }

    /// Runs one asynchronous operation to its queue outcome, holding a mutation permit from the
    /// first request until the queue answers. The operation budget
    /// (`Configuration.operationTimeout`) starts once the permit is held.
    func runOperation(
        _ method: String, _ apiPath: String, body: [UInt8], what: String
    ) async throws(HeketiError)
        -> QueueOutcome
    {
        let limiter = configuration.mutationLimiter
        do {
            try await limiter.acquire()
        } catch {
            throw .timedOut("the wait to \(what) was cancelled while other Heketi operations held every slot")
        }
        defer { limiter.release() }

        let deadline = runtime.now() + configuration.operationTimeout
        let accepted = try await request(method, apiPath, body: body, expecting: [202], deadline: deadline)
        guard let location = accepted.headers["location"], let queuePath = baseURL?.apiPath(ofLocation: location),
            queuePath.hasPrefix("/queue/")
        else {
            throw .serverError(
                status: 202, message: "Heketi accepted \(method) \(apiPath) but gave no usable queue Location")
        }
        logger.debug("Heketi operation accepted", metadata: ["operation": "\(what)", "queue": "\(queuePath)"])
        let outcome = try await poll(queuePath, deadline: deadline, what: what)
        logger.debug("Heketi operation finished", metadata: ["operation": "\(what)", "queue": "\(queuePath)"])
        return outcome
    }

    /// Polls `queuePath` until Heketi reports the outcome or `deadline` passes.
    func poll(
        _ queuePath: String, deadline: ContinuousClock.Instant, what: String
    ) async throws(HeketiError)
        -> QueueOutcome
    {
        // The first poll goes out at once: Heketi's own work can be done within a millisecond, and
        // any wait before the first look is pure latency. Later polls back off.
        var delay = Duration.zero
        var failures = 0
        while true {
            // The last poll happens at the deadline, not one delay before it.
            let remaining = deadline - runtime.now()
            guard remaining > .zero else {
                logger.debug(
                    "Heketi operation out of time", metadata: ["operation": "\(what)", "queue": "\(queuePath)"])
                throw .timedOut(
                    "Heketi did not finish (\(what)) within \(configuration.operationTimeout); it may still complete "
                        + "in Heketi")
            }
            if delay > .zero {
                try await pause(min(delay, remaining), during: what)
            }
            delay = delay == .zero ? configuration.pollBackoff.initial : configuration.pollBackoff.next(after: delay)

            let response: HTTPResponse
            do {
                response = try await send("GET", queuePath, body: [], quiet: true)
            } catch {
                // The operation keeps running in Heketi; a blip on the way should not lose it.
                // (If the lost answer was the final one, the next poll gets 404 and says so.)
                let transient: Bool
                switch error {
                case .unreachable, .timedOut: transient = !Task.isCancelled
                default: transient = false
                }
                guard transient, failures < configuration.maxPollFailures else { throw error }
                failures += 1
                logger.debug(
                    "Heketi queue poll failed, retrying",
                    metadata: ["operation": "\(what)", "queue": "\(queuePath)", "failures": "\(failures)"])
                continue
            }
            failures = 0

            switch response.status {
            case 200 where response.headers["x-pending"]?.lowercased() == "true":
                continue
            case 303:
                guard let location = response.headers["location"], let path = baseURL?.apiPath(ofLocation: location),
                    path.hasPrefix("/volumes/")
                else {
                    throw .serverError(status: 303, message: "Heketi's queue answered 303 without a usable Location")
                }
                return .redirect(path)
            case 204:
                return .done
            case 500:
                logger.debug(
                    "Heketi operation failed",
                    metadata: [
                        "operation": "\(what)", "queue": "\(queuePath)", "body": "\(Self.logText(response.body))",
                    ])
                let reason = HeketiError.shortReason(response.body)
                throw .operationFailed("Heketi could not \(what): \(reason.isEmpty ? "no reason given" : reason)")
            case 404:
                logger.debug("Heketi lost the operation", metadata: ["operation": "\(what)", "queue": "\(queuePath)"])
                throw .operationFailed(
                    "Heketi lost track of the operation (\(what)): its queue no longer knows it, most likely because "
                        + "Heketi restarted; the outcome is unknown, retry")
            case 429:
                // Reads are not throttled by Heketi, but a proxy might: keep polling.
                continue
            default:
                throw failure(response, method: "GET", apiPath: queuePath)
            }
        }
    }

    /// The volume a create, expand or clone ended with. Heketi reveals a new volume's ID only in
    /// the 303, so a failed read is retried a few times before giving up, and the final error
    /// names the volume.
    func resultVolume(_ outcome: QueueOutcome, what: String) async throws(HeketiError) -> HeketiVolume {
        guard case .redirect(let path) = outcome else {
            throw .serverError(status: 204, message: "Heketi's queue answered 204 to \(what) instead of a volume")
        }
        var delay = configuration.throttleBackoff.initial
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await volume(apiPath: path)
            } catch {
                let transient: Bool
                switch error {
                case .unreachable, .timedOut, .throttled: transient = true
                case .serverError(let status, _): transient = status >= 500
                default: transient = false
                }
                guard transient, attempt < 3 else {
                    throw error.prefixed("Heketi finished (\(what)), resulting in \(path), but reading it failed: ")
                }
                try await pause(jittered(delay), during: what)
                delay = configuration.throttleBackoff.next(after: delay)
            }
        }
    }
}

extension HeketiError {
    /// The same error with `prefix` before its message.
    func prefixed(_ prefix: String) -> HeketiError {
        switch self {
        case .notFound(let message): .notFound(prefix + message)
        case .invalidRequest(let message): .invalidRequest(prefix + message)
        case .unauthorized(let message): .unauthorized(prefix + message)
        case .nameInUse(let message): .nameInUse(prefix + message)
        case .noSpace(let message): .noSpace(prefix + message)
        case .tooManyBricks(let message): .tooManyBricks(prefix + message)
        case .operationPending(let message): .operationPending(prefix + message)
        case .throttled(let message): .throttled(prefix + message)
        case .operationFailed(let message): .operationFailed(prefix + message)
        case .serverError(let status, let message): .serverError(status: status, message: prefix + message)
        case .unreachable(let message): .unreachable(prefix + message)
        case .timedOut(let message): .timedOut(prefix + message)
        case .clientUnusable(let message): .clientUnusable(prefix + message)
        }
    }
}
