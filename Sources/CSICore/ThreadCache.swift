import Glibc

/// Threads that park after their work and take the next piece given to `run`, so a burst of
/// blocking calls costs one thread creation per concurrent call rather than one per call.
///
/// A thread parked longer than `idleTimeout` exits, and at most `maxIdle` threads park at a time,
/// so an idle driver holds no more threads than a busy moment needed, and soon none at all.
final class ThreadCache: @unchecked Sendable {
    static let shared = ThreadCache(maxIdle: 16, idleTimeout: .seconds(10))

    private let maxIdle: Int
    private let idleTimeout: Duration
    /// Guards `idle` and every worker's `job`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var idle: [Worker] = []

    init(maxIdle: Int, idleTimeout: Duration) {
        self.maxIdle = maxIdle
        self.idleTimeout = idleTimeout
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    /// How many threads are parked (for tests).
    var idleCount: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return idle.count
    }

    /// Runs `body` on a parked thread, or on a new one when none is parked.
    func run(_ body: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(mutex)
        if let worker = idle.popLast() {
            worker.job = body
            pthread_cond_signal(worker.wakeUp)
            pthread_mutex_unlock(mutex)
            return
        }
        pthread_mutex_unlock(mutex)
        let worker = Worker(job: body)
        guard spawn(worker) else {
            // Out of threads: running inline blocks the caller's thread, but losing the work would
            // be worse (a continuation never resumed hangs the RPC forever).
            body()
            return
        }
    }

    private func spawn(_ worker: Worker) -> Bool {
        // The +1 reference to this pair moves to the new thread, which takes it back exactly once.
        let start = Unmanaged.passRetained(WorkerStart(cache: self, worker: worker)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let status = pthread_create(
            &thread, &attributes,
            { argument in
                let start = Unmanaged<WorkerStart>.fromOpaque(argument!).takeRetainedValue()
                start.cache.work(start.worker)
                return nil
            }, start)
        if status != 0 {
            Unmanaged<WorkerStart>.fromOpaque(start).release()
            return false
        }
        return true
    }

    /// A worker thread's life: run the job, park, run the next job, until parked too long.
    private func work(_ worker: Worker) {
        pthread_mutex_lock(mutex)
        while let job = worker.job {
            pthread_mutex_unlock(mutex)
            job()
            pthread_mutex_lock(mutex)
            worker.job = nil
            guard idle.count < maxIdle else { break }
            idle.append(worker)
            var deadline = Self.monotonicNow(plus: idleTimeout)
            while worker.job == nil {
                if pthread_cond_timedwait(worker.wakeUp, mutex, &deadline) == ETIMEDOUT, worker.job == nil {
                    idle.removeAll { $0 === worker }
                    break
                }
            }
        }
        pthread_mutex_unlock(mutex)
    }

    private static func monotonicNow(plus duration: Duration) -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let total = Int64(now.tv_nsec) + duration.nanoseconds
        return timespec(tv_sec: now.tv_sec + Int(total / 1_000_000_000), tv_nsec: Int(total % 1_000_000_000))
    }
}

/// One cached thread: the job it runs next (nil while parked) and the condition that wakes it.
private final class Worker: @unchecked Sendable {
    var job: (@Sendable () -> Void)?
    let wakeUp: UnsafeMutablePointer<pthread_cond_t>

    init(job: @escaping @Sendable () -> Void) {
        self.job = job
        wakeUp = .allocate(capacity: 1)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(wakeUp, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(wakeUp)
        wakeUp.deallocate()
    }
}

private final class WorkerStart {
    let cache: ThreadCache
    let worker: Worker
    init(cache: ThreadCache, worker: Worker) {
        self.cache = cache
        self.worker = worker
    }
}
