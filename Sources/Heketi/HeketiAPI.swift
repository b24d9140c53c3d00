/// Where a Heketi server is and how to authenticate to it.
///
/// `description` never shows the key, so an endpoint can be logged or put in an error.
public struct HeketiEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// Base URL, e.g. `http://heketi.storage.svc:8080` (no trailing slash).
    public var url: String
    /// JWT issuer: `admin` or `user`. A CSI controller needs `admin` (see heketi-api.md).
    public var user: String
    /// The HMAC key; empty when Heketi runs without authentication.
    public var key: String

    public init(url: String, user: String, key: String) {
        self.url = url
        self.user = user
        self.key = key
    }

    public var description: String { "\(url) as \(user)" }
}

/// The Heketi operations the controller uses. One value talks to one Heketi server.
///
/// Asynchronous Heketi operations (create, expand, clone, delete) return only when Heketi's
/// queue reports the outcome, so callers never see a queue ID. Each method is bounded by the
/// client's own timeouts, not by any RPC's deadline: the controller decides how long an RPC
/// waits and keeps an operation running in the background past that (so a retry gets its result
/// instead of starting a second one).
public protocol HeketiAPI: Sendable {
    /// `GET /volumes`: IDs of all complete volumes (pending ones are hidden by Heketi).
    func volumeIDs() async throws(HeketiError) -> [String]
    /// `GET /volumes/{id}`. Unknown ID → `HeketiError.notFound`.
    func volume(id: String) async throws(HeketiError) -> HeketiVolume
    /// `POST /volumes`, then the queue until the volume exists; returns it as `GET` describes it.
    func createVolume(_ request: VolumeCreateRequest) async throws(HeketiError) -> HeketiVolume
    /// `POST /volumes/{id}/expand` by `deltaGiB`, then the queue; returns the expanded volume.
    func expandVolume(id: String, deltaGiB: Int) async throws(HeketiError) -> HeketiVolume
    /// `POST /volumes/{id}/clone`, then the queue; returns the new volume.
    func cloneVolume(id: String, name: String) async throws(HeketiError) -> HeketiVolume
    /// `DELETE /volumes/{id}`, then the queue. Unknown ID → `HeketiError.notFound`.
    func deleteVolume(id: String) async throws(HeketiError)
    /// `GET /clusters`.
    func clusterIDs() async throws(HeketiError) -> [String]
    /// `GET /clusters/{id}`.
    func cluster(id: String) async throws(HeketiError) -> HeketiCluster
    /// `GET /nodes/{id}`.
    func node(id: String) async throws(HeketiError) -> HeketiNode
    /// `GET /operations`: how many operations Heketi is running right now (anyone's).
    func operationsInFlight() async throws(HeketiError) -> Int
}

/// What went wrong talking to Heketi. Converted to a `CSIError` in HeketiError+CSI.swift, the one
/// place that decides status codes for Heketi failures.
public enum HeketiError: Error, Sendable, Equatable {
    /// 404 "Id not found".
    case notFound(String)
    /// 400 or 422: Heketi rejected the request's content. The reason is Heketi's short message.
    case invalidRequest(String)
    /// 401: key or issuer wrong, or an admin-only call made as `user`.
    case unauthorized(String)
    /// Synchronous 500 "Volume name 'X' already in use".
    case nameInUse(String)
    /// 500 "No space" (also when a disperse set needs more nodes than exist).
    case noSpace(String)
    /// 500 "Maximum number of bricks reached."
    case tooManyBricks(String)
    /// 500 "... The target exists, contains other items, or is in use." on a second delete.
    case operationPending(String)
    /// 429 still answered after the client's retries.
    case throttled(String)
    /// Heketi's executor failed the operation (queue 500), e.g. peers down.
    case operationFailed(String)
    /// Any other 5xx or an answer the client could not understand.
    case serverError(status: Int, message: String)
    /// No HTTP answer: refused, unreachable, TLS.
    case unreachable(String)
    /// A request or the whole operation ran out of time.
    case timedOut(String)
    /// This driver cannot make HTTP requests at all (its libcurl is missing or broken).
    case clientUnusable(String)
}
