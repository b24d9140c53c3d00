import Node

/// `/proc/self/mountinfo` lines (`Sources/Node/MountInfo.swift`): what the node decides every
/// unmount and every "already mounted" on.
///
/// Input: the text of a mount table.
enum MountInfoTarget {
    static let target = FuzzTarget(
        name: "mountinfo",
        summary: "mountinfo tables: parse errors name a line; entries print back to themselves",
        run: run)

    static func run(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let lineCount = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).count
        let entries: [MountInfo]
        do {
            entries = try MountInfo.parseTable(text)
        } catch {
            expect(error.line >= 1 && error.line <= lineCount, "error names line \(error.line) of \(lineCount)")
            expect(!error.reason.isEmpty, "parse error without a reason")
            return
        }
        expect(entries.count <= lineCount, "\(entries.count) entries from \(lineCount) lines")
        for entry in entries {
            // Written the way the kernel writes it, an entry reads back as itself.
            let line = format(entry)
            let again: MountInfo
            do {
                again = try MountInfo.parseLine(Substring(line))
            } catch {
                fatalError("property violated: the entry printed as '\(line)' does not parse: \(error)")
            }
            expect(again == entry, "'\(line)' parses to \(again), not \(entry)")
            expect(entry.sharesFilesystem(with: entry), "an entry does not share its own file system")
        }
    }

    /// An entry as a mountinfo line, escaped as the kernel escapes (octal for space, tab, newline and
    /// backslash; a field that is exactly "-" too, where it would read as the separator).
    static func format(_ entry: MountInfo) -> String {
        let optional = entry.optionalFields.map { $0 == "-" ? "\\055" : escape($0) }
        let fields =
            ["\(entry.mountID)", "\(entry.parentID)", "\(entry.major):\(entry.minor)", escape(entry.root)]
            + [escape(entry.mountPoint), entry.mountOptions.map(escape).joined(separator: ",")] + optional
            + ["-", escape(entry.fsType), escape(entry.source), entry.superOptions.map(escape).joined(separator: ",")]
        return fields.joined(separator: " ")
    }

    static func escape(_ field: String) -> String {
        var output = ""
        for scalar in field.unicodeScalars {
            switch scalar {
            case " ": output += "\\040"
            case "\t": output += "\\011"
            case "\n": output += "\\012"
            case "\\": output += "\\134"
            case ",": output += "\\054"
            default: output.unicodeScalars.append(scalar)
            }
        }
        return output
    }
}
