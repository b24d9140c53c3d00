import Glibc
import Synchronization
import Testing

@testable import CSICore

@Suite("DedicatedThreadExecutor")
struct DedicatedThreadExecutorTests {
    private actor Counter {
        var value = 0
        func increment() -> Int {
            value += 1
            return value
        }
    }

    @Test("a task started with BlockingThread.task stays on one thread where it may block")
    func staysOnItsThread() async {
        #expect(!BlockingThread.mayBlockCurrentThread, "the cooperative pool is no place to block")
        let counter = Counter()
        let seen = await BlockingThread.task { () -> [UInt] in
            var threads: [UInt] = []
            for _ in 0..<3 {
                guard BlockingThread.mayBlockCurrentThread else { return [] }
                threads.append(UInt(pthread_self()))
                try? await Task.sleep(for: .milliseconds(5))
                _ = await counter.increment()
            }
            return threads
        }.value
        #expect(seen.count == 3)
        #expect(Set(seen).count == 1, "every step ran on the same thread: \(seen)")
        #expect(await counter.value == 3)
    }

    @Test("a task started from such a task shares its thread and may outlive it")
    func nestedTasksShareTheThread() async {
        let threads = Mutex<[UInt]>([])
        let release = Mutex(false)
        let inner = await BlockingThread.task { () -> Task<Bool, Never> in
            threads.withLock { $0.append(UInt(pthread_self())) }
            return BlockingThread.task { () -> Bool in
                // Runs after the outer task has ended, on the same thread.
                for _ in 0..<500 where !release.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(2)) }
                threads.withLock { $0.append(UInt(pthread_self())) }
                return BlockingThread.mayBlockCurrentThread
            }
        }.value
        release.withLock { $0 = true }
        #expect(await inner.value)
        let seen = threads.withLock { $0 }
        #expect(seen.count == 2)
        #expect(Set(seen).count == 1, "both tasks ran on one thread: \(seen)")
    }

    @Test("every task's thread is given back")
    func threadsAreGivenBack() async {
        let cache = ThreadCache(maxIdle: 4, idleTimeout: .seconds(30))
        for index in 0..<200 {
            _ = await DedicatedThreadExecutor(threads: cache).task { index }.value
        }
        // Each thread goes back once its executor's last task ends: all parked, one reused over
        // and over. A thread kept serving an executor would leave up to 200 working.
        for _ in 0..<500 where cache.idleCount < cache.threadCount { try? await Task.sleep(for: .milliseconds(2)) }
        #expect(cache.threadCount == cache.idleCount)
        #expect(cache.threadCount <= 4)
    }

    @Test("tasks that block do not hold each other up")
    func blockedTasksRunSideBySide() async {
        let started = Mutex(0)
        // Each task blocks until all three have started: that ends only if they run at once.
        let tasks = (0..<3).map { _ in
            BlockingThread.task { () -> Bool in
                started.withLock { $0 += 1 }
                for _ in 0..<5000 where started.withLock({ $0 }) < 3 { usleep(1000) }
                return started.withLock { $0 } == 3
            }
        }
        for task in tasks { #expect(await task.value) }
    }

    @Test("cancelling the task reaches its work")
    func cancellation() async {
        let task = BlockingThread.task { () -> Bool in
            try? await Task.sleep(for: .seconds(10))
            return Task.isCancelled
        }
        task.cancel()
        #expect(await task.value)
    }
}
