import CSICore

/// The Heketi (and gluster) name of the clone that holds a snapshot:
/// `snap-<name hash>-<created>_<source>`, 60 bytes.
///
/// - name hash: 12 hex digits of FNV-1a 64 over the CSI snapshot name, so a retry, a restarted
///   controller or a restarted Heketi find the clone by name instead of cloning again;
/// - created: the creation time in Unix seconds, 9 hex digits. Heketi keeps no timestamps, and a
///   repeated CreateSnapshot must answer the same creation_time, so the time lives in the name;
/// - source: the source volume's Heketi ID, so a repeat naming another source is told apart
///   (ALREADY_EXISTS), and ListSnapshots can filter by source without asking Heketi.
///
/// Volume names (HeketiVolumeName) always end in `_` and 10 hex digits, so no volume name has this
/// shape, and ListVolumes can leave snapshots out by name.
struct HeketiSnapshotName: Sendable, Hashable, CustomStringConvertible {
    private static let prefix = "snap-"
    /// 5 + 12 + 1 + 9 + 1 + 32.
    static let length = 60

    let value: String
    /// The `snap-<name hash>-` part, shared by every clone made for one CSI snapshot name.
    let lookupPrefix: String
    let createdSeconds: Int64
    let sourceHeketiID: String

    init(csiName: String, createdSeconds: Int64, sourceHeketiID: String) {
        lookupPrefix = Self.lookupPrefix(csiName: csiName)
        self.createdSeconds = createdSeconds
        self.sourceHeketiID = sourceHeketiID
        value = lookupPrefix + Self.hex(UInt64(max(0, createdSeconds)), digits: 9) + "_" + sourceHeketiID
    }

    /// Reads a Heketi volume name back; nil for any name that is not a snapshot's.
    init?(parsing name: String) {
        let bytes = Array(name.utf8)
        guard bytes.count == Self.length, name.hasPrefix(Self.prefix), bytes[17] == UInt8(ascii: "-"),
            bytes[27] == UInt8(ascii: "_"), Self.isLowerHex(bytes[5..<17]), Self.isLowerHex(bytes[18..<27]),
            Self.isLowerHex(bytes[28...]),
            let seconds = Int64(String(decoding: bytes[18..<27], as: UTF8.self), radix: 16)
        else { return nil }
        value = name
        lookupPrefix = String(decoding: bytes[..<18], as: UTF8.self)
        createdSeconds = seconds
        sourceHeketiID = String(decoding: bytes[28...], as: UTF8.self)
    }

    var description: String { value }

    static func lookupPrefix(csiName: String) -> String {
        let hash = fnv1a64(csiName)
        // The top 48 bits: multiplying carries a change only towards higher bits, so only the high
        // bits depend on every bit of every byte.
        return prefix + hex(hash >> 16, digits: 12) + "-"
    }

    private static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text.suffix(digits)
    }

    private static func isLowerHex(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}
