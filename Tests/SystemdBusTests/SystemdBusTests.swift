import Glibc
import Testing

@testable import SystemdBus

/// What works without a systemd to talk to: loading the library, failing to connect, and the helpers.
@Suite("SystemdBus without systemd")
struct SystemdBusTests {
    @Test("libsystemd.so.0 loads and has every function the shim calls")
    func realLibraryLoads() {
        #expect(SystemdLibrary.loadFailure(of: SystemdLibrary.name) == nil)
        #expect(SystemdLibrary.loadFailure() == nil)
    }

    @Test("a library that is not there gives the install hint")
    func missingLibrarySaysWhatToInstall() throws {
        let failure = try #require(SystemdLibrary.loadFailure(of: "libsystemd-missing.so.0"))
        #expect(failure.hasPrefix("libsystemd-missing.so.0 could not be loaded; install libsystemd0"), "\(failure)")
        #expect(failure.contains("apt-get install libsystemd0"), "\(failure)")
    }

    @Test("a library without sd-bus names the missing function and the install hint")
    func libraryWithoutSDBusSaysWhatIsMissing() throws {
        let failure = try #require(SystemdLibrary.loadFailure(of: "libc.so.6"))
        #expect(failure.hasPrefix("libc.so.6 has no sd_bus_new"), "\(failure)")
        #expect(failure.contains("install libsystemd0"), "\(failure)")
    }

    @Test("a socket path where nothing exists fails at once, naming the path and what to check")
    func missingSocketFailsQuickly() throws {
        let path = "/nonexistent-\(getpid())/systemd/private"
        let start = ContinuousClock.now
        let error = #expect(throws: SystemdError.self) {
            _ = try SystemdConnection(socketPath: path, timeout: .seconds(5))
        }
        #expect(ContinuousClock.now - start < .seconds(1))
        let failure = try #require(error)
        #expect(failure.errno == ENOENT)
        #expect(failure.dbusName == nil)
        #expect(
            failure.description.hasPrefix("connecting to systemd at \(path): No such file or directory"),
            "\(failure)")
        #expect(failure.description.contains("/nonexistent-\(getpid())/systemd is mounted"), "\(failure)")
    }

    @Test("a file that is not a socket is refused at once")
    func regularFileIsRefused() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/private"
        let descriptor = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
        try #require(descriptor >= 0)
        close(descriptor)
        let error = #expect(throws: SystemdError.self) {
            _ = try SystemdConnection(socketPath: path, timeout: .seconds(5))
        }
        #expect(error?.errno == ECONNREFUSED, "\(String(describing: error))")
    }

    @Test("a socket that accepts but never answers fails at the timeout, not sd-bus's 25 s")
    func silentPeerTimesOut() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/private"
        // Listening is enough for connect() to succeed; nobody ever accepts or answers the handshake.
        let listener = try listeningSocket(at: path)
        defer { close(listener) }
        let start = ContinuousClock.now
        let error = #expect(throws: SystemdError.self) {
            _ = try SystemdConnection(socketPath: path, timeout: .milliseconds(300))
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(3), "\(elapsed)")
        #expect(error?.errno == ETIMEDOUT, "\(String(describing: error))")
        #expect(error?.description.contains("did not complete the handshake in time") == true)
    }

    @Test("timeouts become whole microseconds, at least 1, saturating")
    func microseconds() {
        #expect(SystemdBusHandle.microseconds(.seconds(2)) == 2_000_000)
        #expect(SystemdBusHandle.microseconds(.milliseconds(1500)) == 1_500_000)
        #expect(SystemdBusHandle.microseconds(.nanoseconds(1)) == 1)
        #expect(SystemdBusHandle.microseconds(.zero) == 1)
        #expect(SystemdBusHandle.microseconds(.seconds(-3)) == 1)
        #expect(SystemdBusHandle.microseconds(.seconds(Int64.max)) == UInt64.max)
    }

    @Test("this process is in its own PID namespace; a process that does not exist is not")
    func pidNamespace() throws {
        #expect(try PIDNamespace.isOurs(getpid()))
        #expect(PIDNamespace.depth("self").map { $0 >= 1 } == true)
        #expect(PIDNamespace.depth("self") == PIDNamespace.depth("\(getpid())"))
        // PIDs never reach this (the default pid_max is 2^22, the largest 2^22 too).
        #expect(try !PIDNamespace.isOurs(1 << 30))
    }

    @Test("a process is found in a unit by the last component of one of its cgroup paths")
    func cgroupMembership() throws {
        let text = try #require(ProcFile.read("/proc/self/cgroup"))
        let line = try #require(text.split(separator: "\n").first { !$0.hasSuffix(":/") })
        let own = try #require(line.split(separator: "/").last.map(String.init))
        #expect(SystemdConnection.process(getpid(), isInUnit: own))
        #expect(!SystemdConnection.process(getpid(), isInUnit: "glusterfs-csi-0000000000000000.scope"))
        #expect(!SystemdConnection.process(1 << 30, isInUnit: own))
    }
}

/// A directory under /tmp, removed with its contents when the value goes away.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/systemd-bus-tests-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp: \(String(cString: strerror(errno)))") }
        path = String(cString: made)
    }

    deinit {
        // Only the few plain files and sockets the tests make.
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(directory)
        }
        rmdir(path)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A Unix stream socket listening at `path`; the caller closes it.
func listeningSocket(at path: String) throws -> Int32 {
    let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard descriptor >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw TestFailure("path too long") }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    guard bound == 0, listen(descriptor, 4) == 0 else {
        let reason = String(cString: strerror(errno))
        close(descriptor)
        throw TestFailure("bind/listen \(path): \(reason)")
    }
    return descriptor
}
