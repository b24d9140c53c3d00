@testable import CSICore
@testable import Controller
@testable import Node

/// Volume and snapshot IDs (`Sources/CSICore/VolumeID.swift`, `SnapshotID.swift`,
/// docs/volume-id.md), as the controller parses them from requests, builds them from Heketi's
/// answers, and the node checks them; and the snapshot clones' Heketi names.
///
/// Input: the ID's text.
enum VolumeIDTarget {
    static let target = FuzzTarget(
        name: "volume-id",
        summary: "volume IDs: parse, build, print and the node's check agree",
        run: run)

    static func run(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        if let id = VolumeID(parsing: text) {
            expect(id.description == text, "'\(text)' parsed to an ID that prints as '\(id)'")
            expect(text.utf8.count <= VolumeID.maximumLength, "an ID of \(text.utf8.count) bytes parsed")
            expect(VolumeID.isHeketiID(id.heketiID), "Heketi ID '\(id.heketiID)' is not 32 lower-case hex digits")
            expect(
                id.heketiURL.isEmpty || id.heketiURL.hasPrefix("http://") || id.heketiURL.hasPrefix("https://"),
                "URL '\(id.heketiURL)' is neither empty nor http(s)")
            expect(
                (try? VolumeID(heketiID: id.heketiID, heketiURL: id.heketiURL)) == id,
                "'\(text)' parses but cannot be built from its parts")
            // Whatever the controller accepts here it would also have written, so the node must
            // accept it as a volume_id (unless it has bytes a StorageClass URL cannot have).
            if id.heketiURL.isEmpty || (try? StorageClassParameters.url(id.heketiURL)) == id.heketiURL {
                expect(
                    (try? NodeRequestValidation.volumeID(text)) != nil,
                    "the node refuses '\(printable(text))', an ID the controller records")
            }
        }

        checkSnapshotID(text)
        checkSnapshotName(text)

        // Built from parts as CreateVolume does: Heketi's ID and a validated URL.
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let heketiID = String(parts[0])
        let url = parts.count == 2 ? String(parts[1]) : ""
        let built: VolumeID
        do {
            built = try VolumeID(heketiID: heketiID, heketiURL: url)
        } catch {
            let csi = expectCSIError(error, "VolumeID(heketiID:heketiURL:)")
            expect(csi.code == .internal || csi.code == .invalidArgument, "VolumeID refused with \(csi.code)")
            return
        }
        expect(built.description.utf8.count <= VolumeID.maximumLength, "built an ID longer than 128 bytes: \(built)")
        if url.isEmpty || (try? StorageClassParameters.url(url)) == url {
            expect(VolumeID(parsing: built.description) == built, "built ID '\(built)' does not parse back")
        }
    }

    /// A snapshot ID is never a volume ID, prints back as itself, and the node refuses it.
    static func checkSnapshotID(_ text: String) {
        guard let id = SnapshotID(parsing: text) else { return }
        expect(VolumeID(parsing: text) == nil, "'\(text)' parsed as a volume and a snapshot")
        expect(id.description == text, "'\(text)' parsed to a snapshot ID that prints as '\(id)'")
        expect(
            (try? SnapshotID(heketiID: id.heketiID, heketiURL: id.heketiURL)) == id,
            "'\(text)' parses but cannot be built from its parts")
        expect((try? NodeRequestValidation.volumeID(text)) == nil, "the node accepts the snapshot ID '\(text)'")
    }

    /// Clone names: a name that parses prints back as itself, and no volume name ever parses.
    static func checkSnapshotName(_ text: String) {
        if let name = HeketiSnapshotName(parsing: text) {
            let again = HeketiSnapshotName(
                csiName: "", createdSeconds: name.createdSeconds, sourceHeketiID: name.sourceHeketiID)
            expect(
                again.value.dropFirst(18) == name.value.dropFirst(18),
                "snapshot name '\(text)' does not rebuild from its time and source")
        }
        let volumeName = HeketiVolumeName(csiName: text, prefix: nil, pvcNamespace: nil, pvcName: nil)
        expect(
            HeketiSnapshotName(parsing: volumeName.value) == nil, "volume name '\(volumeName)' looks like a snapshot")
        let snapshotName = HeketiSnapshotName(
            csiName: text, createdSeconds: Int64(text.utf8.count) * 1_000_003, sourceHeketiID: FakeHeketi.listedID)
        expect(HeketiSnapshotName(parsing: snapshotName.value) == snapshotName, "'\(snapshotName)' does not parse back")
    }
}
