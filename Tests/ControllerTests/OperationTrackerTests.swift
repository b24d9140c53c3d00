import CSICore
import Synchronization
import Testing

@testable import Controller

@Suite struct OperationTrackerTests {
    /// Counts how often the operation really ran.
    private final class Runs: Sendable {
        private let count = Mutex(0)
        func increment() -> Int {
            count.withLock {
                $0 += 1; return $0
            }
        }
        var value: Int { count.withLock { $0 } }
    }

    /// Starts an operation that takes 100 ms, with an RPC deadline of 10 ms: the RPC gives up
    /// (ABORTED) and the operation finishes with nobody waiting.
    private func abandon(_ tracker: OperationTracker<Int>, runs: Runs) async {
        let error = await csiError {
            _ = try await tracker.run(key: "k", subject: "volume k", deadline: .now + .milliseconds(10)) {
                try await Task.sleep(for: .milliseconds(100))
                return runs.increment()
            }
        }
        #expect(error?.code == .aborted)
    }

    @Test func aRetryCollectsTheOutcomeOfAnAbandonedOperation() async throws {
        let tracker = OperationTracker<Int>(verb: "creating", keepOutcome: .seconds(30))
        let runs = Runs()
        await abandon(tracker, runs: runs)
        try await Task.sleep(for: .milliseconds(300))
        #expect(tracker.isTracking("k"))
        let value = try await tracker.run(key: "k", subject: "volume k", deadline: .now + .seconds(5)) {
            runs.increment()
        }
        #expect(value == 1 && runs.value == 1, "the retry got the first outcome; nothing ran again")
        #expect(!tracker.isTracking("k"))
    }

    @Test func anOutcomeNobodyCollectsIsDroppedAfterItsTime() async throws {
        let tracker = OperationTracker<Int>(verb: "creating", keepOutcome: .milliseconds(200))
        let runs = Runs()
        await abandon(tracker, runs: runs)
        for _ in 0..<300 where tracker.isTracking("k") { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!tracker.isTracking("k"))
        // A much later call for the same key is a new operation, not the stale outcome.
        let value = try await tracker.run(key: "k", subject: "volume k", deadline: .now + .seconds(5)) {
            runs.increment()
        }
        #expect(value == 2)
    }
}
