#if canImport(Glibc)
import Glibc
#endif

/// The cgroups of one process, from `/proc/<pid>/cgroup`: one path per hierarchy, as the reading
/// process's cgroup namespace shows it (paths outside that namespace's root start with `/..`).
struct CgroupMembership: Equatable {
    /// Path per hierarchy, keyed by the line's hierarchy ID and controller list ("4:memory").
    var paths: [String: String]

    /// Parses the file's text: `ID:controllers:path` lines.
    init(parsing text: String) {
        var paths: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            paths["\(fields[0]):\(fields[1])"] = String(fields[2])
        }
        self.paths = paths
    }

    /// The cgroups of `pid` ("self" for this process); nil when the file cannot be read.
    static func of(_ pid: String) -> CgroupMembership? {
        guard let bytes = try? FileIO.readAll("/proc/\(pid)/cgroup") else { return nil }
        return CgroupMembership(parsing: String(decoding: bytes, as: UTF8.self))
    }

    /// Whether some hierarchy puts the process in a cgroup named `name` (a directory or a scope).
    func contains(unitNamed name: String) -> Bool {
        paths.values.contains { $0.split(separator: "/").last.map(String.init) == name }
    }

    /// The hierarchies in which this process sits inside `container`'s cgroup (the same cgroup
    /// or one below it) — where a runtime that kills the container's cgroup would reach it.
    ///
    /// A hierarchy where the container sits at the root does not confine it, unless the root is
    /// only the root of a private cgroup namespace (`rootIsNamespaced`): then `/` is the
    /// container's own cgroup, and only paths leading out of it (`/..`) are outside.
    func hierarchiesInside(_ container: CgroupMembership, rootIsNamespaced: Bool) -> [String] {
        container.paths.compactMap { key, containerPath -> String? in
            guard let path = paths[key] else { return nil }
            if path.split(separator: "/").contains("..") { return nil }
            if containerPath == "/" {
                return rootIsNamespaced ? key : nil
            }
            return path == containerPath || path.hasPrefix(containerPath + "/") ? key : nil
        }.sorted()
    }
}

/// Facts about this process's namespaces that decide whether a placement can work.
enum Namespaces {
    /// The namespace link `/proc/<pid>/ns/<kind>` points to ("cgroup:[4026531835]"), or nil.
    static func link(_ pid: String, _ kind: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 128)
        let count = readlink("/proc/\(pid)/ns/\(kind)", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether this process has a cgroup namespace of its own (not PID 1's): then `/` in its
    /// `/proc/self/cgroup` is its container's cgroup, not the host's root.
    static var cgroupNamespaceIsPrivate: Bool {
        guard let own = link("self", "cgroup"), let first = link("1", "cgroup") else { return false }
        return own != first
    }

    /// Why this process does not share the host's PID namespace, or nil when it does.
    ///
    /// A client must outlive the plugin's PID namespace: if the plugin is its namespace's init,
    /// or that init lives in exactly the plugin's cgroups (the container's own init), the kernel
    /// kills every client when the container stops.
    static func privatePIDNamespaceReason() -> String? {
        if getpid() == 1 {
            return "the node plugin is PID 1 of its own PID namespace (the pod does not set hostPID: true)"
        }
        if let own = CgroupMembership.of("self"), let initial = CgroupMembership.of("1"), own == initial {
            return "PID 1 of this PID namespace runs in the node plugin's own container "
                + "(the pod does not set hostPID: true)"
        }
        return nil
    }
}

/// Blocks the calling thread for `duration` (placements run on threads that may block).
func sleepBlocking(_ duration: Duration) {
    let (seconds, attoseconds) = duration.components
    usleep(useconds_t(seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
}
