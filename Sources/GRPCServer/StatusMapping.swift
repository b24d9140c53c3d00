import CSICore
import Logging

/// The only place where a handler's outcome becomes a gRPC status (see STYLE.md: never inline).
enum StatusMapping {
    /// The status and user-facing message for an error thrown by a handler.
    ///
    /// A `CSIError` carries both; a backend error converts itself (`CSIErrorConvertible`). Cancellation means the client gave up or the server is shutting
    /// down: DEADLINE_EXCEEDED when the deadline has passed, CANCELLED otherwise. Anything else is
    /// a bug or an unmapped backend failure: INTERNAL with a message pointing at the log line that
    /// holds the cause, which is logged here exactly once.
    static func status(for error: any Error, context: RequestContext) -> (StatusCode, String) {
        switch error {
        case let error as CSIError:
            return (error.code, error.message)
        case let error as any CSIErrorConvertible:
            let converted = error.csiError
            return (converted.code, converted.message)
        case is CancellationError:
            if let deadline = context.deadline, deadline <= .now {
                return (.deadlineExceeded, "the call's deadline passed before the driver finished")
            }
            return (.cancelled, "the call was cancelled before the driver finished")
        default:
            context.logger.error("rpc failed with an unexpected error", metadata: ["error": "\(error)"])
            return (
                .internal,
                "internal error in the driver (request id \(context.requestID)); the driver log has the cause"
            )
        }
    }
}
