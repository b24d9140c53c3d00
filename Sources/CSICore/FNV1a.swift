/// FNV-1a, 64 bit: a stable, seedless hash, the same on every node, in every process and in every
/// version (Swift's Hasher is randomly seeded). Names derived from it (Heketi volume and snapshot
/// names, systemd units, log files) must never change, so neither may this.
public func fnv1a64(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01b3
    }
    return hash
}
