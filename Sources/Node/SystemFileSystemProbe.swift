import CSICore
import Glibc
import Synchronization

// Glibc's errno constants, re-exported for `PathHealth` so that its public API does not depend
// on importing Glibc.
let ENOTCONNValue = ENOTCONN
let ESTALEValue = ESTALE
let EIOValue = EIO
let EHOSTDOWNValue = EHOSTDOWN
let EACCESValue = EACCES
let ECONNABORTEDValue = ECONNABORTED

/// The real `FileSystemProbe`: `stat` and `statvfs` on a dedicated thread, abandoned if they hang.
///
/// At most one stuck call per path: while an abandoned call on a path has not returned, further
/// probes of it answer "hung" at once instead of stranding another thread each time kubelet asks
/// for volume stats.
public final class SystemFileSystemProbe: FileSystemProbe {
    /// Calls in flight and calls abandoned after their timeout, by call number.
    private struct Calls {
        var next = 0
        var running: [Int: String] = [:]
        var abandoned: [Int: String] = [:]
    }

    private let calls = Mutex(Calls())

    /// Creates a probe with no calls in flight.
    public init() {}

    public func health(of path: String, timeout: Duration) async -> PathHealth {
        await healthAndUsage(of: path, timeout: timeout).health
    }

    public func healthAndUsage(of path: String, timeout: Duration) async -> HealthAndUsage {
        let result = SendableBox<statvfs>(statvfs())
        do throws(ProbeError) {
            _ = try await call(path, timeout: timeout) { path -> Int32 in
                // stat alone is not enough: FUSE answers it from the attribute cache for up to
                // attribute-timeout (1 s for glusterfs) after the client died. statvfs is never
                // cached, so it reaches the client and fails with ENOTCONN once it is gone; its
                // answer is also the usage, so NodeGetVolumeStats needs no second one.
                var info = stat()
                guard stat(path, &info) == 0 else { return errno }
                var filesystem = statvfs()
                guard statvfs(path, &filesystem) == 0 else { return errno }
                result.value = filesystem
                return 0
            }
            return (.healthy, FilesystemUsage(result.value))
        } catch {
            return (PathHealth(error), nil)
        }
    }

    /// Runs `body(path)` (returning 0 or an errno) on its own thread, bounded by `timeout`.
    private func call(
        _ path: String, timeout: Duration, _ body: @escaping @Sendable (String) -> Int32
    )
        async throws(ProbeError)
    {
        let id = calls.withLock { calls -> Int? in
            if calls.abandoned.values.contains(path) { return nil }
            defer { calls.next += 1 }
            calls.running[calls.next] = path
            return calls.next
        }
        guard let id else { throw .timedOut(timeout) }
        let code = await BlockingThread.run(timeout: timeout) { [self] () -> Int32 in
            defer {
                self.calls.withLock { calls in
                    calls.running[id] = nil
                    calls.abandoned[id] = nil
                }
            }
            return body(path)
        }
        guard let code else {
            // Still running (it may have finished just now, then there is nothing to mark).
            calls.withLock { calls in
                if let path = calls.running.removeValue(forKey: id) { calls.abandoned[id] = path }
            }
            throw .timedOut(timeout)
        }
        if code != 0 { throw .system(code) }
    }
}

extension PathHealth {
    /// How a failed probe call classifies the path.
    init(_ failure: ProbeError) {
        switch failure {
        case .system(ENOENT):
            self = .missing
        case .system(let code) where PathHealth.corruptingErrnos.contains(code):
            self = .corrupted(reason: systemErrorDescription(code))
        case .system(let code):
            self = .failed(errno: code)
        case .timedOut:
            self = .corrupted(reason: "stat \(failure)")
        }
    }
}

extension FilesystemUsage {
    init(_ info: statvfs) {
        let fragment = Int64(info.f_frsize)
        self.init(
            totalBytes: Int64(info.f_blocks) * fragment,
            availableBytes: Int64(info.f_bavail) * fragment,
            usedBytes: (Int64(info.f_blocks) - Int64(info.f_bfree)) * fragment,
            totalInodes: Int64(info.f_files),
            availableInodes: Int64(info.f_favail),
            usedInodes: Int64(info.f_files) - Int64(info.f_ffree))
    }
}

/// A mutable box handed to a probe thread. `@unchecked Sendable` because the thread writes it
/// strictly before `call` returns (the continuation resume orders the write before our read);
/// after a timeout the box is never read, so a late write is harmless.
private final class SendableBox<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
