import CGRPCShim
import CSICore
import Dispatch
import Logging
import Synchronization

/// A gRPC server for unary methods on a Unix socket, built on the gRPC core C shim.
///
/// Each call is routed by its method path; unknown methods get UNIMPLEMENTED. Async handlers run
/// in their own task, which is cancelled when the client cancels, its deadline passes, or shutdown
/// gives up waiting. Every call is answered exactly once.
public final class UnaryServer: Sendable {
    private let dispatcher: Dispatcher
    private let handle: ServerHandle
    private let socketGuard: SocketGuard
    public let endpoint: Endpoint

    /// Starts serving. Throws when the socket cannot be bound or another instance serves it.
    public init(
        endpoint: Endpoint, router: Router, logger: Logger, maxMessageBytes: Int = 4 << 20
    ) throws(CSIError) {
        self.endpoint = endpoint
        socketGuard = try SocketGuard(socketPath: endpoint.path)
        dispatcher = Dispatcher(router: router, logger: logger)
        // The shim holds the dispatcher until a clean teardown releases it (see shutdown).
        let context = Unmanaged.passRetained(dispatcher).toOpaque()
        var error = [CChar](repeating: 0, count: 512)
        let pointer = cgrpc_server_start(
            endpoint.grpcAddress, Int32(clamping: maxMessageBytes), context, Self.onCall, Self.onCancel, &error,
            error.count)
        guard let pointer else {
            Unmanaged<Dispatcher>.fromOpaque(context).release()
            let reason = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CSIError(.unavailable, "cannot serve on \(endpoint): \(reason)")
        }
        handle = ServerHandle(pointer: pointer, context: context)
    }

    /// Stops accepting calls (the socket disappears at once), lets in-flight calls finish for
    /// `grace`, then cancels them and waits up to `hardLimit` more.
    /// Returns true when every call was answered and the server was torn down.
    public func shutdown(grace: Duration, hardLimit: Duration) async -> Bool {
        let handle = self.handle
        // The C shutdown blocks on condition variables: keep it off the cooperative pool.
        let clean = await withCheckedContinuation { continuation in
            DispatchQueue(label: "glusterfs-csi.grpc-shutdown").async {
                let result = cgrpc_server_shutdown(handle.pointer, grace.milliseconds, hardLimit.milliseconds)
                continuation.resume(returning: result == 0)
            }
        }
        if clean {
            cgrpc_server_destroy(handle.pointer)
            Unmanaged<Dispatcher>.fromOpaque(handle.context).release()
        }
        return clean
    }

    private static let onCall: cgrpc_call_callback = {
        context, call, method, methodLength, request, requestLength, deadline in
        let dispatcher = Unmanaged<Dispatcher>.fromOpaque(context!).takeUnretainedValue()
        let path =
            method.map {
                String(decoding: UnsafeRawBufferPointer(start: $0, count: methodLength), as: UTF8.self)
            } ?? ""
        let bytes = request.map { Array(UnsafeBufferPointer(start: $0, count: requestLength)) } ?? []
        dispatcher.accept(CallHandle(pointer: call!), path: path, request: bytes, deadlineNanoseconds: deadline)
    }

    private static let onCancel: cgrpc_cancel_callback = { context, call in
        let dispatcher = Unmanaged<Dispatcher>.fromOpaque(context!).takeUnretainedValue()
        dispatcher.cancel(key: CallHandle(pointer: call!).key)
    }
}

/// The C server pointer and the retained dispatcher context.
///
/// `@unchecked Sendable`: every shim function taking the server is thread-safe, and the pointer
/// is only freed after a clean shutdown, when no other use remains.
private struct ServerHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    let context: UnsafeMutableRawPointer
}
