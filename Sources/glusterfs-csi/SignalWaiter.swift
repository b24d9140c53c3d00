import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Waits for the first of some termination signals.
///
/// The handler is installed with `sigaction` before the server starts, so no signal can arrive
/// unhandled (a Dispatch signal source installs its handler later, from another thread, and a
/// SIGTERM in that window was lost). The handler only writes the signal number to a pipe — the
/// one async-signal-safe thing it needs — and a dedicated thread reads it and wakes the waiter.
final class SignalWaiter: Sendable {
    private let state = Mutex<(received: Int32?, waiter: CheckedContinuation<Int32, Never>?)>((nil, nil))

    /// Installs the handlers; call it before anything that should be stopped by a signal starts.
    init(signals: [Int32]) {
        var descriptors: [Int32] = [0, 0]
        guard pipe(&descriptors) == 0 else {
            fatalError("cannot create the signal pipe: \(String(cString: strerror(errno)))")
        }
        for descriptor in descriptors {
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)  // mount helpers we exec must not inherit it
        }
        signalPipeWriter.store(descriptors[1], ordering: .relaxed)
        readerDescriptor.store(descriptors[0], ordering: .relaxed)
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { number in
            var byte = UInt8(truncatingIfNeeded: number)
            _ = write(signalPipeWriter.load(ordering: .relaxed), &byte, 1)
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        for number in signals {
            sigaction(number, &action, nil)
        }
        // A kubelet restart or a closed client must never kill us through SIGPIPE.
        signal(SIGPIPE, SIG_IGN)

        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let started = pthread_create(
            &thread, nil,
            { argument in
                let waiter = Unmanaged<SignalWaiter>.fromOpaque(argument!).takeRetainedValue()
                waiter.readSignals()
                return nil
            }, box.toOpaque())
        guard started == 0 else { fatalError("cannot start the signal thread") }
        pthread_detach(thread)
    }

    private let readerDescriptor = Atomic<Int32>(-1)

    /// Runs on the dedicated signal thread for the life of the process.
    private func readSignals() {
        let descriptor = readerDescriptor.load(ordering: .relaxed)
        var byte: UInt8 = 0
        while true {
            let count = read(descriptor, &byte, 1)
            if count == 1 {
                deliver(Int32(byte))
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return
            }
        }
    }

    private func deliver(_ number: Int32) {
        let waiter = state.withLock { state -> CheckedContinuation<Int32, Never>? in
            guard state.received == nil else { return nil }
            state.received = number
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: number)
    }

    /// The first signal received (returns at once if one already arrived).
    func next() async -> Int32 {
        await withCheckedContinuation { continuation in
            let already = state.withLock { state -> Int32? in
                if let received = state.received { return received }
                state.waiter = continuation
                return nil
            }
            if let already { continuation.resume(returning: already) }
        }
    }
}

/// The write end of the signal pipe, for the C signal handler (which cannot capture context).
private let signalPipeWriter = Atomic<Int32>(-1)
