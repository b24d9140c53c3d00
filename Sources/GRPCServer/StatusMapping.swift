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
        let (code, message) = unbounded(error, context: context)
        return (code, bounded(message))
    }

    /// The most a status message may be. gRPC clients built on gRPC core refuse trailers over
    /// 16 KiB (and may refuse them over 8 KiB): a longer message would lose the whole answer. Many
    /// messages quote a request field, and a hostile or broken request can make one any size.
    static let maximumMessageBytes = 2048

    /// `message` cut to `maximumMessageBytes` at a character boundary, saying so.
    static func bounded(_ message: String) -> String {
        guard message.utf8.count > maximumMessageBytes else { return message }
        let note = " … (message cut at \(maximumMessageBytes) bytes)"
        var cut = message.utf8.index(message.utf8.startIndex, offsetBy: maximumMessageBytes - note.utf8.count)
        while cut > message.startIndex && cut.samePosition(in: message.unicodeScalars) == nil {
            cut = message.utf8.index(before: cut)
        }
        return String(message.unicodeScalars[..<cut]) + note
    }

    private static func unbounded(_ error: any Error, context: RequestContext) -> (StatusCode, String) {
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
