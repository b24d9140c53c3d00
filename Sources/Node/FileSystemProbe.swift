/// Asks a path whether the filesystem behind it still answers, and how full it is.
///
/// A separate seam from `Mounter` so service tests can make a path look dead without killing a
/// real FUSE client. Implementations must bound every call: a stat on a dead FUSE mount can block
/// forever.
public protocol FileSystemProbe: Sendable {
    /// `stat`s `path` (and asks its file system something no cache can answer) and classifies
    /// the answer.
    func health(of path: String, timeout: Duration) async -> PathHealth

    /// `health(of:)` and, when the path is healthy, its usage from the same `statvfs`: what
    /// NodeGetVolumeStats needs, in one round (each `statvfs` of a GlusterFS mount is a round trip
    /// to the brick servers).
    func healthAndUsage(of path: String, timeout: Duration) async -> HealthAndUsage
}

/// A path's health and, when it is healthy, its usage.
public typealias HealthAndUsage = (health: PathHealth, usage: FilesystemUsage?)

/// What a `stat` of a path said.
public enum PathHealth: Sendable, Equatable {
    /// It answered.
    case healthy
    /// The path does not exist (ENOENT).
    case missing
    /// The filesystem behind it is dead or unreachable: the reason says how (e.g. "Transport
    /// endpoint is not connected", or that the stat did not return in time).
    case corrupted(reason: String)
    /// Some other error (ENOTDIR, ELOOP...), which a remount would not fix.
    case failed(errno: Int32)

    /// The `errno`s that mean a mount is dead rather than the path being wrong — the set the
    /// CephFS and NFS drivers use: the FUSE client is gone (ENOTCONN), the server forgot the
    /// handle (ESTALE), I/O to it failed (EIO), the host is down (EHOSTDOWN), or the client lost
    /// its authorization (EACCES; we run as root, so a plain permission problem does not arise).
    /// Plus ECONNABORTED, which the kernel returns for a FUSE mount whose client was killed while
    /// the connection was being torn down (seen here after `kill -9` of the glusterfs client).
    public static let corruptingErrnos: Set<Int32> = [
        ENOTCONNValue, ESTALEValue, EIOValue, EHOSTDOWNValue, EACCESValue, ECONNABORTEDValue,
    ]

    /// Whether this is a dead mount that unmounting and mounting again may fix.
    public var isCorrupted: Bool {
        if case .corrupted = self { return true }
        return false
    }
}

/// A probe call that failed.
public enum ProbeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The call failed with this `errno`.
    case system(Int32)
    /// The call had not returned after this long (its thread is abandoned).
    case timedOut(Duration)

    public var description: String {
        switch self {
        case .system(let code): systemErrorDescription(code)
        case .timedOut(let limit): "no answer within \(limit) (the mount is probably hung)"
        }
    }
}

/// Space and inode counts of a filesystem, as `statvfs` reports them.
public struct FilesystemUsage: Sendable, Equatable {
    /// Size of the file system.
    public var totalBytes: Int64
    /// Bytes an unprivileged user can still write.
    public var availableBytes: Int64
    /// Bytes in use (total minus free, including the blocks reserved for root).
    public var usedBytes: Int64
    /// Inodes the file system has.
    public var totalInodes: Int64
    /// Inodes an unprivileged user can still create.
    public var availableInodes: Int64
    /// Inodes in use.
    public var usedInodes: Int64

    /// Creates a usage record; probes and test fakes use this.
    public init(
        totalBytes: Int64, availableBytes: Int64, usedBytes: Int64,
        totalInodes: Int64, availableInodes: Int64, usedInodes: Int64
    ) {
        self.totalBytes = totalBytes
        self.availableBytes = availableBytes
        self.usedBytes = usedBytes
        self.totalInodes = totalInodes
        self.availableInodes = availableInodes
        self.usedInodes = usedInodes
    }
}
