import CSICore

#if canImport(Glibc)
import Glibc
#endif

/// The one directory the node plugin mounts and unmounts under: kubelet's root directory
/// (`--kubelet-dir`). Kubelet puts every staging and target path below it; a path anywhere else
/// comes from a confused or hostile client, and a root-privileged plugin that unmounted it could
/// take `/proc` or another driver's volume away.
public struct KubeletDirectory: Sendable, Equatable {
    /// The directory as configured (kubelet's `--root-dir`).
    public let path: String
    /// The same with every symlink resolved: what request paths are compared with.
    public let resolved: String

    /// The kubelet directory `path`, which must be an existing directory.
    public init(_ path: String) throws(NodeConfigurationError) {
        guard let resolved = Self.realPath(path) else {
            throw NodeConfigurationError(
                "kubelet directory \(printable(path)): \(systemErrorDescription(errno)); set it to kubelet's --root-dir"
            )
        }
        var info = stat()
        guard stat(resolved, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw NodeConfigurationError("kubelet directory \(printable(path)) is not a directory")
        }
        self.path = path
        self.resolved = resolved
    }

    /// Refuses `requestPath` (the request's `field`) unless it lies strictly below this directory,
    /// after resolving symlinks in its existing parents and in itself: a path under the kubelet
    /// directory that is, or passes through, a symlink to somewhere else is outside. Resolving
    /// touches only local directories; it runs on a thread of its own, bounded by `timeout`,
    /// because a hostile path may lead into a hung FUSE mount.
    func confine(_ requestPath: String, field: String, timeout: Duration) async throws(CSIError) {
        // Most paths outside need no file system access to refuse.
        guard Self.isBelow(requestPath, path) || Self.isBelow(requestPath, resolved) else {
            throw outside(requestPath, field: field, resolvedTo: nil)
        }
        let resolution = await BlockingThread.run(timeout: timeout) { Self.resolve(requestPath) }
        switch resolution {
        case .resolved(let real)?:
            guard Self.isBelow(real, resolved) else { throw outside(requestPath, field: field, resolvedTo: real) }
        case .failed(let code)?:
            throw CSIError(
                .invalidArgument,
                "\(field) \(printable(requestPath)): cannot resolve its directories: \(systemErrorDescription(code))")
        case nil:
            throw CSIError(
                .deadlineExceeded,
                "\(field) \(printable(requestPath)): resolving its directories did not finish within \(timeout); "
                    + "kubelet's directories are local, so something under them hangs")
        }
    }

    private func outside(_ requestPath: String, field: String, resolvedTo real: String?) -> CSIError {
        let via = real.map { $0 == requestPath ? "" : " (it resolves to \($0))" } ?? ""
        return CSIError(
            .invalidArgument,
            "\(field) \(printable(requestPath))\(via) is outside the kubelet directory \(path) (--kubelet-dir, "
                + "GLUSTERFS_CSI_KUBELET_DIR): the node plugin mounts and unmounts only below it; if kubelet runs "
                + "with another --root-dir, set --kubelet-dir to it")
    }

    /// Whether `path` is strictly below `directory` (both absolute and clean).
    static func isBelow(_ path: String, _ directory: String) -> Bool {
        directory == "/" ? path != "/" : path.hasPrefix(directory + "/")
    }

    /// What `resolve` found.
    enum Resolution: Sendable, Equatable {
        /// The path with its symlinks resolved.
        case resolved(String)
        /// A component could not be looked up, with this errno.
        case failed(Int32)
    }

    /// `path` with symlinks resolved in its nearest existing ancestor and, when it exists, in
    /// itself. Blocks (file system calls).
    static func resolve(_ path: String) -> Resolution {
        var existing = path
        var missing: [Substring] = []
        while true {
            if let real = realPath(existing) {
                let prefix = real == "/" ? "" : real
                return .resolved(missing.isEmpty ? real : prefix + "/" + missing.reversed().joined(separator: "/"))
            }
            // A component that does not exist yet (a target kubelet has not made), or a dead FUSE
            // mount at the path (the mount table holds its real path, so it is no symlink):
            // resolve what lies above it.
            let code = errno
            guard code == ENOENT || code == ENOTCONN || code == ENOTDIR, existing != "/",
                let slash = existing.lastIndex(of: "/")
            else { return .failed(code) }
            missing.append(existing[existing.index(after: slash)...])
            existing = slash == existing.startIndex ? "/" : String(existing[..<slash])
        }
    }

    /// realpath(3), or nil with `errno` set.
    private static func realPath(_ path: String) -> String? {
        guard let pointer = realpath(path, nil) else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }
}
