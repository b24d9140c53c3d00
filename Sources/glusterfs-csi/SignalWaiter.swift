import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Waits for the first of some termination signals without a signal handler doing real work:
/// the signals are ignored at the process level and observed through Dispatch sources.
///
/// `@unchecked Sendable`: `sources` is written once in init and only kept alive afterwards;
/// the mutable state is behind a Mutex.
final class SignalWaiter: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]
    private let state = Mutex<(received: Int32?, waiter: CheckedContinuation<Int32, Never>?)>((nil, nil))

    init(signals: [Int32]) {
        let queue = DispatchQueue(label: "glusterfs-csi.signals")
        sources = signals.map { number in
            signal(number, SIG_IGN)
            return DispatchSource.makeSignalSource(signal: number, queue: queue)
        }
        // A kubelet restart or a closed client must never kill us through SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        for (number, source) in zip(signals, sources) {
            source.setEventHandler { [unowned self] in self.deliver(number) }
            source.resume()
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
