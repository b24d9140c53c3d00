import CSICore

/// The per-volume glusterfs client log: where it lives, and its tail for error messages.
///
/// Users debug failed mounts with the client's own words ("failed to fetch volume file", "no
/// such volume"), which `mount` never prints; the in-tree plugin appended the log's last lines to
/// the error and users relied on it. Only lines written during the failed attempt are used.
struct ClientLog {
    /// How many trailing lines go into an error message.
    static let lineLimit = 20
    /// Bytes read from the end of the log at most.
    static let byteLimit = 8 * 1024
    /// Characters kept per line (gluster lines can carry long xlator dumps).
    static let lineLength = 200

    /// The log file's path.
    let path: String
    /// Its size before the mount attempt; the tail starts there.
    private(set) var startOffset: Int64 = 0

    /// The log for a volume: `<directory>/<gluster volume>-<hash of the CSI volume ID>.log` — readable
    /// by name, unique per CSI volume even when two static PVs point at one Gluster volume.
    init(directory: String, glusterVolume: String, volumeID: String) {
        let hash = String(fnv1a64(volumeID), radix: 16)
        path = "\(directory)/\(glusterVolume)-\(hash).log"
    }

    /// Remembers where the log ends now, so `tail()` shows only what comes after.
    mutating func markStart() {
        startOffset = FileIO.size(path) ?? 0
    }

    /// The last lines written since `markStart()`, cleaned for a user-visible message: control
    /// characters replaced, long lines cut, and anything that looks like a credential redacted
    /// (the client never logs one with our options, but the log is outside our control).
    func tail() -> [String] {
        let bytes = FileIO.tail(path, after: startOffset, limit: Self.byteLimit)
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        return lines.suffix(Self.lineLimit).map { line in
            var text = printable(String(line.prefix(Self.lineLength)))
            text = redactCredentials(text)
            return text
        }
    }

    /// `message` followed by `lines` (from `tail()`), or a pointer to the log when it has nothing new.
    func append(_ lines: [String], to message: String) -> String {
        guard !lines.isEmpty else { return "\(message) (the glusterfs client log \(path) has no new lines)" }
        return "\(message); last lines of the glusterfs client log \(path):\n" + lines.joined(separator: "\n")
    }
}

/// Replaces the value of `password=`, `secret:`, `token=`-like words with `***`. Deliberately
/// narrow: gluster's own `key:/volume` is what users need to see.
func redactCredentials(_ line: String) -> String {
    let sensitive = ["password", "passwd", "secret", "token"]
    return line.split(separator: " ", omittingEmptySubsequences: false).map { word -> String in
        guard let separator = word.firstIndex(where: { $0 == "=" || $0 == ":" }) else { return String(word) }
        let name = word[..<separator].lowercased()
        guard sensitive.contains(where: { name.contains($0) }), word.index(after: separator) < word.endIndex else {
            return String(word)
        }
        return String(word[...separator]) + "***"
    }.joined(separator: " ")
}
