import CSICore

/// Controller settings that come from its flags rather than from a StorageClass.
///
/// DeleteVolume, ControllerExpandVolume, ListVolumes and GetCapacity get no StorageClass
/// parameters (and some no secrets), so a default Heketi and key configured here are what makes
/// them work after a StorageClass is deleted, or for classes that keep the key in plain text.
public struct ControllerConfiguration: Sendable {
    /// Heketi used when a StorageClass has no `resturl`, and for volume IDs that record none.
    public var defaultHeketiURL: String?
    /// JWT issuer used when neither the StorageClass nor the Secret names one.
    public var defaultUser: String
    /// The Heketi key used when a request carries none (read from a file, never from argv).
    public var defaultKey: String?
    /// How long one CreateVolume/DeleteVolume/ControllerExpandVolume waits for Heketi when the
    /// CO gave no deadline. The Heketi operation itself continues in the background past it.
    public var defaultWait: Duration
    /// How old the volume index may be when a new name is created before it is caught up with
    /// Heketi (see `VolumeIndex`): how long a volume made outside this controller can go unseen
    /// when a GID is chosen.
    public var indexMaxAge: Duration

    public init(
        defaultHeketiURL: String? = nil, defaultUser: String = "admin", defaultKey: String? = nil,
        defaultWait: Duration = .seconds(60), indexMaxAge: Duration = .seconds(60)
    ) {
        self.defaultHeketiURL = defaultHeketiURL
        self.defaultUser = defaultUser
        self.defaultKey = defaultKey
        self.defaultWait = defaultWait
        self.indexMaxAge = indexMaxAge
    }
}

extension ControllerConfiguration {
    /// Checks a Heketi base URL (from a flag) the same way the StorageClass's resturl is checked,
    /// and drops a trailing slash.
    public static func validatedHeketiURL(_ text: String, source: String) throws(CSIError) -> String {
        do {
            return try StorageClassParameters.url(text)
        } catch {
            throw CSIError(
                .invalidArgument, "\(source) '\(text)': expected an http:// or https:// URL, e.g. http://heketi:8080")
        }
    }
}
