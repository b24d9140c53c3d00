import Synchronization

/// Try-locks keyed by name: a second operation on a key that is busy fails at once with ABORTED
/// instead of queueing, as the CSI spec asks ("operation pending for volume").
///
/// Queueing would be wrong for CSI: the CO retries with backoff anyway, and a queued mount behind a
/// hung one would only pile up more blocked work. Each key can be held exclusively, or shared by
/// several holders (so that, for example, twenty pods can publish one staged volume at once while
/// NodeUnstage still excludes all of them).
public final class KeyedTryLock<Key: Hashable & Sendable>: Sendable {
    /// How a key is currently held.
    private enum Holding {
        case exclusive
        case shared(Int)
    }

    private let holdings = Mutex<[Key: Holding]>([:])
    /// What a key names, for the ABORTED message ("volume"); empty when keys describe themselves.
    private let noun: String

    /// - Parameter noun: what a key names, used in the error message, e.g. "volume". Leave it
    ///   empty when the key's own description already says what it is.
    public init(noun: String = "") {
        self.noun = noun
    }

    /// Runs `body` holding `key` exclusively, or throws ABORTED if anyone holds `key`.
    @discardableResult
    public func withLock<T: Sendable>(
        _ key: Key, _ body: () async throws -> T
    ) async throws -> T {
        try acquire(key, exclusive: true)
        defer { release(key) }
        return try await body()
    }

    /// Runs `body` sharing `key` with other shared holders, or throws ABORTED if it is held exclusively.
    @discardableResult
    public func withSharedLock<T: Sendable>(
        _ key: Key, _ body: () async throws -> T
    ) async throws -> T {
        try acquire(key, exclusive: false)
        defer { release(key) }
        return try await body()
    }

    /// Whether anyone holds `key`; for tests and diagnostics only (the answer may be stale at once).
    public func isHeld(_ key: Key) -> Bool {
        holdings.withLock { $0[key] != nil }
    }

    private func acquire(_ key: Key, exclusive: Bool) throws {
        let acquired = holdings.withLock { table -> Bool in
            switch (table[key], exclusive) {
            case (nil, true):
                table[key] = .exclusive
            case (nil, false):
                table[key] = .shared(1)
            case (.shared(let count), false):
                table[key] = .shared(count + 1)
            default:
                return false
            }
            return true
        }
        guard acquired else {
            let name = noun.isEmpty ? "\(key)" : "\(noun) \(key)"
            throw CSIError.aborted("another operation on \(name) is in progress; retry when it has finished")
        }
    }

    private func release(_ key: Key) {
        holdings.withLock { table in
            switch table[key] {
            case .shared(let count) where count > 1:
                table[key] = .shared(count - 1)
            default:
                table[key] = nil
            }
        }
    }
}
