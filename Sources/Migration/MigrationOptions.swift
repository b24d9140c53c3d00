import CSICore
import Controller

/// What `glusterfs-csi migrate` was asked for, besides its input.
public struct MigrationOptions: Sendable, Equatable {
    /// The Heketi Secret docs/migration.md has the driver use.
    public static let defaultSecretName = "heketi-secret"
    /// Where that Secret is: the driver's namespace, where the controller may read Secrets.
    public static let defaultSecretNamespace = "glusterfs-csi"

    /// The CSI driver name the PVs name (`spec.csi.driver`).
    public var driverName = DriverInfo.defaultName
    /// The Heketi URL for PVs whose StorageClass is gone or has no `resturl` (`--resturl`).
    public var restURL: String?
    /// The Secret for `controllerExpandSecretRef` (and step 8's deletion secret).
    public var secretName = defaultSecretName
    /// Its namespace.
    public var secretNamespace = defaultSecretNamespace
    /// Which claims to migrate.
    public var selector = ClaimSelector()
    /// `--check`: plan only, write no manifests.
    public var checkOnly = false

    /// The defaults: every claim, Secret `glusterfs-csi/heketi-secret`, driver
    /// `glusterfs.csi.heketi.io`.
    public init() {}

    /// `value` as a Heketi URL under the rules of a StorageClass's `resturl` (normalized as the
    /// controller records it).
    public static func restURL(_ value: String) throws(MigrationInputError) -> String {
        let url: String?
        do {
            url = try StorageClassLocation(parameters: ["resturl": value]).restURL
        } catch {
            throw MigrationInputError("--resturl: \(error.message)")
        }
        guard let url else { throw MigrationInputError("--resturl: no URL") }
        return url
    }

    /// A Secret's name: a DNS subdomain (lower-case letters, digits, `-` and `.`, at most 253).
    public static func validateSecretName(_ name: String) throws(MigrationInputError) {
        guard isDNSName(name, maximum: 253, dots: true) else {
            throw MigrationInputError(
                "--secret-name: '\(name)' is not a Secret name (lower-case letters, digits, '-' and '.', "
                    + "starting and ending with a letter or digit)")
        }
    }

    /// A namespace: a DNS label (lower-case letters, digits and `-`, at most 63).
    public static func validateNamespace(_ name: String, option: String) throws(MigrationInputError) {
        guard isDNSName(name, maximum: 63, dots: false) else {
            throw MigrationInputError(
                "\(option): '\(name)' is not a namespace (at most 63 lower-case letters, digits and '-', "
                    + "starting and ending with a letter or digit)")
        }
    }

    private static func isDNSName(_ name: String, maximum: Int, dots: Bool) -> Bool {
        let bytes = Array(name.utf8)
        func isAlphanumeric(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x7A)
        }
        guard let first = bytes.first, let last = bytes.last, bytes.count <= maximum, isAlphanumeric(first),
            isAlphanumeric(last)
        else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") || (dots && $0 == UInt8(ascii: ".")) }
    }
}
