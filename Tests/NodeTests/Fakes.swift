import CSICore
import Glibc
import Logging
import Synchronization

@testable import Node

/// A `Mounter` that keeps a pretend mount table and records every call. It does what a kernel
/// would do to the table (bind mounts share the source's device, unmount removes the topmost
/// entry) so the service's decisions can be checked; failures are injected per call.
final class FakeMounter: Mounter {
    enum Call: Equatable, CustomStringConvertible {
        case mount(source: String, target: String, fsType: String, options: [String])
        case bind(source: String, target: String)
        case remountReadOnly(target: String)
        case unmount(target: String)

        var description: String {
            switch self {
            case .mount(let source, let target, let fsType, let options):
                "mount -t \(fsType) -o \(options.joined(separator: ",")) \(source) \(target)"
            case .bind(let source, let target): "bind \(source) \(target)"
            case .remountReadOnly(let target): "remount-ro \(target)"
            case .unmount(let target): "unmount \(target)"
            }
        }
    }

    private struct State {
        var table: [MountInfo] = []
        var calls: [Call] = []
        var nextID = 100
        var nextMinor = 50
        /// Answers for the next `mount` calls, in order; nil = succeed.
        var mountFailures: [MountError?] = []
        var bindFailure: MountError?
        var remountFailure: MountError?
        var unmountOutcome: UnmountOutcome = .unmounted
        var onMount: (@Sendable (_ options: [String]) -> Void)?
        /// How long each `mount` takes (asleep, not blocking a thread).
        var mountDuration: Duration = .zero
        /// The unit each placed mount asked for, in order.
        var placedUnits: [ClientUnit] = []
    }

    private let state = Mutex(State())

    var calls: [Call] { state.withLock { $0.calls } }
    var table: [MountInfo] { state.withLock { $0.table } }
    var placedUnits: [ClientUnit] { state.withLock { $0.placedUnits } }
    func clearCalls() { state.withLock { $0.calls = [] } }

    /// The next `mount` calls fail with these errors, in order (nil entries succeed).
    func failMounts(_ errors: [MountError?]) { state.withLock { $0.mountFailures = errors } }
    func failBind(_ error: MountError?) { state.withLock { $0.bindFailure = error } }
    func failRemount(_ error: MountError?) { state.withLock { $0.remountFailure = error } }
    func setUnmountOutcome(_ outcome: UnmountOutcome) { state.withLock { $0.unmountOutcome = outcome } }
    /// Runs during every `mount` call, before its scripted result (e.g. to write the client log).
    func onMount(_ hook: (@Sendable (_ options: [String]) -> Void)?) { state.withLock { $0.onMount = hook } }
    /// Every `mount` takes `duration` from now on.
    func setMountDuration(_ duration: Duration) { state.withLock { $0.mountDuration = duration } }

    /// Puts an entry in the table directly (something mounted before the test).
    @discardableResult
    func addMount(
        at path: String, fsType: String = "fuse.glusterfs", source: String, readOnly: Bool = false,
        sameDeviceAs other: MountInfo? = nil
    ) -> MountInfo {
        state.withLock { state in
            let minor = other?.minor ?? state.nextMinor
            if other == nil { state.nextMinor += 1 }
            let entry = MountInfo(
                mountID: state.nextID, parentID: 1, major: 0, minor: minor, root: "/", mountPoint: path,
                mountOptions: [readOnly ? "ro" : "rw", "relatime"], fsType: fsType, source: source,
                superOptions: ["rw"])
            state.nextID += 1
            state.table.append(entry)
            return entry
        }
    }

    func mount(
        source: String, target: String, fsType: String, options: [String], timeout: Duration,
        placement: ClientPlacementRequest?
    ) async throws(MountError) {
        let (failure, hook, duration) = state.withLock {
            state -> (MountError?, (@Sendable ([String]) -> Void)?, Duration) in
            state.calls.append(.mount(source: source, target: target, fsType: fsType, options: options))
            if let placement { state.placedUnits.append(placement.unit) }
            return (
                state.mountFailures.isEmpty ? nil : state.mountFailures.removeFirst(), state.onMount,
                state.mountDuration
            )
        }
        hook?(options)
        if duration > .zero { try? await Task.sleep(for: duration) }
        if let failure { throw failure }
        addMount(
            at: target, fsType: fsType == "glusterfs" ? "fuse.glusterfs" : fsType, source: source,
            readOnly: options.contains("ro"))
    }

    func bindMount(source: String, target: String, timeout: Duration) async throws(MountError) {
        let failure = state.withLock { state -> MountError? in
            state.calls.append(.bind(source: source, target: target))
            return state.bindFailure
        }
        if let failure { throw failure }
        guard let from = try mountPoint(at: source) else {
            throw MountError(
                kind: .failed(.exited(32)), command: ["mount", "--bind", source, target], output: "no mount")
        }
        addMount(at: target, fsType: from.fsType, source: from.source, sameDeviceAs: from)
    }

    func remountReadOnly(target: String, timeout: Duration) async throws(MountError) {
        let failure = state.withLock { state -> MountError? in
            state.calls.append(.remountReadOnly(target: target))
            guard state.remountFailure == nil else { return state.remountFailure }
            if let index = state.table.lastIndex(where: { $0.mountPoint == target }) {
                state.table[index].mountOptions[0] = "ro"
            }
            return nil
        }
        if let failure { throw failure }
    }

    func unmount(target: String, timeout: Duration) async throws(MountError) -> UnmountOutcome {
        state.withLock { state in
            state.calls.append(.unmount(target: target))
            guard let index = state.table.lastIndex(where: { $0.mountPoint == target }) else { return .notMounted }
            state.table.remove(at: index)
            return state.unmountOutcome
        }
    }

    func mountTable() throws(MountError) -> [MountInfo] { table }
}

/// A `FileSystemProbe` that answers from the real file system (temp dirs) unless a path has been
/// given a scripted answer — "the stat of this path fails with ENOTCONN".
final class FakeProbe: FileSystemProbe {
    private let overrides = Mutex<[String: PathHealth]>([:])
    /// Answers given once each, in order, before `overrides` (a mount that dies between probes).
    private let sequences = Mutex<[String: [PathHealth]]>([:])
    private let probed = Mutex<[String]>([])
    let usage = FilesystemUsage(
        totalBytes: 10_000, availableBytes: 6_000, usedBytes: 4_000, totalInodes: 100, availableInodes: 70,
        usedInodes: 30)

    func set(_ path: String, _ health: PathHealth?) { overrides.withLock { $0[path] = health } }
    func answer(_ path: String, with healths: [PathHealth]) { sequences.withLock { $0[path] = healths } }
    var probedPaths: [String] { probed.withLock { $0 } }

    func health(of path: String, timeout: Duration) async -> PathHealth {
        probed.withLock { $0.append(path) }
        let next = sequences.withLock { sequences -> PathHealth? in
            guard var queue = sequences[path], !queue.isEmpty else { return nil }
            defer { sequences[path] = queue }
            return queue.removeFirst()
        }
        if let next { return next }
        if let scripted = overrides.withLock({ $0[path] }) { return scripted }
        var info = stat()
        return stat(path, &info) == 0 ? .healthy : .missing
    }

    /// `health(of:)`, then the fixed usage; a path scripted as corrupted whose stat still answered
    /// (a scripted `.healthy` first) fails its statvfs with ENOTCONN.
    func healthAndUsage(of path: String, timeout: Duration) async -> HealthAndUsage {
        let health = await health(of: path, timeout: timeout)
        guard health == .healthy else { return (health, nil) }
        if case .corrupted? = overrides.withLock({ $0[path] }) { return (PathHealth(.system(ENOTCONN)), nil) }
        return (.healthy, usage)
    }
}

/// A log handler that keeps messages, to check what the service logged.
final class RecordingLogHandler: LogHandler, @unchecked Sendable {
    // @unchecked: swift-log mutates `metadata`/`logLevel` through the handler value; the shared
    // message store is protected by its own mutex.
    final class Store: Sendable {
        let messages = Mutex<[(Logger.Level, String, Logger.Metadata)]>([])
        var texts: [String] { messages.withLock { $0.map { "\($0.0): \($0.1)" } } }
        var everything: String {
            messages.withLock { $0.map { "\($0.1) \($0.2)" }.joined(separator: "\n") }
        }
    }

    let store: Store
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    init(store: Store) { self.store = store }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        for (key, value) in event.metadata ?? [:] { merged[key] = value }
        store.messages.withLock { $0.append((event.level, "\(event.message)", merged)) }
    }
}

/// A request context whose logger records into `store`.
func testContext(_ store: RecordingLogHandler.Store = .init()) -> RequestContext {
    RequestContext(logger: Logger(label: "test") { _ in RecordingLogHandler(store: store) }, requestID: "t-1")
}

/// A fresh directory under /tmp, removed by `removeTree`.
func makeTemporaryDirectory(_ prefix: String = "nodetest") -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    let pointer = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    precondition(pointer != nil, "mkdtemp failed")
    return String(cString: pointer!)
}

/// Removes a directory tree of test files (not following symlinks; never crosses mounts since
/// every test unmounts first).
func removeTree(_ path: String) {
    guard let directory = opendir(path) else {
        unlink(path)
        return
    }
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
        }
        if name == "." || name == ".." { continue }
        let child = "\(path)/\(name)"
        var info = stat()
        if lstat(child, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR {
            removeTree(child)
        } else {
            unlink(child)
        }
    }
    closedir(directory)
    rmdir(path)
}

func fileExists(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0
}
