import CSICore

/// The Heketi (and gluster) volume name for a CSI volume name: deterministic, so a retry, a
/// restarted controller or a restarted Heketi all arrive at the same name and find the volume
/// instead of creating a second one.
///
/// - Without `volumenameprefix`: the CSI name (normally `pvc-<uid>`), with characters Heketi does
///   not accept replaced by `-`, plus `_` and a hash of the CSI name.
/// - With it: `<prefix>_<namespace>_<pvc>_<hash>` like the in-tree provisioner, when the
///   external-provisioner passes PVC metadata (`--extra-create-metadata`); `<prefix>_<hash>` if not.
///
/// The hash (10 hex digits of FNV-1a over the full CSI name) keeps names unique when sanitising or
/// shortening made two CSI names alike. Names stay within `^[a-zA-Z0-9_-]+$` and 60 bytes
/// (gluster uses the name in brick paths and volfile names).
struct HeketiVolumeName: Sendable, Hashable, CustomStringConvertible {
    static let maximumLength = 60
    let value: String

    init(csiName: String, prefix: String?, pvcNamespace: String?, pvcName: String?) {
        let hash = Self.hash(csiName)
        var parts: [String]
        if let prefix {
            parts = [prefix]
            if let pvcNamespace, let pvcName, !pvcNamespace.isEmpty, !pvcName.isEmpty {
                parts += [Self.sanitized(pvcNamespace), Self.sanitized(pvcName)]
            }
        } else {
            parts = [Self.sanitized(csiName)]
        }
        // Shorten the longest variable part (never the prefix or the hash) until the name fits.
        let budget = Self.maximumLength - hash.utf8.count - parts.count
        let shortenable = prefix == nil ? Array(parts.indices) : Array(parts.indices.dropFirst())
        // Cutting longest-first brings every part longer than the budget down to the budget before
        // anything else changes, so cutting there at once gives the same name — and keeps a
        // 100,000-byte name from costing a character at a time (quadratic: seconds of CPU).
        // Sanitised parts are ASCII, so bytes are characters.
        for index in shortenable where parts[index].utf8.count > max(budget, 1) {
            parts[index] = String(decoding: parts[index].utf8.prefix(max(budget, 1)), as: UTF8.self)
        }
        while parts.reduce(0, { $0 + $1.utf8.count }) > budget {
            guard let longest = shortenable.max(by: { parts[$0].count < parts[$1].count }), parts[longest].count > 1
            else { break }
            parts[longest].removeLast()
        }
        value = (parts + [hash]).joined(separator: "_")
    }

    var description: String { value }

    private static func sanitized(_ text: String) -> String {
        String(
            text.unicodeScalars.map { scalar -> Character in
                let byte = scalar.value
                let allowed =
                    (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                    || byte == 0x2D
                return allowed ? Character(scalar) : "-"
            })
    }

    /// The first 10 of the 16 hex digits of FNV-1a 64.
    private static func hash(_ text: String) -> String {
        let hex = String(fnv1a64(text), radix: 16)
        return String((String(repeating: "0", count: 16 - hex.count) + hex).prefix(10))
    }
}
