import CSICore

/// Where the driver listens: always a Unix socket (kubelet and the CSI sidecars only use those).
public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
    /// The absolute filesystem path of the socket.
    public let path: String

    /// Accepts `unix:///csi/csi.sock`, `unix:/csi/csi.sock` and a plain `/csi/csi.sock`.
    public init(parsing text: String) throws(CSIError) {
        var path = Substring(text)
        if path.hasPrefix("unix://") {
            path = path.dropFirst("unix://".count)
        } else if path.hasPrefix("unix:") {
            path = path.dropFirst("unix:".count)
        } else if let colon = path.firstIndex(of: ":"), !path[..<colon].contains("/") {
            throw CSIError(
                .invalidArgument,
                "endpoint '\(text)': only Unix sockets are supported; use unix:///path/to/csi.sock or a plain path")
        }
        guard path.hasPrefix("/") else {
            throw CSIError(
                .invalidArgument, "endpoint '\(text)': the socket path must be absolute, e.g. unix:///csi/csi.sock")
        }
        guard path.utf8.count < 108 else {  // sun_path holds 108 bytes including the NUL
            throw CSIError(
                .invalidArgument,
                "endpoint '\(text)': a Unix socket path must be shorter than 108 bytes; choose a shorter path")
        }
        self.path = String(path)
    }

    /// The address in the form gRPC core expects.
    public var grpcAddress: String { "unix:" + path }

    public var description: String { "unix://" + path }
}
