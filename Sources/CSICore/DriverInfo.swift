/// Facts about this build and the driver's identity.
public enum DriverInfo {
    /// The release version, reported as the CSI vendor_version and by `--version`.
    public static let version = "0.1.0"

    /// The CSI driver name used when `--driver-name` is not given.
    public static let defaultName = "glusterfs.csi.heketi.io"

    /// Checks a driver name against the CSI spec's rules: at most 63 characters, starting and
    /// ending with a letter or digit, with only letters, digits, `-`, `_` and `.` between.
    public static func validate(name: String) throws(CSIError) {
        let bytes = Array(name.utf8)
        func isAlphanumeric(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
        }
        let allowedInside = bytes.allSatisfy { isAlphanumeric($0) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }
        guard !bytes.isEmpty, bytes.count <= 63, isAlphanumeric(bytes.first!), isAlphanumeric(bytes.last!),
            allowedInside
        else {
            throw CSIError(
                .invalidArgument,
                "driver name '\(name)' is invalid: use at most 63 characters, letters, digits, '-', '_' and '.', "
                    + "starting and ending with a letter or digit (for example \(defaultName))")
        }
    }
}
