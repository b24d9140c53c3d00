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
    /// Threads this cache may have at once; beyond it (as when the system refuses a new thread)
    /// jobs wait for a worker to finish.
    private let maxThreads: Int
    private var threads = 0
    /// Guards `idle` and every worker's `job`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var idle: [Worker] = []
    /// Jobs no thread could be created for; the next worker to finish a job takes them.
    private var waiting: [@Sendable () -> Void] = []

    init(maxIdle: Int, idleTimeout: Duration, maxThreads: Int = .max) {
        self.maxIdle = maxIdle
        self.idleTimeout = idleTimeout
        self.maxThreads = maxThreads
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    /// How many threads exist, parked or working (for tests).
    var threadCount: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return threads
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
            pthread_mutex_unlock(mutex)
            // Signalled after unlocking: woken while we still held the mutex, the worker would
            // block on it at once and need a second wake-up (the job is set under the mutex, and
            // the worker checks it there before waiting, so the signal cannot be lost). `worker`
            // is kept alive until the signal, so its condition outlives the call.
            withExtendedLifetime(worker) { pthread_cond_signal(worker.wakeUp) }
            return
        }
        pthread_mutex_unlock(mutex)
        let worker = Worker(job: body)
        guard spawn(worker) else {
            // Out of threads (the container's pids limit): the job waits for a worker to finish its
            // current one. Running it here instead could block the caller (the gRPC completion
            // queue thread) forever, or deadlock on a lock the caller holds.
            pthread_mutex_lock(mutex)
            if let parked = idle.popLast() {
                // A worker parked since we looked.
                parked.job = body
                pthread_cond_signal(parked.wakeUp)
            } else {
                waiting.append(body)
            }
            pthread_mutex_unlock(mutex)
            return
        }
    }

    private func spawn(_ worker: Worker) -> Bool {
        pthread_mutex_lock(mutex)
        let allowed = threads < maxThreads
        if allowed { threads += 1 }
        pthread_mutex_unlock(mutex)
        guard allowed else { return false }
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
            pthread_mutex_lock(mutex)
            threads -= 1
            pthread_mutex_unlock(mutex)
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
            if !waiting.isEmpty {
                worker.job = waiting.removeFirst()
                continue
            }
            guard idle.count < maxIdle else { break }
            idle.append(worker)
            var deadline = MonotonicCondition.deadline(after: idleTimeout)
            while worker.job == nil {
                if pthread_cond_timedwait(worker.wakeUp, mutex, &deadline) == ETIMEDOUT, worker.job == nil {
                    idle.removeAll { $0 === worker }
                    break
                }
            }
        }
        threads -= 1
        pthread_mutex_unlock(mutex)
    }
}

/// One cached thread: the job it runs next (nil while parked) and the condition that wakes it.
private final class Worker: @unchecked Sendable {
    var job: (@Sendable () -> Void)?
    let wakeUp: UnsafeMutablePointer<pthread_cond_t>

    init(job: @escaping @Sendable () -> Void) {
        self.job = job
        wakeUp = MonotonicCondition.make()
    }

    deinit {
        MonotonicCondition.destroy(wakeUp)
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
