/// The CSI volume ID of a Heketi-provisioned volume: `v1:<heketi volume id>:<heketi url>`.
///
/// DeleteVolume and ControllerExpandVolume receive only this ID and secrets, never the
/// StorageClass, so the ID itself says which Heketi holds the volume. The URL comes last so it
/// may contain `:`. The driver always records the URL; an empty one (accepted for hand-written
/// static volume handles) means "the controller's default Heketi" (`--heketi-url`).
///
/// - `v1` is the format version; a future format gets a new prefix and this parser keeps working.
/// - The Heketi volume ID is 32 lower-case hex digits (Heketi's own format).
/// - The whole ID is at most 128 bytes, the CSI limit, so URLs may have at most 92 bytes.
public struct VolumeID: Sendable, Hashable, CustomStringConvertible {
    public static let maximumLength = 128
    private static let prefix = "v1:"

    /// Heketi's ID of the volume.
    public let heketiID: String
    /// Base URL of the Heketi that holds it; empty for the controller's default.
    public let heketiURL: String

    public init(heketiID: String, heketiURL: String) throws(CSIError) {
        guard Self.isHeketiID(heketiID) else {
            throw CSIError(.internal, "Heketi returned a volume ID that is not 32 hex digits: '\(heketiID)'")
        }
        let length = Self.prefix.utf8.count + heketiID.utf8.count + 1 + heketiURL.utf8.count
        guard length <= Self.maximumLength else {
            throw CSIError(
                .invalidArgument,
                "parameter resturl: '\(heketiURL)' is too long to record in a CSI volume ID (at most "
                    + "\(Self.maximumLength - 36) bytes); use a shorter URL, or omit resturl and start the "
                    + "controller with --heketi-url")
        }
        self.heketiID = heketiID
        self.heketiURL = heketiURL
    }

    /// Parses an ID from a request. Returns nil for anything this driver did not produce, so that
    /// callers answer as the spec wants for unknown volumes (NOT_FOUND, or success for deletes).
    public init?(parsing text: String) {
        guard text.utf8.count <= Self.maximumLength, text.hasPrefix(Self.prefix) else { return nil }
        let rest = text.dropFirst(Self.prefix.count)
        guard let colon = rest.firstIndex(of: ":") else { return nil }
        let id = String(rest[..<colon])
        let url = String(rest[rest.index(after: colon)...])
        guard Self.isHeketiID(id), url.isEmpty || url.hasPrefix("http://") || url.hasPrefix("https://") else {
            return nil
        }
        heketiID = id
        heketiURL = url
    }

    public var description: String { Self.prefix + heketiID + ":" + heketiURL }

    static func isHeketiID(_ text: String) -> Bool {
        text.utf8.count == 32 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}
