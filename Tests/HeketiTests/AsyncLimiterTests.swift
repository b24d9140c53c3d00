import Synchronization
import Testing

@testable import Heketi

/// Shared mutable state for the concurrent tasks of a test.
private final class Shared<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func callAsFunction<R>(_ body: (inout Value) -> R) -> R { value.withLock { body(&$0) } }
}

@Suite struct AsyncLimiterTests {
    @Test func neverMoreHoldersThanTheLimit() async throws {
        let limiter = AsyncLimiter(limit: 3)
        let current = Shared(0)
        let peak = Shared(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<40 {
                group.addTask {
                    try await limiter.withPermit {
                        let now = current {
                            $0 += 1
                            return $0
                        }
                        peak { $0 = max($0, now) }
                        for _ in 0..<5 { await Task.yield() }
                        current { $0 -= 1 }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(peak { $0 } == 3)
        #expect(limiter.availablePermits == 3)
    }

    @Test func waitersAreServedInOrder() async throws {
        let limiter = AsyncLimiter(limit: 1)
        try await limiter.acquire()
        let order = Shared<[Int]>([])
        let tasks = (0..<3).map { index in
            Task {
                // Stagger arrival so the queue order is known.
                while limiter.waitingCount < index { await Task.yield() }
                try await limiter.acquire()
                order { $0.append(index) }
                limiter.release()
            }
        }
        while limiter.waitingCount < 3 { await Task.yield() }
        limiter.release()
        for task in tasks { try await task.value }
        #expect(order { $0 } == [0, 1, 2])
        #expect(limiter.availablePermits == 1)
    }

    @Test func aCancelledWaiterLeavesAndLosesNoPermit() async throws {
        let limiter = AsyncLimiter(limit: 1)
        try await limiter.acquire()
        let waiter = Task { try await limiter.acquire() }
        while limiter.waitingCount < 1 { await Task.yield() }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(limiter.waitingCount == 0)
        limiter.release()
        #expect(limiter.availablePermits == 1)
        #expect(limiter.tryAcquire())
        #expect(!limiter.tryAcquire())
    }

    @Test func anAlreadyCancelledTaskDoesNotTakeAPermit() async {
        let limiter = AsyncLimiter(limit: 2)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await limiter.acquire()
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(limiter.availablePermits == 2)
    }

    @Test func limitIsAtLeastOne() {
        #expect(AsyncLimiter(limit: 0).limit == 1)
    }
}
