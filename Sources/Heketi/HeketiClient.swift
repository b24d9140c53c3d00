import CSICore
import Logging

/// The `HeketiAPI` over Heketi's REST API.
///
/// - Every request carries a freshly minted HS256 token whose qsh matches its method and path
///   (`HeketiToken`); with an empty key no Authorization header is sent.
/// - Asynchronous operations run POST/DELETE → 202 → queue polls with growing delays →
///   303/204/500 (HeketiClient+Operations.swift), holding a permit of
///   `Configuration.mutationLimiter` until the queue answers.
/// - 429 is retried with jittered back-off within the operation's budget.
/// - Every failure becomes a `HeketiError` (HeketiError+HTTP.swift) whose message has at most
///   Heketi's short reason; raw bodies go to the logger at debug level. Keys and tokens never
///   reach a log line or an error.
///
/// A Heketi queue result is delivered once: if the calling RPC gives up, let the call run to
/// completion (e.g. in a detached task) and keep its result, rather than cancelling it.
/// Cancelling the calling task ends waits early with `HeketiError.timedOut`.
public final class HeketiClient: HeketiAPI {
    /// The server and credentials. Its description (URL and user) is safe to log.
    public let endpoint: HeketiEndpoint
    public let configuration: Configuration

    let baseURL: HeketiURL?
    let transport: any HTTPTransport
    let logger: Logger
    let runtime: Runtime

    /// - Parameters:
    ///   - endpoint: URL, user (JWT issuer) and key. An unusable URL makes every call fail with
    ///     `invalidRequest` (check `endpoint.urlProblem` first to report it earlier).
    ///   - transport: the HTTP transport (`CurlHTTPTransport` in production).
    ///   - logger: receives request summaries at debug/trace; never headers or credentials.
    ///   - configuration: timeouts, back-off, limiter.
    ///   - runtime: clocks and randomness (tests inject fakes).
    public init(
        endpoint: HeketiEndpoint, transport: any HTTPTransport, logger: Logger,
        configuration: Configuration = Configuration(), runtime: Runtime = .live
    ) {
        self.endpoint = endpoint
        self.baseURL = HeketiURL(endpoint.url)
        self.transport = transport
        var logger = logger
        logger[metadataKey: "heketi"] = "\(endpoint)"
        self.logger = logger
        self.configuration = configuration
        self.runtime = runtime
    }

    /// A client with default tunables except the two a deployment usually sets: the limiter
    /// shared with other clients of the same Heketi (see `HeketiLimiters`) and the operation
    /// budget.
    public convenience init(
        endpoint: HeketiEndpoint, transport: any HTTPTransport, logger: Logger, limiter: AsyncLimiter,
        operationTimeout: Duration
    ) {
        var configuration = Configuration()
        configuration.mutationLimiter = limiter
        configuration.operationTimeout = operationTimeout
        self.init(endpoint: endpoint, transport: transport, logger: logger, configuration: configuration)
    }

    // MARK: Reads

    /// `GET /volumes`: IDs of complete volumes (Heketi hides pending ones).
    public func volumeIDs() async throws(HeketiError) -> [String] {
        try await get("/volumes", as: VolumeListBody.self).volumes ?? []
    }

    /// `GET /volumes/{id}`. A non-hex ID is `notFound` without a request.
    public func volume(id: String) async throws(HeketiError) -> HeketiVolume {
        try Self.checkID(id, kind: "volume")
        return try await volume(apiPath: "/volumes/\(id)")
    }

    /// `GET /clusters`.
    public func operationsInFlight() async throws(HeketiError) -> Int {
        try await get("/operations", as: OperationsInfoBody.self).inFlight ?? 0
    }

    public func clusterIDs() async throws(HeketiError) -> [String] {
        try await get("/clusters", as: ClusterListBody.self).clusters ?? []
    }

    /// `GET /clusters/{id}`.
    public func cluster(id: String) async throws(HeketiError) -> HeketiCluster {
        try Self.checkID(id, kind: "cluster")
        return try await get("/clusters/\(id)", as: ClusterInfoBody.self).model(requestedID: id)
    }

    /// `GET /nodes/{id}`, with device sizes in KiB.
    public func node(id: String) async throws(HeketiError) -> HeketiNode {
        try Self.checkID(id, kind: "node")
        return try await get("/nodes/\(id)", as: NodeInfoBody.self).model(requestedID: id)
    }

    // MARK: Asynchronous operations

    /// `POST /volumes`, the queue, then `GET` of the new volume. Refused without a request when
    /// the endpoint's user is not `admin` (it could create but never see the result).
    public func createVolume(_ request: VolumeCreateRequest) async throws(HeketiError) -> HeketiVolume {
        // `user` may POST /volumes but not poll the queue or read the result: the volume would
        // be created and then lost to us. Refuse before touching Heketi.
        if !endpoint.key.isEmpty && endpoint.user != "admin" {
            throw .unauthorized(
                HeketiError.unauthorizedMessage(reason: "Administrator access required", endpoint: endpoint))
        }
        let outcome = try await runOperation(
            "POST", "/volumes", body: HeketiJSON.encode(VolumeCreateBody(request)),
            what: "create volume \(request.name)")
        return try await resultVolume(outcome, what: "create volume \(request.name)")
    }

    /// `POST /volumes/{id}/expand` by `deltaGiB`, the queue, then `GET` of the volume.
    public func expandVolume(id: String, deltaGiB: Int) async throws(HeketiError) -> HeketiVolume {
        try Self.checkID(id, kind: "volume")
        let outcome = try await runOperation(
            "POST", "/volumes/\(id)/expand", body: HeketiJSON.encode(VolumeExpandBody(expand_size: deltaGiB)),
            what: "expand volume \(id)")
        return try await resultVolume(outcome, what: "expand volume \(id)")
    }

    /// `POST /volumes/{id}/clone`, the queue, then `GET` of the new volume.
    public func cloneVolume(id: String, name: String) async throws(HeketiError) -> HeketiVolume {
        try Self.checkID(id, kind: "volume")
        let outcome = try await runOperation(
            "POST", "/volumes/\(id)/clone", body: HeketiJSON.encode(VolumeCloneBody(name: name)),
            what: "clone volume \(id) as \(name)")
        return try await resultVolume(outcome, what: "clone volume \(id)")
    }

    /// `DELETE /volumes/{id}` and the queue until 204. Unknown ID → `notFound`.
    public func deleteVolume(id: String) async throws(HeketiError) {
        try Self.checkID(id, kind: "volume")
        let outcome = try await runOperation("DELETE", "/volumes/\(id)", body: [], what: "delete volume \(id)")
        guard case .done = outcome else {
            throw .serverError(
                status: 303, message: "Heketi's queue redirected a delete of volume \(id) instead of answering 204")
        }
    }

    // MARK: Helpers

    /// IDs are put into paths: only Heketi-shaped (hex) IDs get that far. Anything else cannot
    /// name an existing object, so it is "not found" without asking.
    static func checkID(_ id: String, kind: String) throws(HeketiError) {
        guard HeketiURL.isValidID(id) else {
            throw .notFound("'\(HeketiError.clean(id).prefix(64))' is not a Heketi \(kind) ID (expected hex digits)")
        }
    }

    /// `GET` a volume by API path and convert it.
    func volume(apiPath: String) async throws(HeketiError) -> HeketiVolume {
        let body = try await get(apiPath, as: VolumeInfoBody.self)
        do {
            return try body.model()
        } catch {
            throw .serverError(
                status: 200, message: "Heketi's answer to GET \(apiPath) could not be used: \(error.reason)")
        }
    }

    /// `GET` a JSON body, retrying 429 for up to one request timeout.
    func get<Body: HeketiResponseBody>(_ apiPath: String, as type: Body.Type) async throws(HeketiError) -> Body {
        let deadline = runtime.now() + configuration.requestTimeout
        let response = try await request("GET", apiPath, body: [], expecting: [200], deadline: deadline)
        do {
            return try HeketiJSON.decode(type, from: response.body)
        } catch {
            logger.debug(
                "Heketi answer not understood",
                metadata: ["path": "\(apiPath)", "reason": "\(error.reason)", "body": "\(Self.logText(response.body))"])
            throw .serverError(
                status: 200, message: "Heketi's answer to GET \(apiPath) could not be read: \(error.reason)")
        }
    }
}
