import CCurlShim
import CSICore
import Synchronization

/// The real `HTTPTransport`: libcurl's easy interface, one blocking transfer per request, never on
/// Swift's cooperative pool: in place when the caller runs on a `DedicatedThreadExecutor`, on a
/// thread of its own otherwise (see `BlockingThread`).
///
/// - Redirects are never followed: the caller sees a 3xx and its `location` header.
/// - http and https only; https verifies the peer against the system trust store plus, when given,
///   one extra CA bundle file. Verification is never disabled.
/// - Connect and total timeouts come from each `HTTPRequest`.
/// - Header names in responses are lower case. Request headers are never logged or echoed (the
///   Authorization header carries a token).
/// - Cancelling the calling task aborts the transfer within about a second (libcurl's progress
///   callback) with `HTTPTransportError.failed`.
///
/// Easy handles are kept in a small idle pool: a handle keeps its connection cache across
/// `curl_easy_reset`, so back-to-back requests to Heketi (queue polls every few milliseconds)
/// reuse one TCP/TLS connection instead of handshaking each time. A handle is used by one request
/// at a time; handles beyond `maxIdleHandles` are freed as soon as their request ends.
public final class CurlHTTPTransport: HTTPStreamingTransport {
    /// Heketi's largest answer is a volume list (≈40 bytes per volume); 64 MiB is far past any
    /// real deployment and only stops a runaway or hostile server from exhausting memory.
    public static let defaultMaxBodyBytes = 64 << 20

    private let caBundlePath: String?
    private let maxBodyBytes: Int
    private let maxIdleHandles: Int
    private let idle = Mutex<[CurlEasy]>([])
    /// Why this transport cannot make any request (libcurl could not be loaded or initialised),
    /// or nil when it can. Every `send` then throws `HTTPTransportError.unusable` with this text.
    public let initialisationFailure: String?

    /// - Parameters:
    ///   - caBundlePath: a PEM file of extra CA certificates to trust for https, in addition to the
    ///     system store; nil for the system store alone. The file is read per connection, so a
    ///     mounted Secret's updates are picked up.
    ///   - maxIdleHandles: easy handles (each with its connection cache) kept between requests.
    ///   - maxBodyBytes: a larger response body fails the request.
    public init(caBundlePath: String? = nil, maxIdleHandles: Int = 8, maxBodyBytes: Int = defaultMaxBodyBytes) {
        self.caBundlePath = caBundlePath
        self.maxIdleHandles = max(0, maxIdleHandles)
        self.maxBodyBytes = max(0, maxBodyBytes)
        // The first transport in the process loads libcurl (dlopen) and initialises it; a missing
        // or unusable library fails every request with the shim's explanation instead of
        // crashing the process.
        self.initialisationFailure = CurlLibrary.initialise()
    }

    /// How many idle handles the pool holds (for tests and diagnostics).
    public var idleHandleCount: Int { idle.withLock { $0.count } }

    /// Performs `request` on a thread of its own and returns the final response (3xx included).
    /// Throws `cannotConnect`, `timedOut`, `tls`, or `failed` (also when the task is cancelled).
    public func send(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
        if let initialisationFailure { throw .unusable(initialisationFailure) }
        let easy = try checkOut()
        let caBundlePath = self.caBundlePath
        let result = await withTaskCancellationHandler {
            // On a thread made for blocking work (a Heketi operation's own thread) the transfer
            // runs in place; anywhere else it goes to a thread of its own.
            if BlockingThread.mayBlockCurrentThread {
                return easy.run(request, caBundlePath: caBundlePath)
            }
            return await withCheckedContinuation {
                (continuation: CheckedContinuation<Result<HTTPResponse, HTTPTransportError>, Never>) in
                BlockingThread.start {
                    continuation.resume(returning: easy.run(request, caBundlePath: caBundlePath))
                }
            }
        } onCancel: {
            easy.cancel()
        }
        // The cancellation handler can no longer run once withTaskCancellationHandler has
        // returned, so the handle is safe to give to another request.
        checkIn(easy)
        return try result.get()
    }

    /// Performs `request` on a thread of its own, handing the body to `onData` as it arrives (a
    /// Kubernetes watch). Returns the response's status and headers with an empty body once the
    /// server ends it, `onData` returns false, or the request's total timeout passes (then
    /// `timedOut`). Cancelling the calling task stops it within about a second.
    public func stream(
        _ request: HTTPRequest, onData: @escaping @Sendable (_ status: Int, _ bytes: [UInt8]) -> Bool
    ) async throws(HTTPTransportError) -> HTTPResponse {
        if let initialisationFailure { throw .unusable(initialisationFailure) }
        let easy = try checkOut()
        let caBundlePath = self.caBundlePath
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation {
                (continuation: CheckedContinuation<Result<HTTPResponse, HTTPTransportError>, Never>) in
                // Always a thread of its own: a stream may last many minutes.
                BlockingThread.start {
                    let result = easy.runStreaming(request, caBundlePath: caBundlePath, onData: onData)
                    continuation.resume(returning: result)
                }
            }
        } onCancel: {
            easy.cancel()
        }
        checkIn(easy)
        return try result.get()
    }

    private func checkOut() throws(HTTPTransportError) -> CurlEasy {
        if let easy = idle.withLock({ $0.popLast() }) { return easy }
        guard let easy = CurlEasy(maxBodyBytes: maxBodyBytes) else {
            throw .failed("libcurl could not allocate a transfer handle (out of memory?)")
        }
        return easy
    }

    private func checkIn(_ easy: CurlEasy) {
        easy.reset()
        idle.withLock { handles in
            if handles.count < maxIdleHandles { handles.append(easy) }
        }
        // A handle the pool did not take is freed when this last reference goes, outside the
        // lock (curl_easy_cleanup closes its sockets).
    }
}
