import CSICore
import Glibc
import Synchronization

/// One fuzz target: raw bytes in, properties checked, a trap when one does not hold.
struct FuzzTarget: Sendable {
    /// The name on the command line and the corpus directory (`fuzz/corpus/<name>`).
    let name: String
    /// What it feeds and what it checks, for `--list`.
    let summary: String
    /// Takes one input. Returning means every property held.
    let run: @Sendable ([UInt8]) -> Void
}

/// Every target, in the order bench/fuzz runs them.
enum FuzzTargets {
    static let all: [FuzzTarget] = [
        CSIRequestsTarget.target, StorageClassTarget.target, MountOptionsTarget.target, VolumeIDTarget.target,
        MountInfoTarget.target, JSONTarget.target, HeketiResponsesTarget.target, RedactionTarget.target,
    ]

    static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

/// Stops the process when a property does not hold. libFuzzer sees the trap as a crash and saves
/// the input; the message says which property and why.
func expect(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID,
    line: UInt = #line
) {
    guard !condition() else { return }
    fatalError("property violated: \(message())", file: file, line: line)
}

/// Checks what the project promises of every error a handler or validator throws: it is a
/// `CSIError` (or converts to one), its code is not OK and its message says something.
@discardableResult
func expectCSIError(_ error: any Error, _ what: String, file: StaticString = #fileID, line: UInt = #line) -> CSIError {
    let csi: CSIError
    if let error = error as? CSIError {
        csi = error
    } else if let error = error as? any CSIErrorConvertible {
        csi = error.csiError
    } else {
        fatalError(
            "property violated: \(what) threw \(type(of: error)), not a CSIError: \(error)", file: file, line: line)
    }
    expect(csi.code != .ok, "\(what) threw a CSIError with code OK", file: file, line: line)
    expect(!csi.message.isEmpty, "\(what) threw \(csi.code) without a message", file: file, line: line)
    return csi
}

/// Whether `text` holds a control character (a message or log field that could forge lines).
func hasControlCharacter(_ text: String) -> Bool {
    text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }
}

/// Runs `body` on the concurrency pool and blocks the calling thread until it is done. Only for the
/// fuzz driver's thread, which is not one of the pool's.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let done = Completion<T>()
    Task { done.finish(await body()) }
    return done.wait()
}

/// A result handed from a task to a blocked thread.
private final class Completion<T: Sendable>: Sendable {
    private let value = Mutex<T?>(nil)
    // A semaphore needs a stable address; it lives as long as this object.
    private nonisolated(unsafe) let semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)

    init() { sem_init(semaphore, 0, 0) }

    deinit {
        sem_destroy(semaphore)
        semaphore.deallocate()
    }

    func finish(_ result: T) {
        value.withLock { $0 = result }
        sem_post(semaphore)
    }

    func wait() -> T {
        while sem_wait(semaphore) != 0 {}
        return value.withLock { $0! }
    }
}

/// Reads structured values off the front of a fuzz input, so one input can choose a method, a
/// scenario and the bytes that follow. Past the end it yields zeros.
struct FuzzReader {
    private let bytes: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The next byte, or 0 past the end.
    mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    /// Everything not read yet.
    mutating func rest() -> [UInt8] {
        defer { position = bytes.count }
        return position < bytes.count ? Array(bytes[position...]) : []
    }
}

/// The input as text lines (invalid UTF-8 replaced, as a Kubernetes API string could not hold it).
func lines(_ bytes: [UInt8]) -> [String] {
    String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
}
