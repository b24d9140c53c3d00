#if canImport(Glibc)
import Glibc
#endif

/// Whether another process lives in this process's PID namespace.
enum PIDNamespace {
    /// True when process `pid` (as this process sees it) is in this process's PID namespace.
    ///
    /// Compares the `/proc/<pid>/ns/pid` links. Reading another process's link needs ptrace-read access, which a
    /// container's root without CAP_SYS_PTRACE lacks towards systemd; then the depth of the two processes'
    /// namespaces decides (the `NSpid:` line of `/proc/<pid>/status`, readable by anyone, lists one PID per
    /// level): a process visible here lives in our namespace or one below it, and only one at our depth is ours.
    static func isOurs(_ pid: pid_t) throws(SystemdError) -> Bool {
        switch (link("\(pid)"), link("self")) {
        case (.target(let other), .target(let mine)):
            return other == mine
        case (.failed(let error), _) where error == ENOENT || error == ESRCH:
            // Gone since the kernel named it: not a process we can share anything with.
            return false
        default:
            break
        }
        guard let mine = depth("self"), let other = depth("\(pid)") else {
            throw SystemdError(
                "cannot tell whether process \(pid) (systemd) shares this process's PID namespace: neither "
                    + "/proc/\(pid)/ns/pid nor the NSpid line of /proc/\(pid)/status can be read; /proc must be "
                    + "the proc file system of this PID namespace")
        }
        return mine == other
    }

    /// What reading a `/proc/<process>/ns/pid` link gave.
    enum Link: Equatable {
        /// The link's target ("pid:[4026531836]"), which names the namespace.
        case target(String)
        /// The errno of the failed readlink.
        case failed(Int32)
    }

    /// The target of `/proc/<process>/ns/pid`, or why it could not be read.
    static func link(_ process: String) -> Link {
        var buffer = [CChar](repeating: 0, count: 128)
        let count = readlink("/proc/\(process)/ns/pid", &buffer, buffer.count - 1)
        guard count > 0 else { return .failed(errno) }
        return .target(String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// How many PID namespaces, from this /proc's down to the process's own, the process is in: the number of
    /// PIDs on the `NSpid:` line of `/proc/<process>/status`. nil when it cannot be read.
    static func depth(_ process: String) -> Int? {
        guard let status = ProcFile.read("/proc/\(process)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("NSpid:") {
            return line.dropFirst("NSpid:".count).split(whereSeparator: { $0 == " " || $0 == "\t" }).count
        }
        return nil
    }
}

/// Small files of /proc, read whole.
enum ProcFile {
    /// The file's text, or nil when it cannot be read. Files of /proc report a size of 0, so this reads until
    /// end of file; `limit` bounds what a misbehaving file could make it hold.
    static func read(_ path: String, limit: Int = 1 << 20) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count < limit {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 { return nil }
            if count == 0 { break }
            bytes += buffer[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
