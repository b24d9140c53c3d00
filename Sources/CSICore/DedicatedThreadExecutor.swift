import Glibc

/// A task executor with one thread of its own, where blocking calls are allowed.
///
/// A Heketi operation is several blocking HTTP requests in a row (POST, queue polls, GET). Run
/// from Swift's cooperative pool, each request would be handed to another thread and its answer
/// handed back: two thread wake-ups per request, which cost about as much as the request itself
/// to a nearby Heketi. A task that prefers this executor runs on its thread instead, and the
/// transport performs the requests right there (`BlockingThread.mayBlockCurrentThread`), back to
/// back. The thread comes from `ThreadCache` and goes back there when the executor is closed.
public final class DedicatedThreadExecutor: TaskExecutor, @unchecked Sendable {
    /// Guards `jobs` and `closed`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let jobsReady: UnsafeMutablePointer<pthread_cond_t>
    private var jobs: [UnownedJob] = []
    private var head = 0
    private var closed = false
    /// Whether the thread has been asked for (at the first job, which it is handed directly).
    private var started = false

    public init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        jobsReady = .allocate(capacity: 1)
        pthread_cond_init(jobsReady, nil)
    }

    deinit {
        pthread_cond_destroy(jobsReady)
        jobsReady.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pthread_mutex_lock(mutex)
        if closed {
            pthread_mutex_unlock(mutex)
            // Nothing should arrive after close (the task that preferred this executor has ended),
            // but a job must never be dropped: run it on a thread of its own.
            ThreadCache.shared.run { [self] in
                BlockingThread.markCurrentThread(mayBlock: true)
                job.runSynchronously(on: asUnownedTaskExecutor())
                BlockingThread.markCurrentThread(mayBlock: false)
            }
            return
        }
        jobs.append(job)
        if started {
            pthread_cond_signal(jobsReady)
            pthread_mutex_unlock(mutex)
        } else {
            started = true
            pthread_mutex_unlock(mutex)
            ThreadCache.shared.run { [self] in serve() }
        }
    }

    /// Lets the thread go once the jobs already queued have run.
    public func close() {
        pthread_mutex_lock(mutex)
        closed = true
        if started { pthread_cond_signal(jobsReady) }
        pthread_mutex_unlock(mutex)
    }

    /// The thread's loop: run jobs in order until closed and drained.
    private func serve() {
        BlockingThread.markCurrentThread(mayBlock: true)
        defer { BlockingThread.markCurrentThread(mayBlock: false) }
        pthread_mutex_lock(mutex)
        while true {
            while head == jobs.count && !closed {
                pthread_cond_wait(jobsReady, mutex)
            }
            guard head < jobs.count else { break }
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            }
            pthread_mutex_unlock(mutex)
            job.runSynchronously(on: asUnownedTaskExecutor())
            pthread_mutex_lock(mutex)
        }
        pthread_mutex_unlock(mutex)
    }
}

extension BlockingThread {
    /// Starts `operation` as an unstructured task on a thread of its own (a
    /// `DedicatedThreadExecutor`), where it may block. The thread is released when it ends.
    @discardableResult
    public static func task<T: Sendable>(_ operation: @escaping @Sendable () async -> T) -> Task<T, Never> {
        let executor = DedicatedThreadExecutor()
        return Task(executorPreference: executor) {
            defer { executor.close() }
            return await operation()
        }
    }

    /// Whether the calling thread is one where blocking calls are allowed (a thread of a
    /// `DedicatedThreadExecutor`), so a blocking call can be made in place instead of handing it
    /// to another thread.
    public static var mayBlockCurrentThread: Bool {
        pthread_getspecific(mayBlockKey) != nil
    }

    static func markCurrentThread(mayBlock: Bool) {
        pthread_setspecific(mayBlockKey, mayBlock ? UnsafeRawPointer(bitPattern: 1) : nil)
    }

    private static let mayBlockKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
}
