import CSICore
import Heketi
import Logging
import Synchronization

/// Decides which Heketi a request talks to and with which credentials, and keeps one client per
/// endpoint and one volume index per Heketi URL.
final class HeketiConnections: Sendable {
    typealias ClientFactory = @Sendable (HeketiEndpoint) -> any HeketiAPI

    private let configuration: ControllerConfiguration
    private let makeClient: ClientFactory
    private let clients = Mutex<[HeketiEndpoint: any HeketiAPI]>([:])
    private let indexes = Mutex<[String: VolumeIndex]>([:])

    init(configuration: ControllerConfiguration, makeClient: @escaping ClientFactory) {
        self.configuration = configuration
        self.makeClient = makeClient
    }

    /// The endpoint for a new volume: URL from the StorageClass or the controller's default; user
    /// and key from the StorageClass, the Secret, or the controller's defaults, in that order.
    /// Returns the URL to record in the volume ID too.
    func endpointForCreate(
        _ parameters: StorageClassParameters, secrets: [String: String]
    ) throws(CSIError)
        -> (endpoint: HeketiEndpoint, recordedURL: String)
    {
        guard let url = parameters.restURL ?? configuration.defaultHeketiURL else {
            throw CSIError(
                .invalidArgument,
                "parameter resturl is missing: set it in the StorageClass (e.g. http://heketi:8080), "
                    + "or start the controller with --heketi-url")
        }
        let endpoint = try endpoint(
            url: url, user: parameters.restUser ?? secrets[SecretKey.user],
            userSource: parameters.restUser != nil ? "the StorageClass parameter restuser" : "the secret's key 'user'",
            key: parameters.authEnabled ? (secrets[SecretKey.key] ?? parameters.restUserKey) : "")
        // Always the URL itself, so the ID alone finds the volume even on a controller started
        // without --heketi-url (e.g. after the StorageClass and the flag are gone).
        return (endpoint, url)
    }

    /// The endpoint holding an existing volume, from its ID and the request's secrets.
    func endpoint(for volume: VolumeID, secrets: [String: String]) throws(CSIError) -> HeketiEndpoint {
        let url = volume.heketiURL.isEmpty ? configuration.defaultHeketiURL : volume.heketiURL
        guard let url else {
            throw CSIError(
                .failedPrecondition,
                "volume \(volume) was provisioned through the controller's default Heketi, but no --heketi-url "
                    + "is configured; start the controller with --heketi-url")
        }
        return try endpoint(
            url: url, user: secrets[SecretKey.user], userSource: "the secret's key 'user'", key: secrets[SecretKey.key])
    }

    /// The endpoint for calls that carry no secrets (GetCapacity, ListVolumes).
    func endpoint(url: String?) throws(CSIError) -> HeketiEndpoint {
        guard let url = url ?? configuration.defaultHeketiURL else {
            throw CSIError(
                .failedPrecondition,
                "no Heketi to ask: set resturl in the StorageClass or start the controller with --heketi-url")
        }
        return try endpoint(url: url, user: nil, userSource: "", key: nil)
    }

    /// `userSource` says where a non-empty `user` came from; the value itself is never quoted,
    /// because it may be a field of the request's secrets.
    private func endpoint(
        url: String, user: String?, userSource: String, key: String?
    ) throws(CSIError)
        -> HeketiEndpoint
    {
        let given = user?.isEmpty == false ? user : nil
        let user = given ?? configuration.defaultUser
        guard user == "admin" else {
            throw CSIError(
                .invalidArgument,
                "the Heketi user from \(given == nil ? "--heketi-user" : userSource) is not 'admin': the CSI "
                    + "controller must act as 'admin', because Heketi lets only the admin follow its operation queue "
                    + "and delete or expand volumes; set restuser to admin (or leave it out) and provide the admin key")
        }
        // The controller's own key (--heketi-key-file) only ever goes to its own Heketi
        // (--heketi-url): a volume handle or StorageClass naming another URL must not make the
        // driver sign requests to it with that key.
        let fallbackKey = url == configuration.defaultHeketiURL ? configuration.defaultKey : nil
        return HeketiEndpoint(url: url, user: user, key: key ?? fallbackKey ?? "")
    }

    func client(for endpoint: HeketiEndpoint) -> any HeketiAPI {
        clients.withLock { clients in
            if let client = clients[endpoint] { return client }
            // Keys rotate; keep the cache from growing without bound.
            if clients.count >= 32 { clients.removeAll() }
            let client = makeClient(endpoint)
            clients[endpoint] = client
            return client
        }
    }

    func index(for endpoint: HeketiEndpoint) -> VolumeIndex {
        indexes.withLock { indexes in
            if let index = indexes[endpoint.url] { return index }
            let index = VolumeIndex()
            indexes[endpoint.url] = index
            return index
        }
    }
}
