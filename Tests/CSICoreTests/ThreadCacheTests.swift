import Glibc
import Synchronization
import Testing

@testable import CSICore

@Suite("ThreadCache")
struct ThreadCacheTests {
    /// The thread's kernel ID, to tell threads apart.
    private static func threadID() -> UInt { UInt(pthread_self()) }

    @Test("a parked thread runs the next job")
    func reusesParkedThreads() async {
        let cache = ThreadCache(maxIdle: 4, idleTimeout: .seconds(30))
        let first = await Self.run(on: cache) { Self.threadID() }
        #expect(await waitUntil { cache.idleCount == 1 })
        let second = await Self.run(on: cache) { Self.threadID() }
        #expect(first == second)
        #expect(first != Self.threadID())
    }

    @Test("jobs given at once run at once, each on its own thread")
    func neverQueuesBehindABlockedJob() async {
        let cache = ThreadCache(maxIdle: 4, idleTimeout: .seconds(30))
        // Each job waits until all three have started: that only ends if they run concurrently.
        let started = Counter()
        let ids = await withTaskGroup(of: UInt?.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    await Self.run(on: cache) {
                        started.increment()
                        for _ in 0..<5000 where started.value < 3 { usleep(1000) }
                        return started.value == 3 ? Self.threadID() : nil
                    }
                }
            }
            return await group.reduce(into: [UInt?]()) { $0.append($1) }
        }
        #expect(!ids.contains(nil))
        #expect(Set(ids).count == 3)
    }

    @Test("no more than maxIdle threads park, and parked threads leave after the idle timeout")
    func boundedAndShortLived() async {
        // An idle timeout long enough that a busy test process (two cores, other suites running)
        // cannot step over the moment the two parked threads are there to be seen.
        let cache = ThreadCache(maxIdle: 2, idleTimeout: .seconds(1))
        let started = Counter()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    await Self.run(on: cache) {
                        started.increment()
                        for _ in 0..<5000 where started.value < 4 { usleep(1000) }
                    }
                }
            }
        }
        #expect(await waitUntil { cache.idleCount == 2 })
        #expect(await waitUntil { cache.idleCount == 0 })
        // A cache whose threads all left still runs work.
        #expect(await Self.run(on: cache) { 7 } == 7)
    }

    @Test("with no thread to spare, jobs wait for a worker instead of running on the caller")
    func jobsWaitWhenNoThreadCanBeMade() async {
        let cache = ThreadCache(maxIdle: 4, idleTimeout: .seconds(30), maxThreads: 1)
        let caller = Self.threadID()
        let threads = await withTaskGroup(of: UInt.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    await Self.run(on: cache) {
                        usleep(20_000)
                        return Self.threadID()
                    }
                }
            }
            return await group.reduce(into: [UInt]()) { $0.append($1) }
        }
        #expect(threads.count == 4)
        #expect(Set(threads).count == 1, "all four ran, one after the other, on the one thread")
        #expect(!threads.contains(caller))
    }

    private static func run<T: Sendable>(on cache: ThreadCache, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            cache.run { continuation.resume(returning: body()) }
        }
    }

    /// Polls `condition` for up to 5 s.
    private func waitUntil(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }
}

private final class Counter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
