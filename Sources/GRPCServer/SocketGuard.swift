import CSICore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Makes a socket path safe to bind: creates missing parent directories, refuses to start while
/// another live instance serves the same path, and clears a socket left behind by a crash.
///
/// gRPC core silently unlinks an existing socket before binding, so without this guard a second
/// instance would steal the path from a live one. The guard holds an exclusive `flock` on a
/// sibling `<socket>.lock` file for the life of the process; the kernel releases it on exit, even
/// after SIGKILL, so a crashed instance never blocks a restart.
public final class SocketGuard: Sendable {
    private let lockDescriptor: Int32
    public let lockPath: String

    public init(socketPath: String) throws(CSIError) {
        try Self.createDirectories(for: socketPath)
        lockPath = socketPath + ".lock"
        let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw CSIError(
                .failedPrecondition, "cannot open lock file \(lockPath): \(Self.errnoText()); check permissions")
        }
        if flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let holder = Self.readPID(descriptor)
            close(descriptor)
            throw CSIError(
                .failedPrecondition,
                "another glusterfs-csi instance\(holder.map { " (pid \($0))" } ?? "") is serving \(socketPath); "
                    + "stop it first or choose another --endpoint")
        }
        lockDescriptor = descriptor
        Self.recordPID(descriptor)
        try Self.clearStaleSocket(at: socketPath)
    }

    deinit {
        close(lockDescriptor)
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    private static func createDirectories(for socketPath: String) throws(CSIError) {
        var prefix = ""
        for component in socketPath.split(separator: "/").dropLast() {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw CSIError(
                    .failedPrecondition,
                    "cannot create socket directory \(prefix): \(errnoText()); create it or choose another --endpoint")
            }
        }
    }

    /// Best effort: the PID only makes the "already running" message more helpful.
    private static func recordPID(_ descriptor: Int32) {
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = text.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
    }

    private static func readPID(_ descriptor: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        let digits = buffer[..<count].prefix { $0 >= 0x30 && $0 <= 0x39 }
        return Int32(String(decoding: digits, as: UTF8.self))
    }

    /// A socket file is stale when nothing accepts connections on it. A regular file or directory
    /// at the path is never removed: that is somebody else's data.
    private static func clearStaleSocket(at path: String) throws(CSIError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw CSIError(
                .failedPrecondition,
                "\(path) exists and is not a socket; remove it or choose another --endpoint")
        }
        if isAcceptingConnections(path) {
            throw CSIError(
                .failedPrecondition,
                "a process that does not hold \(path).lock is serving \(path); stop it or choose another --endpoint")
        }
        unlink(path)
    }

    private static func isAcceptingConnections(_ path: String) -> Bool {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0
    }
}
