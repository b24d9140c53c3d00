import Glibc

/// Starts blocking work on a thread of its own, never on Swift's cooperative pool.
///
/// `curl_easy_perform` blocks for as long as Heketi takes to answer (up to the request's total
/// timeout). The cooperative pool has one thread per core (two on a small controller node), so a
/// few slow requests there would stall every RPC. A detached pthread per transfer costs tens of
/// microseconds — noise next to an HTTP exchange — and, unlike a fixed worker pool, can never
/// make a fast request queue behind slow ones. Concurrency is bounded above this layer (the
/// Heketi client's limiter for mutations; reads are few).
enum TransferThread {
    /// Runs `body` on a new detached thread.
    static func start(_ body: @escaping @Sendable () -> Void) {
        // The closure is boxed and its +1 reference handed to the new thread, which takes it back
        // (takeRetainedValue): ownership crosses the pthread boundary exactly once.
        let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let status = pthread_create(
            &thread, &attributes,
            { argument in
                Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue().body()
                return nil
            }, box)
        if status != 0 {
            // Out of threads: running inline blocks a pool thread for one transfer, but dropping
            // the work would leave the caller's continuation hanging forever.
            Unmanaged<ThreadBody>.fromOpaque(box).takeRetainedValue().body()
        }
    }
}

private final class ThreadBody: Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}
