import CSICore
import Logging
import Synchronization

/// Keeps `pv.beta.kubernetes.io/gid` on every PV of this driver whose volume has a GID (its
/// `volumeAttributes.gid`), as the in-tree provisioner did: kubelet adds that group to every pod
/// using the PV, so non-root pods can write without `fsGroup`.
///
/// Lists the PVs (paged) and then watches them, resuming from the last resourceVersion (bookmarks
/// included) and listing again on 410 Gone. A PV that lacks the annotation or has another value
/// is patched at once; only those are. Failures are logged with backoff and retried, never fatal,
/// and nothing here touches the CSI calls.
public final class GIDAnnotationReconciler: Sendable {
    let client: KubernetesClient
    let driverName: String
    let logger: Logger
    let pageSize: Int
    let backoff: Backoff
    /// PV name → the GID it still needs.
    private let pending = Mutex<[String: String]>([:])
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>

    public init(
        client: KubernetesClient, driverName: String, logger: Logger, pageSize: Int = 500,
        backoff: Backoff = Backoff(first: .seconds(1), maximum: .seconds(60))
    ) {
        self.client = client
        self.driverName = driverName
        self.logger = logger
        self.pageSize = pageSize
        self.backoff = backoff
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Runs until the task is cancelled.
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.patchLoop() }
            group.addTask { await self.listAndWatchLoop() }
        }
    }

    /// How many PVs still wait for their annotation (for tests and diagnostics).
    public var pendingCount: Int { pending.withLock { $0.count } }

    // MARK: - Watching

    /// Lists once, then watches from the last resourceVersion seen for as long as that works: a
    /// failed or cut watch is resumed from it (after a backoff unless it had run a while), and only
    /// 410 Gone, or a failed list, leads to a new list.
    private func listAndWatchLoop() async {
        var failures = 0
        var resourceVersion: String?
        while !Task.isCancelled {
            let started = ContinuousClock.now
            do throws(KubernetesError) {
                guard let from = resourceVersion else {
                    resourceVersion = try await listAll()
                    continue
                }
                let outcome = try await watch(from: from)
                switch outcome {
                case .expired:
                    logger.info("pv watch expired (410 Gone); listing again")
                    resourceVersion = nil
                    failures = 0
                case .ended(let last, let events):
                    resourceVersion = last
                    // A watch the server ends at once with nothing in it is a server in trouble,
                    // not a quiet cluster: without a pause this would be a busy loop.
                    guard events > 0 || ContinuousClock.now - started >= .seconds(1) else {
                        throw .malformed("the watch ended at once without an event")
                    }
                    failures = 0
                }
            } catch {
                // 410 as the watch's HTTP status (not as an event): too old as well, so list again.
                if case .status(code: 410, _) = error, resourceVersion != nil {
                    logger.info("pv watch expired (410 Gone); listing again")
                    resourceVersion = nil
                    failures = 0
                    continue
                }
                // A watch that ran a while and then broke (a connection reset) resumes at once.
                if resourceVersion != nil, ContinuousClock.now - started >= .seconds(10) { failures = 0 }
                failures += 1
                let delay = failures == 1 && resourceVersion != nil ? .zero : backoff.delay(afterFailures: failures - 1)
                logger.warning(
                    "cannot list or watch PersistentVolumes; retrying",
                    metadata: [
                        "error": "\(error)", "retry_in_ms": "\(delay.milliseconds)",
                        "hint": "\(Self.hint(for: error, verb: "list and watch"))",
                    ])
                try? await Task.sleep(for: delay)
            }
        }
        wake.finish()
    }

    /// Every PV, page by page; returns the resourceVersion to watch from.
    private func listAll() async throws(KubernetesError) -> String {
        var continueToken = ""
        var seen: [String: String] = [:]
        var resourceVersion = ""
        repeat {
            let page = try await client.listPersistentVolumes(limit: pageSize, continueToken: continueToken)
            for volume in page.volumes {
                if let gid = volume.missingGID(for: driverName) { seen[volume.name] = gid }
            }
            resourceVersion = page.resourceVersion
            continueToken = page.continueToken
        } while !continueToken.isEmpty
        // A fresh list is the whole truth: what it does not show needs nothing.
        pending.withLock { $0 = seen }
        if !seen.isEmpty { wake.yield() }
        logger.debug("listed PersistentVolumes", metadata: ["needing_gid": "\(seen.count)"])
        return resourceVersion
    }

    enum WatchOutcome {
        /// The server ended the stream: resume from `resourceVersion`; `events` were seen.
        case ended(resourceVersion: String, events: Int)
        /// 410 Gone: list again.
        case expired
    }

    /// One watch, until the server ends it.
    private func watch(from resourceVersion: String) async throws(KubernetesError) -> WatchOutcome {
        let latest = Mutex(resourceVersion)
        let expired = Mutex(false)
        let events = Mutex(0)
        let failure = Mutex<KubernetesError?>(nil)
        // Servers end a watch after timeoutSeconds; a spread keeps many clients from reconnecting together.
        let timeout = Int.random(in: 300...600)
        try await client.watchPersistentVolumes(from: resourceVersion, timeoutSeconds: timeout) { [self] event in
            events.withLock { $0 += 1 }
            switch event {
            case .added(let volume), .modified(let volume):
                latest.withLock { $0 = volume.resourceVersion }
                let gid = volume.missingGID(for: driverName)
                let changed = pending.withLock { pending in
                    defer { pending[volume.name] = gid }
                    return pending[volume.name] != gid
                }
                if changed, gid != nil { wake.yield() }
            case .deleted(let volume):
                latest.withLock { $0 = volume.resourceVersion }
                pending.withLock { _ = $0.removeValue(forKey: volume.name) }
            case .bookmark(let version):
                latest.withLock { $0 = version }
            case .expired:
                expired.withLock { $0 = true }
                return false
            case .error(let code, let message):
                failure.withLock { $0 = .status(code: code, message: message) }
                return false
            }
            return true
        }
        if let failure = failure.withLock({ $0 }) { throw failure }
        if expired.withLock({ $0 }) { return .expired }
        return .ended(resourceVersion: latest.withLock { $0 }, events: events.withLock { $0 })
    }

    // MARK: - Patching

    private func patchLoop() async {
        var failures = 0
        for await _ in wakes {
            while !Task.isCancelled {
                let work = pending.withLock { $0 }
                guard !work.isEmpty else { break }
                var failed: KubernetesError?
                for (name, gid) in work.sorted(by: { $0.key < $1.key }) {
                    do throws(KubernetesError) {
                        try await patchRetryingConflicts(name: name, gid: gid)
                        done(name, gid)
                        logger.info("pv annotated with its gid", metadata: ["pv": "\(name)", "gid": "\(gid)"])
                    } catch {
                        switch error {
                        case .status(code: 404, _):
                            done(name, gid)  // gone; its DELETED event follows
                        case .status(code: 409, _):
                            failed = failed ?? error  // changed meanwhile: the next round patches it again
                        default:
                            failed = error
                        }
                    }
                }
                guard let failed else {
                    failures = 0
                    continue
                }
                failures += 1
                let delay = backoff.delay(afterFailures: failures)
                logger.warning(
                    "cannot annotate PersistentVolumes with their gid; retrying",
                    metadata: [
                        "error": "\(failed)", "waiting": "\(pendingCount)", "retry_in_ms": "\(delay.milliseconds)",
                        "hint": "\(Self.hint(for: failed, verb: "patch"))",
                    ])
                try? await Task.sleep(for: delay)
            }
        }
    }

    /// A merge patch of one annotation does not depend on what else changed, so a conflict (the PV
    /// changed while it was patched) is retried at once, a few times, before it counts as a failure.
    private func patchRetryingConflicts(name: String, gid: String) async throws(KubernetesError) {
        var attempt = 1
        while true {
            do {
                return try await client.patchGIDAnnotation(name: name, gid: gid)
            } catch {
                guard case .status(code: 409, _) = error, attempt < 4 else { throw error }
                attempt += 1
            }
        }
    }

    /// Drops `name` from the work unless a newer event asked for another GID meanwhile.
    private func done(_ name: String, _ gid: String) {
        pending.withLock { pending in
            if pending[name] == gid { pending[name] = nil }
        }
    }

    static func hint(for error: KubernetesError, verb: String) -> String {
        switch error {
        case .status(code: 401, _):
            "the service account token was refused; check that the pod mounts its token (automountServiceAccountToken)"
        case .status(code: 403, _):
            "the controller's service account may not \(verb) persistentvolumes: apply the RBAC in deploy/base "
                + "(ClusterRole glusterfs-csi-gid-annotation), or start the controller with --annotate-gid=false"
        case .status(code: 409, _):
            "the PV changed while it was patched; it is patched again"
        default:
            "check that the API server is reachable from the controller pod"
        }
    }
}

/// Exponential backoff with jitter: `first`, doubling per failure up to `maximum`, each ±20 %.
public struct Backoff: Sendable {
    public let first: Duration
    public let maximum: Duration

    public init(first: Duration, maximum: Duration) {
        self.first = first
        self.maximum = maximum
    }

    func delay(afterFailures failures: Int) -> Duration {
        var delay = first
        for _ in 1..<max(1, min(failures, 32)) where delay < maximum { delay *= 2 }
        delay = min(delay, maximum)
        return delay * Double.random(in: 0.8...1.2)
    }
}
