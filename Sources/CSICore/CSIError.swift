/// The gRPC status codes a CSI RPC can end with (values are gRPC's wire numbers).
public enum StatusCode: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case `internal` = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16

    /// The upper-case name gRPC tools print, e.g. `INVALID_ARGUMENT`.
    public var description: String {
        switch self {
        case .ok: "OK"
        case .cancelled: "CANCELLED"
        case .unknown: "UNKNOWN"
        case .invalidArgument: "INVALID_ARGUMENT"
        case .deadlineExceeded: "DEADLINE_EXCEEDED"
        case .notFound: "NOT_FOUND"
        case .alreadyExists: "ALREADY_EXISTS"
        case .permissionDenied: "PERMISSION_DENIED"
        case .resourceExhausted: "RESOURCE_EXHAUSTED"
        case .failedPrecondition: "FAILED_PRECONDITION"
        case .aborted: "ABORTED"
        case .outOfRange: "OUT_OF_RANGE"
        case .unimplemented: "UNIMPLEMENTED"
        case .internal: "INTERNAL"
        case .unavailable: "UNAVAILABLE"
        case .dataLoss: "DATA_LOSS"
        case .unauthenticated: "UNAUTHENTICATED"
        }
    }
}

/// The one error type a CSI handler throws.
///
/// `message` is shown to the user (the CO records it in events), so it must say what was wrong
/// and what to do, and must never carry a secret or a backend's raw response. Backend errors
/// (Heketi, mount) convert to this type next to their own definitions; the gRPC dispatch layer
/// is the only place that turns it into a wire status.
public struct CSIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: StatusCode
    public var message: String

    public init(_ code: StatusCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// A required request field is empty.
    public static func missingField(_ field: String) -> CSIError {
        CSIError(.invalidArgument, "\(field) is required but was empty")
    }

    public static func invalidArgument(_ message: String) -> CSIError { CSIError(.invalidArgument, message) }
    public static func notFound(_ message: String) -> CSIError { CSIError(.notFound, message) }
    public static func aborted(_ message: String) -> CSIError { CSIError(.aborted, message) }
    public static func unimplemented(_ message: String) -> CSIError { CSIError(.unimplemented, message) }
}

/// A backend error that knows its CSI status. Backend error types (Heketi, mount) conform next to
/// their own definitions; the dispatch layer converts them, so handlers just rethrow.
public protocol CSIErrorConvertible: Error {
    var csiError: CSIError { get }
}
