import Glibc

/// What the targets share: a marker for secret values and the node's kubelet directory.
enum FuzzFixture {
    /// Put into every secret value and key the targets hand over, so that finding it in a log line
    /// or an error message proves a leak. Random per process: no input can hold it by chance.
    static let token = "SECRET" + String(UInt64.random(in: 1 << 60...UInt64.max), radix: 16)

    /// The node service's `--kubelet-dir`. A fixed path, so that committed corpus entries name paths
    /// inside it; `prepare` creates it with a symlink that leaves it (`escape`, to `/`), one that
    /// stays inside (`pods-link`, to `pods`) and a loop (`loop`).
    static let kubeletDirectory = "/tmp/glusterfs-csi-fuzz/kubelet"
    /// The node's client-log directory (never written: no mount is ever made).
    static let logDirectory = "/tmp/glusterfs-csi-fuzz/log"
    /// Entries directly in the kubelet directory through which a path leaves it or cannot resolve.
    static let leavingEntries: Set<String> = ["escape", "loop"]

    static func prepare() {
        for directory in [
            "/tmp/glusterfs-csi-fuzz", kubeletDirectory, kubeletDirectory + "/pods", kubeletDirectory + "/plugins",
        ] {
            guard mkdir(directory, 0o755) == 0 || errno == EEXIST else { fatalError("mkdir \(directory): \(errno)") }
        }
        for (name, target) in [("escape", "/"), ("loop", "loop"), ("pods-link", "pods")] {
            let path = kubeletDirectory + "/" + name
            guard symlink(target, path) == 0 || errno == EEXIST else { fatalError("symlink \(path): \(errno)") }
        }
        // `isConfined` compares paths as written: the directory must be its own real path.
        guard let real = realpath(kubeletDirectory, nil), String(cString: real) == kubeletDirectory else {
            fatalError("\(kubeletDirectory) is not its own real path (a symlink above it?)")
        }
        free(real)
    }

    /// Whether the node may touch `path`: strictly below the kubelet directory, not through a
    /// symlink that leaves it. Written without the node's code, from what `prepare` made.
    static func isConfined(_ path: String) -> Bool {
        guard path.hasPrefix(kubeletDirectory + "/") else { return false }
        let first = path.dropFirst(kubeletDirectory.count + 1).split(separator: "/", omittingEmptySubsequences: false)
        return first.first.map { !$0.isEmpty && !leavingEntries.contains(String($0)) } ?? false
    }
}
