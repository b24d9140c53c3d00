import CSICore
import Logging
import SwiftProtobuf

/// Maps gRPC method paths (`/csi.v1.Identity/Probe`) to typed handlers.
///
/// Handlers see decoded protobuf messages and a `RequestContext`; they never see gRPC. Decoding
/// failures become INVALID_ARGUMENT here, so handlers only get well-formed messages.
public struct Router: Sendable {
    /// How a route runs.
    enum Body: Sendable {
        /// Runs in its own task; may suspend. Everything that talks to the outside world.
        case async(@Sendable ([UInt8], RequestContext) async throws -> [UInt8])
        /// Runs on the gRPC completion-queue thread and must never block: pure answers such as
        /// Probe and GetPluginInfo, which then cost no thread hop.
        case inline(@Sendable ([UInt8], RequestContext) throws -> [UInt8])
    }

    struct Route: Sendable {
        let body: Body
        /// Level of the per-call start/finish lines: trace for Probe-like calls a kubelet
        /// sends every few seconds, debug for the rest.
        let logLevel: Logger.Level
        /// The cap this route's calls count against (async routes only); nil: never queued or refused.
        var limit: CallLimit? = nil
        /// The status of a call refused because `limit` stayed full.
        var busyCode: StatusCode = .resourceExhausted

        var isInline: Bool {
            if case .inline = body { return true }
            return false
        }
    }

    private(set) var routes: [String: Route] = [:]

    public init() {}

    /// Registers a handler that may suspend (runs in a task; cancelled when the client goes away).
    ///
    /// - Parameters:
    ///   - limit: the cap of the service this method belongs to; its calls wait for a slot and are
    ///     refused when none comes free in time (see `CallLimit`). nil: never queued or refused,
    ///     for calls that cost no backend work (NodeGetInfo) and test hooks.
    ///   - busyCode: the status of a call refused by `limit`: ABORTED or RESOURCE_EXHAUSTED,
    ///     whichever the CSI spec and the method's callers read as "busy, retry" (see Routes).
    public mutating func register<Request: Message, Response: Message>(
        _ path: String, logLevel: Logger.Level = .debug, limit: CallLimit? = nil,
        busyCode: StatusCode = .resourceExhausted,
        _ handler: @escaping @Sendable (Request, RequestContext) async throws -> Response
    ) {
        routes[path] = Route(
            body: .async { bytes, context in
                let request = try Self.decode(Request.self, from: bytes, path: path, context: context)
                return try Self.encode(try await handler(request, context), path: path, context: context)
            },
            logLevel: logLevel, limit: limit, busyCode: busyCode)
    }

    /// Registers a handler that answers without blocking or suspending. Inline calls are never
    /// queued or refused: they cost no thread and answer at once (Probe, GetPluginInfo, the
    /// capability calls).
    public mutating func registerInline<Request: Message, Response: Message>(
        _ path: String, logLevel: Logger.Level = .debug,
        _ handler: @escaping @Sendable (Request, RequestContext) throws -> Response
    ) {
        routes[path] = Route(
            body: .inline { bytes, context in
                let request = try Self.decode(Request.self, from: bytes, path: path, context: context)
                return try Self.encode(try handler(request, context), path: path, context: context)
            },
            logLevel: logLevel)
    }

    func route(for path: String) -> Route? { routes[path] }

    private static func decode<Request: Message>(
        _ type: Request.Type, from bytes: [UInt8], path: String, context: RequestContext
    ) throws -> Request {
        let request: Request
        do {
            request = try Request(serializedBytes: bytes)
        } catch {
            throw CSIError(
                .invalidArgument,
                "the request to \(path) is not a valid \(Request.protoMessageName) message (\(error)); "
                    + "check that the client uses CSI v1 messages")
        }
        if context.logger.logLevel <= .trace {
            context.logger.trace("rpc request", metadata: ["rpc.request": "\(Redaction.loggable(request))"])
        }
        return request
    }

    private static func encode<Response: Message>(
        _ response: Response, path: String, context: RequestContext
    ) throws -> [UInt8] {
        if context.logger.logLevel <= .trace {
            context.logger.trace("rpc response", metadata: ["rpc.response": "\(Redaction.loggable(response))"])
        }
        return try response.serializedBytes()
    }
}
