import Glibc

/// Small, blocking file helpers over the C library, for local files only (procfs, our own log
/// directory) — never for paths on a network mount, which can hang.
enum FileIO {
    /// The whole content of `path`, reading until EOF (procfs files report size 0, so the size
    /// cannot be trusted). Throws the `errno` when the file cannot be opened or read.
    static func readAll(_ path: String) throws(FileIOError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError(path: path, errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                bytes.append(contentsOf: chunk[0..<count])
            } else if count == 0 {
                return bytes
            } else if errno != EINTR {
                throw FileIOError(path: path, errno: errno)
            }
        }
    }

    /// Writes `bytes` to the existing file `path` in one write (cgroup files take a value per
    /// write call). Throws the `errno` when it cannot be opened or the write fails or is short.
    static func write(_ bytes: [UInt8], to path: String) throws(FileIOError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError(path: path, errno: errno) }
        defer { close(fd) }
        var written = -1
        repeat {
            written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        } while written < 0 && errno == EINTR
        guard written == bytes.count else { throw FileIOError(path: path, errno: written < 0 ? errno : EIO) }
    }

    /// The size of the file at `path`, or nil if it does not exist or is not readable.
    static func size(_ path: String) -> Int64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int64(info.st_size)
    }

    /// Up to the last `limit` bytes of `path` written after byte `offset`; empty when unreadable.
    static func tail(_ path: String, after offset: Int64, limit: Int) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return [] }
        // A log rotated or truncated since we measured it starts over at 0.
        let start = info.st_size < offset ? 0 : max(offset, Int64(info.st_size) - Int64(limit))
        var buffer = [UInt8](repeating: 0, count: Int(Int64(info.st_size) - start))
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(start)) }
        return count > 0 ? Array(buffer[0..<count]) : []
    }

    /// Creates `path` and any missing parents as directories with `mode`; existing ones are fine.
    static func makeDirectories(_ path: String, mode: mode_t = 0o750) throws(FileIOError) {
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, mode) != 0 && errno != EEXIST {
                throw FileIOError(path: prefix, errno: errno)
            }
        }
        var info = stat()
        guard stat(path, &info) == 0 else { throw FileIOError(path: path, errno: errno) }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw FileIOError(path: path, errno: ENOTDIR) }
    }

    /// Removes the empty directory `path`; a missing path is fine. Never removes contents: a
    /// directory with files in it after unmounting is data we did not expect and must not delete.
    static func removeDirectory(_ path: String) throws(FileIOError) {
        if rmdir(path) != 0 && errno != ENOENT {
            throw FileIOError(path: path, errno: errno)
        }
    }
}

/// A local file operation failed.
public struct FileIOError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The path the operation was on.
    public var path: String
    /// The `errno` it failed with.
    public var errno: Int32

    public var description: String { "\(path): \(systemErrorDescription(errno))" }
}
