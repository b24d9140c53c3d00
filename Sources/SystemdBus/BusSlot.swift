import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The one sd-bus connection a `SystemdConnection` uses: opened on demand, replaced when systemd closed it, and
/// closed once it has been idle for `idleTimeout`.
///
/// Why idle connections are closed: systemd sends every signal it emits (a unit appeared, changed, went away; a
/// job started, ended) to every direct connection, subscribed or not. A connection nobody reads collects them,
/// first in its socket buffer and then in systemd's own memory: 600 short-lived scopes made 8,403 signals and
/// 5.5 MB waiting for an idle connection here. A node plugin asks systemd something at stage and unstage only, so
/// it keeps a connection for the few seconds its calls come close together, and no longer.
final class BusSlot: Sendable {
    private struct State {
        /// nil when no connection is open (none yet, closed when idle, or lost and not replaced yet).
        var bus: SystemdBusHandle?
        /// When the last call ended (or the connection was opened).
        var lastUse = ContinuousClock.now
        /// Whether a closer thread watches the open connection.
        var closerRunning = false
        /// Set when the owner went away: close now, and let the closer thread end.
        var retired = false
    }

    let socketPath: String
    let isBusClient: Bool
    /// Bounds each connect, including the retries of a reconnect.
    let connectTimeout: Duration
    let idleTimeout: Duration
    /// The connection is not thread-safe; the mutex makes it usable from any thread, one at a time.
    private let state: Mutex<State>
    private let openedCount = Atomic<Int>(0)
    private let lostCount = Atomic<Int>(0)

    /// A slot holding `bus`, the first connection, made by the caller (so that a failure to connect surfaces
    /// from `SystemdConnection.init` as it is).
    init(_ bus: sending SystemdBusHandle, connectTimeout: Duration, idleTimeout: Duration) {
        socketPath = bus.socketPath
        isBusClient = bus.isBusClient
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        state = Mutex(State(bus: bus))
        openedCount.store(1, ordering: .relaxed)
        state.withLock { startCloserIfNeeded(&$0) }
    }

    /// How many connections were opened, the first one included.
    var opened: Int { openedCount.load(ordering: .relaxed) }
    /// How many connections systemd closed (or that failed) under us and were replaced.
    var lost: Int { lostCount.load(ordering: .relaxed) }
    /// Whether a connection is open now.
    var isConnected: Bool { state.withLock { $0.bus != nil } }

    /// Runs `body` with an open connection, holding the lock (other callers wait): opens one when there is none,
    /// replaces one systemd has closed, and when it closes during `body` (systemd re-executed, say: whatever the
    /// call found out is lost) opens a new one and runs `body` once more.
    func withBus<T: Sendable>(_ body: (SystemdBusHandle) throws(SystemdError) -> T) throws(SystemdError) -> T {
        try state.withLock { (state: inout State) throws(SystemdError) -> T in
            defer {
                state.lastUse = .now
                startCloserIfNeeded(&state)
            }
            func open(replacingLost lost: Bool) throws(SystemdError) -> SystemdBusHandle {
                // Close the old connection before opening the next: never two at once.
                state.bus = nil
                if lost { lostCount.add(1, ordering: .relaxed) }
                let fresh = try connect()
                openedCount.add(1, ordering: .relaxed)
                state.bus = fresh
                return fresh
            }
            var bus: SystemdBusHandle
            if let current = state.bus {
                bus = current.isOpen ? current : try open(replacingLost: true)
            } else {
                bus = try open(replacingLost: false)
            }
            do throws(SystemdError) {
                return try body(bus)
            } catch _ where !bus.isOpen {
                bus = try open(replacingLost: true)
                return try body(bus)
            }
        }
    }

    /// Closes the connection now and lets the closer thread end (the owner is going away).
    func retire() {
        state.withLock { state in
            state.retired = true
            state.bus = nil
        }
    }

    /// A new connection. While systemd re-executes itself its socket refuses connections (or is briefly
    /// missing) until the new instance listens again, a fraction of a second: keep trying until the connect
    /// timeout. (`SystemdConnection.init` does not wait like this: no systemd must be found out quickly.)
    private func connect() throws(SystemdError) -> SystemdBusHandle {
        let deadline = ContinuousClock.now + connectTimeout
        while true {
            do throws(SystemdError) {
                let left = max(deadline - ContinuousClock.now, .milliseconds(1))
                return try SystemdBusHandle(socketPath: socketPath, busClient: isBusClient, timeout: left)
            } catch let error
                where (error.errno == ECONNREFUSED || error.errno == ENOENT) && ContinuousClock.now < deadline
            {
                usleep(20_000)
            }
        }
    }

    /// Starts the thread that closes the connection once idle, unless one runs or there is nothing to close.
    /// Called with the lock held.
    private func startCloserIfNeeded(_ state: inout State) {
        guard state.bus != nil, !state.closerRunning, !state.retired else { return }
        // The thread owns a reference to the slot (not to the SystemdConnection, whose deinit retires the slot).
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let started = pthread_create(
            &thread, nil,
            { context in
                let slot = Unmanaged<BusSlot>.fromOpaque(context!).takeRetainedValue()
                slot.closeWhenIdle()
                return nil
            }, context)
        guard started == 0 else {
            // No thread: the connection then stays open until the next call or the owner's end; not worth
            // failing a call for.
            Unmanaged<BusSlot>.fromOpaque(context).release()
            return
        }
        pthread_detach(thread)
        state.closerRunning = true
    }

    /// The closer thread: sleeps until the connection has been idle for `idleTimeout`, closes it, and ends.
    private func closeWhenIdle() {
        while true {
            let wait = state.withLock { state -> Duration? in
                let idle = ContinuousClock.now - state.lastUse
                if state.retired || state.bus == nil || idle >= idleTimeout {
                    state.bus = nil
                    state.closerRunning = false
                    return nil
                }
                return idleTimeout - idle
            }
            guard let wait else { return }
            let (seconds, attoseconds) = wait.components
            usleep(UInt32(min(seconds * 1_000_000 + attoseconds / 1_000_000_000_000 + 1, 60_000_000)))
        }
    }
}
