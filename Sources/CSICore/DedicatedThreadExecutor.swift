import Glibc

/// A task executor with one thread of its own, where blocking calls are allowed.
///
/// A Heketi operation is several blocking HTTP requests in a row (POST, queue polls, GET). Run
/// from Swift's cooperative pool, each request would be handed to another thread and its answer
/// handed back: two thread wake-ups per request, which cost about as much as the request itself
/// to a nearby Heketi. Tasks that prefer this executor run on its thread instead, and the
/// transport performs the requests right there (`BlockingThread.mayBlockCurrentThread`), back to
/// back.
///
/// Several tasks can share the thread: an RPC's handler and the operation it starts (which must
/// outlive the RPC) run on one thread, so handing the outcome back to the handler wakes nobody.
/// While one of them blocks, the others wait. For the handler that means: when its wait for the
/// operation ends (deadline, cancellation), its answer goes out once the operation's current
/// blocking call returns — bounded by that call's own timeout (a Heketi request's). A client whose
/// deadline passed or who cancelled has its answer from gRPC already; only a client that set no
/// deadline (the controller's default wait applies) gets its ABORTED that much later. The thread
/// comes from `ThreadCache` with the first job and goes back when the last task using it has ended.
final class DedicatedThreadExecutor: TaskExecutor, @unchecked Sendable {
    /// Guards everything below. (The queue holds a job or two: an array is plenty.)
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let jobsReady: UnsafeMutablePointer<pthread_cond_t>
    private var jobs: [UnownedJob] = []
    private var closed = false
    /// Whether the thread has been asked for (at the first job, which it is handed directly).
    private var started = false
    /// Tasks started on this executor that have not ended; it closes when this drops to zero.
    private var users = 0

    /// Where its thread comes from and goes back to.
    private let threads: ThreadCache

    init(threads: ThreadCache = .shared) {
        self.threads = threads
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

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pthread_mutex_lock(mutex)
        if closed {
            pthread_mutex_unlock(mutex)
            // Nothing should arrive after close (the task that preferred this executor has ended),
            // but a job must never be dropped: run it on a thread of its own.
            threads.run { [self] in
                Self.setCurrent(self)
                job.runSynchronously(on: asUnownedTaskExecutor())
                Self.setCurrent(nil)
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
            threads.run { [self] in serve() }
        }
    }

    /// Starts `operation` as an unstructured task that prefers this executor. The thread is let go
    /// once every task started here has ended.
    func task<T: Sendable>(_ operation: @escaping @Sendable () async -> T) -> Task<T, Never> {
        pthread_mutex_lock(mutex)
        users += 1
        pthread_mutex_unlock(mutex)
        return Task(executorPreference: self) {
            defer { self.taskEnded() }
            return await operation()
        }
    }

    private func taskEnded() {
        pthread_mutex_lock(mutex)
        users -= 1
        if users == 0 {
            closed = true
            if started { pthread_cond_signal(jobsReady) }
        }
        pthread_mutex_unlock(mutex)
    }

    /// The thread's loop: run jobs in order until closed and drained.
    private func serve() {
        Self.setCurrent(self)
        defer { Self.setCurrent(nil) }
        pthread_mutex_lock(mutex)
        while true {
            while jobs.isEmpty && !closed {
                pthread_cond_wait(jobsReady, mutex)
            }
            guard !jobs.isEmpty else { break }
            let job = jobs.removeFirst()
            pthread_mutex_unlock(mutex)
            job.runSynchronously(on: asUnownedTaskExecutor())
            pthread_mutex_lock(mutex)
        }
        pthread_mutex_unlock(mutex)
    }
}

extension DedicatedThreadExecutor {
    /// The executor whose thread is running the caller, if any (not retained: while a job of it
    /// runs, a task keeps it alive).
    static var current: DedicatedThreadExecutor? {
        pthread_getspecific(currentKey).map { Unmanaged<DedicatedThreadExecutor>.fromOpaque($0).takeUnretainedValue() }
    }

    fileprivate static func setCurrent(_ executor: DedicatedThreadExecutor?) {
        pthread_setspecific(currentKey, executor.map { Unmanaged.passUnretained($0).toOpaque() })
    }

    private static let currentKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
}

extension BlockingThread {
    /// Starts `operation` as an unstructured task on a thread where it may block: the calling
    /// task's own when it runs on a `DedicatedThreadExecutor` (see there), a thread of its own
    /// otherwise.
    @discardableResult
    public static func task<T: Sendable>(_ operation: @escaping @Sendable () async -> T) -> Task<T, Never> {
        (DedicatedThreadExecutor.current ?? DedicatedThreadExecutor()).task(operation)
    }

    /// Whether the calling thread is one where blocking calls are allowed (a thread of a
    /// `DedicatedThreadExecutor`), so a blocking call can be made in place instead of handing it
    /// to another thread.
    public static var mayBlockCurrentThread: Bool {
        DedicatedThreadExecutor.current != nil
    }
}
