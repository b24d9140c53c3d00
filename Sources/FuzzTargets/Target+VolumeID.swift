@testable import CSICore
@testable import Controller
@testable import Node

/// Volume IDs (`Sources/CSICore/VolumeID.swift`, docs/volume-id.md), as the controller parses them
/// from requests, builds them from Heketi's answers, and the node checks them. (The driver has no
/// snapshot IDs: it does not offer snapshots.)
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
}
