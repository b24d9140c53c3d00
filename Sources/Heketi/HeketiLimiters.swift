import Synchronization

/// One `AsyncLimiter` per Heketi server, so that every client talking to the same Heketi (the
/// controller makes one per endpoint and secret) shares one cap on mutating operations.
public final class HeketiLimiters: Sendable {
    /// Permits per Heketi server.
    public let perServer: Int
    private let limiters = Mutex<[String: AsyncLimiter]>([:])

    /// - Parameter perServer: mutating operations in flight per Heketi server (Heketi's own
    ///   default limit is 8; values below 1 are raised to 1).
    public init(perServer: Int = 8) {
        self.perServer = max(1, perServer)
    }

    /// The limiter for the Heketi at `url`. URLs naming the same server (case of scheme and host,
    /// trailing slash) share one.
    public func limiter(for url: String) -> AsyncLimiter {
        let key = HeketiURL(url).map { ($0.origin.lowercased() + $0.basePath) } ?? url
        return limiters.withLock { limiters in
            if let limiter = limiters[key] { return limiter }
            let limiter = AsyncLimiter(limit: perServer)
            limiters[key] = limiter
            return limiter
        }
    }
}
