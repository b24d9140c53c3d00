import CSICore
import ProcessSpawn

#if canImport(Glibc)
import Glibc
#endif

/// `cgroup`: each volume's client in a cgroup of its own that the driver makes in the host's
/// cgroup tree, outside its container's cgroup: `<root>/glusterfs-csi/<unit>` on cgroup v2,
/// `<root>/<hierarchy>/glusterfs-csi/<unit>` in every v1 hierarchy (runtimes find a container's
/// processes in one hierarchy or another, so the client leaves all of them).
///
/// The mount helper writes itself into the unit's cgroups between fork and exec, so the client
/// it starts is born there. Containers often have a cgroup namespace of their own, and newer
/// kernels refuse a move to a cgroup outside the writer's namespace: the child then enters the
/// host's namespace (`/proc/1/ns/cgroup`, visible with hostPID) and moves again.
public struct CgroupPlacement: ClientPlacement {
    /// The host's cgroup tree (`--cgroup-root`).
    public let root: String
    /// The hierarchy roots units are made in: `[root]` on v2, each mounted hierarchy on v1.
    public let hierarchies: [String]
    /// The directory under each hierarchy that holds the units.
    public static let parentName = "glusterfs-csi"
    /// The cgroup namespace a child enters when its move is refused.
    static let hostCgroupNamespace = "/proc/1/ns/cgroup"
    /// How often `remove` looks whether the processes are gone.
    static let pollInterval: Duration = .milliseconds(10)

    /// A placement in the tree at `root`. Throws when `root` is no cgroup tree.
    public init(root: String) throws(PlacementError) {
        self.root = root
        if FileIO.size(root + "/cgroup.controllers") != nil {
            hierarchies = [root]
        } else {
            hierarchies = Self.v1Hierarchies(under: root)
        }
        guard !hierarchies.isEmpty else {
            throw PlacementError(
                "\(root) is no cgroup tree (neither cgroup.controllers nor v1 hierarchies with cgroup.procs); "
                    + "mount the host's /sys/fs/cgroup there and point --cgroup-root at it")
        }
    }

    public var kind: MountPlacement { .cgroup }
    public var location: String {
        hierarchies.count == 1 ? "\(root)/\(Self.parentName)" : "\(root)/*/\(Self.parentName)"
    }

    /// The unit's directory in every hierarchy.
    public func directories(of unit: ClientUnit) -> [String] {
        hierarchies.map { "\($0)/\(Self.parentName)/\(unit.name)" }
    }

    public func prepare(_ unit: ClientUnit) throws(PlacementError) -> SpawnPlacement {
        for hierarchy in hierarchies {
            let parent = "\(hierarchy)/\(Self.parentName)"
            for directory in [parent, "\(parent)/\(unit.name)"] {
                if mkdir(directory, 0o755) != 0 && errno != EEXIST {
                    throw PlacementError(
                        "cannot create the cgroup \(directory): \(systemErrorDescription(errno)); the host's cgroup "
                            + "tree must be mounted read-write at --cgroup-root (\(root))")
                }
                try Self.inheritCPUSet(directory)
            }
        }
        return SpawnPlacement(
            cgroupFiles: directories(of: unit).map { $0 + "/cgroup.procs" }, cgroupNamespace: Self.hostCgroupNamespace)
    }

    public func adopt(_ pid: pid_t, into unit: ClientUnit) throws(PlacementError) {}

    public func remove(_ unit: ClientUnit, grace: Duration) throws(PlacementError) {
        let existing = directories(of: unit).filter { FileIO.size($0) != nil }
        guard !existing.isEmpty else { return }
        // The client exits by itself once its mount is gone; signals only for what lingers (a
        // client hung on an unreachable server, a helper that never finished).
        let clock = ContinuousClock()
        for (signal, wait) in [(Int32(0), grace), (SIGTERM, Duration.seconds(2)), (SIGKILL, Duration.seconds(2))] {
            if signal != 0 {
                for pid in processes(in: unit) { kill(pid, signal) }
            }
            let deadline = clock.now.advanced(by: wait)
            while !processes(in: unit).isEmpty && clock.now < deadline {
                sleepBlocking(Self.pollInterval)
            }
            if processes(in: unit).isEmpty { break }
        }
        for directory in existing where rmdir(directory) != 0 && errno != ENOENT {
            let reason = systemErrorDescription(errno)
            let left = processes(in: unit).map(String.init).joined(separator: ",")
            throw PlacementError(
                "cannot remove the cgroup \(directory) of volume \(unit.volumeID): \(reason)"
                    + (left.isEmpty ? "" : "; processes \(left) are still in it after SIGKILL"))
        }
    }

    /// The processes in `unit` now, from every hierarchy (empty when it does not exist).
    public func processes(in unit: ClientUnit) -> [pid_t] {
        var pids = Set<pid_t>()
        for directory in directories(of: unit) {
            guard let bytes = try? FileIO.readAll(directory + "/cgroup.procs") else { continue }
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
                if let pid = pid_t(line) { pids.insert(pid) }
            }
        }
        return pids.sorted()
    }

    public func reconcile() -> PlacementInventory {
        var names = Set<String>()
        for hierarchy in hierarchies {
            names.formUnion(Self.subdirectories(of: "\(hierarchy)/\(Self.parentName)"))
        }
        var inventory = PlacementInventory()
        for name in names.sorted() where name.hasPrefix(ClientUnit.namePrefix) {
            let directories = hierarchies.map { "\($0)/\(Self.parentName)/\(name)" }
            let busy = directories.contains { directory in
                guard let bytes = try? FileIO.readAll(directory + "/cgroup.procs") else { return false }
                return !bytes.isEmpty
            }
            if busy {
                inventory.running.append(name)
            } else if directories.allSatisfy({ Self.age(of: $0).map { $0 >= Self.settledAge } ?? true }) {
                for directory in directories { rmdir(directory) }
                inventory.removed.append(name)
            }
        }
        return inventory
    }

    /// The v1 hierarchies mounted under `root`: its subdirectories with a cgroup.procs, symlinks
    /// (`cpu` → `cpu,cpuacct`) skipped so that no hierarchy counts twice.
    static func v1Hierarchies(under root: String) -> [String] {
        subdirectories(of: root).map { "\(root)/\($0)" }.filter { FileIO.size($0 + "/cgroup.procs") != nil }
    }

    /// How old an empty unit must be before `reconcile` removes it: a unit is empty for a moment
    /// between `prepare` and the helper joining it, and another instance (a test's, or one being
    /// replaced) may be in that moment.
    static let settledAge: Duration = .seconds(60)

    /// How long ago `path` was last changed, or nil when it cannot be told.
    static func age(of path: String) -> Duration? {
        var info = stat()
        var now = timespec()
        guard stat(path, &info) == 0, clock_gettime(CLOCK_REALTIME, &now) == 0 else { return nil }
        return .seconds(now.tv_sec - info.st_mtim.tv_sec)
    }

    /// The names of the directories in `path` (symlinks and dot entries skipped), sorted.
    static func subdirectories(of path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var found: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            var info = stat()
            guard !name.hasPrefix("."), lstat("\(path)/\(name)", &info) == 0, info.st_mode & S_IFMT == S_IFDIR
            else { continue }
            found.append(name)
        }
        return found.sorted()
    }

    /// A new v1 cpuset cgroup has no CPUs and no memory nodes, and a process cannot join it until
    /// it has: copy both from the parent, as `cgroup.clone_children` would.
    private static func inheritCPUSet(_ directory: String) throws(PlacementError) {
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let path = "\(directory)/\(file)"
            guard let current = try? FileIO.readAll(path) else { return }
            guard String(decoding: current, as: UTF8.self).trimmingWhitespace().isEmpty else { continue }
            let parent = directory[..<(directory.lastIndex(of: "/") ?? directory.endIndex)]
            guard let inherited = try? FileIO.readAll("\(parent)/\(file)") else { continue }
            do throws(FileIOError) {
                try FileIO.write(inherited, to: path)
            } catch {
                throw PlacementError("cannot set \(path) from its parent: \(error)")
            }
        }
    }
}
