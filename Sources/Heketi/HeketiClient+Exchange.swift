import CSICore
import Logging

extension HeketiClient {
    /// One HTTP exchange with a fresh token. Any HTTP status is returned; only a missing answer
    /// throws.
    ///
    /// - Parameter quiet: log at trace instead of debug (queue polls).
    func send(
        _ method: String, _ apiPath: String, body: [UInt8], quiet: Bool = false
    ) async throws(HeketiError)
        -> HTTPResponse
    {
        guard let baseURL else {
            throw .invalidRequest(endpoint.urlProblem ?? "the Heketi URL is not usable")
        }
        let target = baseURL.target(apiPath: apiPath)
        var headers: [(name: String, value: String)] = [("Accept", "application/json")]
        if !endpoint.key.isEmpty {
            let token = HeketiToken(
                method: method, path: target.path, issuer: endpoint.user, key: endpoint.key,
                issuedAt: runtime.unixTime(), lifetime: configuration.tokenLifetime.components.seconds)
            headers.append(("Authorization", "Bearer " + token.compact))
        }
        if !body.isEmpty { headers.append(("Content-Type", "application/json")) }
        let request = HTTPRequest(
            method: method, url: target.url, headers: headers, body: body,
            connectTimeout: configuration.connectTimeout, timeout: configuration.requestTimeout)

        let started = runtime.now()
        let response: HTTPResponse
        do {
            response = try await transport.send(request)
        } catch {
            if Task.isCancelled {
                throw .timedOut("the wait for Heketi (\(method) \(apiPath)) was cancelled")
            }
            // The transport's reason names host and port at most, never headers.
            logger.debug(
                "Heketi request failed",
                metadata: ["method": "\(method)", "path": "\(target.path)", "error": "\(error)"])
            throw HeketiError.from(error, method: method, path: target.path, endpoint: endpoint)
        }
        // Built only when the line is written: every queue poll passes here.
        let level: Logger.Level = quiet ? .trace : .debug
        if logger.logLevel <= level {
            logger.log(
                level: level, "Heketi request",
                metadata: [
                    "method": "\(method)", "path": "\(target.path)", "status": "\(response.status)",
                    "ms": "\((runtime.now() - started).milliseconds)",
                ])
        }
        return response
    }

    /// An exchange that must end in one of `expecting`. 429 is retried with jittered back-off
    /// while the next attempt would still start before `deadline`; any other status becomes
    /// the matching `HeketiError`, with Heketi's raw body logged at debug.
    func request(
        _ method: String, _ apiPath: String, body: [UInt8], expecting: Set<Int>,
        deadline: ContinuousClock.Instant
    ) async throws(HeketiError) -> HTTPResponse {
        var delay = configuration.throttleBackoff.initial
        var attempts = 0
        while true {
            attempts += 1
            let response = try await send(method, apiPath, body: body)
            if expecting.contains(response.status) { return response }
            if response.status == 429 {
                let wait = jittered(delay)
                if runtime.now() + wait <= deadline {
                    logger.debug(
                        "Heketi busy (429), retrying",
                        metadata: ["path": "\(apiPath)", "attempt": "\(attempts)", "delay_ms": "\(wait.milliseconds)"])
                    try await pause(wait, during: "\(method) \(apiPath)")
                    delay = configuration.throttleBackoff.next(after: delay)
                    continue
                }
                logger.debug(
                    "Heketi still busy (429), giving up", metadata: ["path": "\(apiPath)", "attempts": "\(attempts)"])
                throw .throttled(
                    "Heketi at \(endpoint.url) answered 429 Server busy to \(method) \(apiPath) \(attempts) times; "
                        + "too many operations are running on it")
            }
            throw failure(response, method: method, apiPath: apiPath)
        }
    }

    /// The error for an unexpected answer, after logging Heketi's raw body.
    func failure(_ response: HTTPResponse, method: String, apiPath: String) -> HeketiError {
        logger.debug(
            "Heketi refused a request",
            metadata: [
                "method": "\(method)", "path": "\(apiPath)", "status": "\(response.status)",
                "body": "\(Self.logText(response.body))",
            ])
        return HeketiError.from(
            status: response.status, body: response.body, method: method, path: apiPath, endpoint: endpoint)
    }

    /// Sleeps through the injected runtime; cancellation becomes `timedOut`.
    func pause(_ duration: Duration, during what: String) async throws(HeketiError) {
        do {
            try await runtime.sleep(duration)
        } catch {
            throw .timedOut("the wait for Heketi (\(what)) was cancelled")
        }
    }

    /// A delay drawn uniformly from [d/2, d].
    func jittered(_ delay: Duration) -> Duration {
        delay / 2 + delay * (0.5 * min(max(runtime.random(), 0), 1))
    }

    /// Heketi's body for the log: as text, cut at 4 KiB. (It holds Heketi's own error text or
    /// JSON — never one of our headers.)
    static func logText(_ body: [UInt8]) -> String {
        let limit = 4096
        let text = String(decoding: body.prefix(limit), as: UTF8.self)
        return body.count > limit ? text + "…" : text
    }
}
