#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension HeketiClient {
    /// A growing delay: `initial`, then × `multiplier` after every step, never above `maximum`.
    public struct Backoff: Sendable, Equatable {
        /// The first delay.
        public var initial: Duration
        /// Growth per step (values below 1 count as 1).
        public var multiplier: Double
        /// The cap.
        public var maximum: Duration

        /// A back-off from `initial`, growing by `multiplier`, capped at `maximum`.
        public init(initial: Duration, multiplier: Double, maximum: Duration) {
            self.initial = initial
            self.multiplier = multiplier
            self.maximum = maximum
        }

        /// The delay after `delay`.
        public func next(after delay: Duration) -> Duration {
            min(maximum, max(initial, delay * max(1, multiplier)))
        }
    }

    /// The client's tunables. Defaults suit a production controller; tests shrink them.
    public struct Configuration: Sendable {
        /// Total time for one HTTP exchange (a single request, not an operation).
        public var requestTimeout: Duration
        /// Time to establish the TCP (and TLS) connection of one exchange.
        public var connectTimeout: Duration
        /// The longest an asynchronous operation (create, expand, clone, delete) may take from its
        /// first POST/DELETE until Heketi's queue answers, 429 retries included. With real
        /// gluster a create takes seconds; a large expand with rebalance can take minutes.
        public var operationTimeout: Duration
        /// Delay between queue polls. Heketi's own work can finish in about a millisecond, so it
        /// starts at 2 ms and doubles up to 1 s: a fast operation is seen within a few ms, a slow
        /// one costs about one poll a second.
        public var pollBackoff: Backoff
        /// Delay before retrying a request Heketi refused with 429. Each delay is drawn uniformly
        /// from [d/2, d] (jitter, so throttled callers do not retry in lockstep), d growing
        /// 100 ms → × 2 → 5 s; retries stop when the next one would pass the operation budget.
        /// (Heketi's official client sleeps 10–30 s; with the limiter below, 429s come only from
        /// other clients' load, which clears in well under that.)
        public var throttleBackoff: Backoff
        /// Consecutive transport failures tolerated while polling the queue (Heketi may blip;
        /// the operation keeps running there) before the operation is reported failed.
        public var maxPollFailures: Int
        /// `exp - iat` of every token. Five minutes, as Heketi's official client: short enough
        /// to bound replay of a token bound to one path, long enough for modest clock skew.
        public var tokenLifetime: Duration
        /// Caps this client's mutating operations in flight (Heketi's own default limit is 8).
        /// Share one limiter between clients of the same Heketi to make the cap global.
        public var mutationLimiter: AsyncLimiter

        /// The production defaults, each overridable.
        public init(
            requestTimeout: Duration = .seconds(30),
            connectTimeout: Duration = .seconds(5),
            operationTimeout: Duration = .seconds(600),
            pollBackoff: Backoff = Backoff(initial: .milliseconds(2), multiplier: 2, maximum: .seconds(1)),
            throttleBackoff: Backoff = Backoff(initial: .milliseconds(100), multiplier: 2, maximum: .seconds(5)),
            maxPollFailures: Int = 3,
            tokenLifetime: Duration = .seconds(300),
            mutationLimiter: AsyncLimiter = AsyncLimiter(limit: 8)
        ) {
            self.requestTimeout = requestTimeout
            self.connectTimeout = connectTimeout
            self.operationTimeout = operationTimeout
            self.pollBackoff = pollBackoff
            self.throttleBackoff = throttleBackoff
            self.maxPollFailures = maxPollFailures
            self.tokenLifetime = tokenLifetime
            self.mutationLimiter = mutationLimiter
        }
    }

    /// Time and chance, injected so tests never sleep and are repeatable.
    public struct Runtime: Sendable {
        /// Monotonic now, for deadlines.
        public var now: @Sendable () -> ContinuousClock.Instant
        /// Waits `duration`; throws when the task is cancelled.
        public var sleep: @Sendable (Duration) async throws -> Void
        /// Wall-clock seconds since the Unix epoch, for the token's `iat`.
        public var unixTime: @Sendable () -> Int64
        /// A uniform random number in [0, 1), for jitter.
        public var random: @Sendable () -> Double

        /// A runtime from its four parts (tests pass a manual clock).
        public init(
            now: @escaping @Sendable () -> ContinuousClock.Instant,
            sleep: @escaping @Sendable (Duration) async throws -> Void,
            unixTime: @escaping @Sendable () -> Int64,
            random: @escaping @Sendable () -> Double
        ) {
            self.now = now
            self.sleep = sleep
            self.unixTime = unixTime
            self.random = random
        }

        /// The real clocks and the system random number generator.
        public static let live = Runtime(
            now: { ContinuousClock.now },
            sleep: { try await Task.sleep(for: $0) },
            unixTime: {
                var spec = timespec()
                clock_gettime(CLOCK_REALTIME, &spec)
                return Int64(spec.tv_sec)
            },
            random: { Double.random(in: 0..<1) })
    }
}
