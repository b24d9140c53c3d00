/// The CSI snapshot ID of a snapshot: `s1:<heketi volume id>:<heketi url>`.
///
/// A snapshot is a Heketi clone of its source volume, so it has a Heketi volume ID and lives on
/// the source's Heketi, which the ID names for the same reason a volume ID does (DeleteSnapshot
/// receives nothing else). The prefix differs from the volume ID's (`v1:`), so neither is ever
/// taken for the other: the node refuses a snapshot ID as a volume, and the controller refuses a
/// volume ID as a snapshot.
public struct SnapshotID: Sendable, Hashable, CustomStringConvertible {
    public static let maximumLength = VolumeID.maximumLength
    private static let prefix = "s1:"

    /// Heketi's ID of the clone that holds the snapshot.
    public let heketiID: String
    /// Base URL of the Heketi that holds it; empty for the controller's default.
    public let heketiURL: String

    public init(heketiID: String, heketiURL: String) throws(CSIError) {
        // Same shape and limits as a volume ID: build one to check them.
        let asVolume = try VolumeID(heketiID: heketiID, heketiURL: heketiURL)
        self.heketiID = asVolume.heketiID
        self.heketiURL = asVolume.heketiURL
    }

    /// Parses an ID from a request; nil for anything this driver did not produce (a volume ID too).
    public init?(parsing text: String) {
        guard text.hasPrefix(Self.prefix), let asVolume = VolumeID(parsing: "v1:" + text.dropFirst(Self.prefix.count))
        else { return nil }
        heketiID = asVolume.heketiID
        heketiURL = asVolume.heketiURL
    }

    public var description: String { Self.prefix + heketiID + ":" + heketiURL }
}
