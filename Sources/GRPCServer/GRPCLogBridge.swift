import CGRPCShim
import Logging
import Synchronization

/// Sends gRPC core's own log lines to our logger instead of its default stderr format.
public enum GRPCLogBridge {
    private static let target = Mutex<Logger?>(nil)

    /// Installs the bridge. Core's debug lines are only enabled when `logger` is at trace.
    public static func install(_ logger: Logger) {
        var logger = logger
        logger[metadataKey: "component"] = "grpc-core"
        // Core's info lines are start-up chatter ("grpc epoll fd: 9"): they go to debug, its debug to trace.
        let minimum: Int32 = logger.logLevel <= .trace ? 0 : logger.logLevel <= .debug ? 1 : 2
        target.withLock { $0 = logger }
        cgrpc_log_route(forward, minimum)
    }

    private static let forward: cgrpc_log_callback = { severity, file, line, message in
        guard let logger = target.withLock({ $0 }) else { return }
        let level: Logger.Level = severity >= 2 ? .error : severity == 1 ? .debug : .trace
        let text = message.map { String(cString: $0) } ?? ""
        let source = file.map { String(cString: $0) } ?? "?"
        logger.log(
            level: level, "grpc core", metadata: ["grpc.message": "\(text)", "grpc.source": "\(source):\(line)"])
    }
}
