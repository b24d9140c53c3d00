import Glibc
import Migration
import Testing

/// The fixtures next to this file: in-tree objects as `kubectl get -o json` writes them, and the
/// golden outputs of `glusterfs-csi migrate` for them.
enum Fixture {
    static let directory: String = {
        let file = #filePath
        return String(file[..<file.lastIndex(of: "/")!]) + "/Fixtures/migrate"
    }()

    static func path(_ name: String) -> String { directory + "/" + name }

    static func bytes(_ name: String) -> [UInt8] {
        guard let file = fopen(path(name), "rb") else { fatalError("cannot open fixture \(path(name))") }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        return bytes
    }

    static func text(_ name: String) -> String { String(decoding: bytes(name), as: UTF8.self) }

    static func input(_ name: String) -> MigrationInput { MigrationInput(name: name, bytes: bytes(name)) }
}

/// Compares `actual` with the golden file `name`, exactly. With GLUSTERFS_CSI_UPDATE_GOLDEN=1 in
/// the environment it writes the file instead (then review the diff before committing it).
func expectGolden(_ actual: String, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) {
    if let update = getenv("GLUSTERFS_CSI_UPDATE_GOLDEN"), String(cString: update) == "1" {
        guard let file = fopen(Fixture.path(name), "wb") else { fatalError("cannot write \(Fixture.path(name))") }
        fputs(actual, file)
        fclose(file)
        return
    }
    let expected = Fixture.text(name)
    if actual == expected { return }
    // The first line that differs, so the failure says where without dumping both texts.
    let actualLines = actual.split(separator: "\n", omittingEmptySubsequences: false)
    let expectedLines = expected.split(separator: "\n", omittingEmptySubsequences: false)
    let common = min(actualLines.count, expectedLines.count)
    let index = (0..<common).first { actualLines[$0] != expectedLines[$0] } ?? common
    let got = index < actualLines.count ? String(actualLines[index]) : "<end>"
    let wanted = index < expectedLines.count ? String(expectedLines[index]) : "<end>"
    let message =
        "differs from \(name) at line \(index + 1):\n  got:      \(got)\n  expected: \(wanted)\n"
        + "(GLUSTERFS_CSI_UPDATE_GOLDEN=1 rewrites the golden files)"
    Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
}

/// `glusterfs-csi migrate` on fixture files, as the command runs it.
func migrate(_ names: [String], _ options: MigrationOptions = MigrationOptions()) -> MigrateOutcome {
    MigrateOutcome(inputs: names.map(Fixture.input), inputNames: names, options: options)
}

/// The Migration itself, for tests that look at its decisions.
func migration(_ names: [String], _ options: MigrationOptions = MigrationOptions()) throws -> Migration {
    try Migration(inputs: names.map(Fixture.input), options: options)
}
