import Logging

/// What a CSI handler knows about the call it is serving, besides the request itself.
///
/// Handlers never see gRPC: the dispatch layer builds this from the incoming call. Cancellation
/// (client gone, deadline passed, server shutting down) arrives as Swift task cancellation.
public struct RequestContext: Sendable {
    /// A child logger carrying `rpc.method` and `rpc.request_id` metadata.
    public var logger: Logger
    /// A short ID that ties every log line of one call together.
    public var requestID: String
    /// When the client stops waiting, if it said so. External calls bound their own timeouts by it.
    public var deadline: ContinuousClock.Instant?

    public init(logger: Logger, requestID: String, deadline: ContinuousClock.Instant? = nil) {
        self.logger = logger
        self.requestID = requestID
        self.deadline = deadline
    }

    /// Time left before the deadline, capped at `limit` (and at `limit` when there is no deadline).
    public func remaining(atMost limit: Duration) -> Duration {
        guard let deadline else { return limit }
        let left = ContinuousClock.now.duration(to: deadline)
        return max(.zero, min(left, limit))
    }
}
