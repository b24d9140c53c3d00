/// One line of `/proc/self/mountinfo`: a mount as the kernel sees it.
///
/// Mount state always comes from here, never from `mount` output: it is the kernel's own table,
/// reading it never touches the mounted filesystems (so it cannot hang on a dead FUSE client), and
/// its escaping is unambiguous. See proc(5) for the format.
public struct MountInfo: Sendable, Equatable {
    /// Unique ID of the mount (may be reused after unmount).
    public var mountID: Int
    /// ID of the parent mount.
    public var parentID: Int
    /// Device major number (`st_dev`); bind mounts share it with their source.
    public var major: Int
    /// Device minor number.
    public var minor: Int
    /// The directory of the filesystem that forms the root of this mount (not `/` for bind mounts
    /// of a subdirectory).
    public var root: String
    /// Where the mount is, relative to this process's root.
    public var mountPoint: String
    /// Per-mount options, e.g. `rw`, `nosuid`, `relatime`.
    public var mountOptions: [String]
    /// Optional fields such as `shared:1` or `master:2`.
    public var optionalFields: [String]
    /// Filesystem type, e.g. `fuse.glusterfs`.
    public var fsType: String
    /// Filesystem-specific source, e.g. `server:/volume`.
    public var source: String
    /// Per-superblock options.
    public var superOptions: [String]

    /// Creates an entry; tests and fakes use this, production code gets entries from the parser.
    public init(
        mountID: Int, parentID: Int, major: Int, minor: Int, root: String, mountPoint: String,
        mountOptions: [String], optionalFields: [String] = [], fsType: String, source: String,
        superOptions: [String]
    ) {
        self.mountID = mountID
        self.parentID = parentID
        self.major = major
        self.minor = minor
        self.root = root
        self.mountPoint = mountPoint
        self.mountOptions = mountOptions
        self.optionalFields = optionalFields
        self.fsType = fsType
        self.source = source
        self.superOptions = superOptions
    }

    /// Whether this mount point is read-only (per-mount `ro`, which is what a bind remount sets).
    public var isReadOnly: Bool { mountOptions.contains("ro") }

    /// Whether `other` shows the same filesystem subtree, i.e. one is a bind mount of the other.
    public func sharesFilesystem(with other: MountInfo) -> Bool {
        major == other.major && minor == other.minor && root == other.root
    }
}

/// A line of mountinfo that does not have the documented shape.
public struct MountInfoParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The 1-based line number.
    public var line: Int
    /// What was wrong with it.
    public var reason: String

    public var description: String { "mountinfo line \(line): \(reason)" }
}

extension MountInfo {
    // Parsing works on UTF-8 bytes: the table is read on every node call, and splitting Swift
    // Strings by Character (grapheme clusters) made it half of the node plugin's CPU time.
    private static let space = UInt8(ascii: " ")
    private static let newline = UInt8(ascii: "\n")

    /// Parses the whole text of a mountinfo file; blank lines are skipped.
    public static func parseTable(_ text: String) throws(MountInfoParseError) -> [MountInfo] {
        var entries: [MountInfo] = []
        var lineNumber = 0
        for line in Array(text.utf8).split(separator: newline, omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.allSatisfy({ $0 == space }) { continue }
            do {
                entries.append(try parse(line))
            } catch {
                throw MountInfoParseError(line: lineNumber, reason: error.reason)
            }
        }
        return entries
    }

    /// Parses one line:
    /// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
    public static func parseLine(_ line: Substring) throws(MountInfoParseError) -> MountInfo {
        try parse(Array(line.utf8)[...])
    }

    private static func parse(_ line: ArraySlice<UInt8>) throws(MountInfoParseError) -> MountInfo {
        // Fields are separated by single spaces; spaces inside values are escaped as \040, so a
        // plain split is exact. Empty fields (a source can be empty) survive the split.
        let fields = line.split(separator: space, omittingEmptySubsequences: false)
        func fail(_ reason: String) -> MountInfoParseError { MountInfoParseError(line: 0, reason: reason) }
        guard fields.count >= 10 else { throw fail("expected at least 10 fields, got \(fields.count)") }
        guard let separator = fields[6...].firstIndex(where: { $0.elementsEqual([UInt8(ascii: "-")]) }) else {
            throw fail("missing the ' - ' separator after the optional fields")
        }
        guard fields.count - separator == 4 else {
            throw fail("expected 3 fields after ' - ', got \(fields.count - separator - 1)")
        }
        guard let mountID = integer(fields[0]), let parentID = integer(fields[1]) else {
            throw fail("mount ID and parent ID must be integers")
        }
        let device = fields[2].split(separator: UInt8(ascii: ":"))
        guard device.count == 2, let major = integer(device[0]), let minor = integer(device[1]) else {
            throw fail("device must be major:minor, got '\(String(decoding: fields[2], as: UTF8.self))'")
        }
        return MountInfo(
            mountID: mountID, parentID: parentID, major: major, minor: minor,
            root: unescape(bytes: fields[3]), mountPoint: unescape(bytes: fields[4]),
            mountOptions: options(fields[5]),
            optionalFields: fields[6..<separator].map { unescape(bytes: $0) },
            fsType: unescape(bytes: fields[separator + 1]), source: unescape(bytes: fields[separator + 2]),
            superOptions: options(fields[separator + 3]))
    }

    /// Undoes the kernel's octal escaping (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
    ///
    /// The kernel escapes with exactly three octal digits; anything else is kept literally, so a
    /// malformed escape can never make two different paths compare equal.
    private static func unescape(bytes utf8: ArraySlice<UInt8>) -> String {
        guard utf8.contains(UInt8(ascii: "\\")) else { return String(decoding: utf8, as: UTF8.self) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var i = utf8.startIndex
        while i < utf8.endIndex {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.endIndex, let value = octal(utf8[(i + 1)...(i + 3)]) {
                bytes.append(value)
                i += 4
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func octal(_ digits: ArraySlice<UInt8>) -> UInt8? {
        var value = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "7") else { return nil }
            value = value * 8 + Int(digit - UInt8(ascii: "0"))
        }
        return value <= 255 ? UInt8(value) : nil
    }

    /// A non-negative decimal integer, or nil.
    private static func integer(_ digits: ArraySlice<UInt8>) -> Int? {
        guard !digits.isEmpty, digits.count <= 18 else { return nil }
        var value = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(digit - UInt8(ascii: "0"))
        }
        return value
    }

    private static func options(_ field: ArraySlice<UInt8>) -> [String] {
        field.split(separator: UInt8(ascii: ",")).map { unescape(bytes: $0) }
    }
}
