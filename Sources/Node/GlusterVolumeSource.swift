import CSICore
import Glibc

/// Where a volume lives: a validated Gluster volume name and its storage hosts.
///
/// Everything in here ends up in a mount source (`host:/volume`) or a `backup-volfile-servers`
/// option handed to a shell script, so only host names, IPv4 addresses and Gluster's own volume
/// name characters get through.
public struct GlusterVolumeSource: Sendable, Equatable {
    /// The Gluster volume name (`[A-Za-z0-9_.-]+`).
    public var volume: String
    /// Storage hosts, de-duplicated, in the order given.
    public var hosts: [String]
    /// Whether `hosts[0]` is the primary (static `server` lists); otherwise the node spreads
    /// primaries across hosts.
    public var firstHostIsPrimary: Bool
    /// The volume's GID, if the controller set one.
    public var gid: UInt32?
    /// Heketi's volume ID, for log lines.
    public var heketiVolumeID: String?
    /// Heketi's cluster ID, for log lines.
    public var heketiClusterID: String?

    /// Reads and validates a `volume_context`. Throws INVALID_ARGUMENT naming the bad key.
    public init(volumeContext context: [String: String]) throws(CSIError) {
        typealias Key = VolumeContextKey
        let controllerName = context[Key.glusterVolume]
        let staticName = context[Key.volume]
        if let controllerName, let staticName, controllerName != staticName {
            throw .invalidArgument(
                "volume_context: '\(Key.glusterVolume)' (\(printable(controllerName))) and '\(Key.volume)' "
                    + "(\(printable(staticName))) name different Gluster volumes; keep only one")
        }
        guard let name = controllerName ?? staticName else {
            throw .invalidArgument(
                "volume_context has no Gluster volume: expected '\(Key.glusterVolume)' and '\(Key.glusterHosts)' "
                    + "(written by the controller) or, for a static PV, '\(Key.volume)' and '\(Key.server)'")
        }
        let nameKey = controllerName != nil ? Key.glusterVolume : Key.volume
        try Self.validateVolumeName(name, key: nameKey)

        let controllerHosts = context[Key.glusterHosts]
        let staticHosts = context[Key.server]
        if let controllerHosts, let staticHosts, controllerHosts != staticHosts {
            throw .invalidArgument(
                "volume_context: '\(Key.glusterHosts)' and '\(Key.server)' list different hosts; keep only one")
        }
        guard let hostList = controllerHosts ?? staticHosts else {
            throw .invalidArgument(
                "volume_context has no storage hosts: expected '\(Key.glusterHosts)' (written by the controller) "
                    + "or '\(Key.server)' (static PV: one host, or a comma-separated list, primary first)")
        }
        let hostKey = controllerHosts != nil ? Key.glusterHosts : Key.server

        self.volume = name
        self.hosts = try Self.parseHosts(hostList, key: hostKey)
        self.firstHostIsPrimary = controllerHosts == nil
        if let gid = context[Key.gid] {
            guard let value = UInt32(gid), value != UInt32.max else {
                throw .invalidArgument(
                    "volume_context: '\(Key.gid)' must be a number from 0 to 4294967294, got '\(printable(gid))'")
            }
            self.gid = value
        }
        self.heketiVolumeID = try Self.identifier(context, Key.heketiVolumeID)
        self.heketiClusterID = try Self.identifier(context, Key.heketiClusterID)
    }

    /// The host this node mounts from.
    ///
    /// Static lists name their primary first. For controller-written lists every node picks by a
    /// stable hash of (node ID, volume) over the sorted hosts, so mounts spread across servers
    /// yet each node picks the same one on every retry and after restarts (Swift's `Hasher` is
    /// seeded per process, so it is not used).
    public func primary(nodeID: String) -> String {
        if firstHostIsPrimary || hosts.count == 1 { return hosts[0] }
        let sorted = hosts.sorted { $0.lowercased() < $1.lowercased() }
        let index = Int(fnv1a64(nodeID + "\u{0}" + volume) % UInt64(sorted.count))
        return sorted[index]
    }

    /// The other hosts, for `backup-volfile-servers` — never including the primary (listing it
    /// there breaks failover on some clients; the in-tree plugin had that bug).
    public func backupHosts(nodeID: String) -> [String] {
        let primary = primary(nodeID: nodeID).lowercased()
        return hosts.filter { $0.lowercased() != primary }
    }

    /// The mount source, `primary:/volume`.
    public func mountSource(nodeID: String) -> String {
        "\(primary(nodeID: nodeID)):/\(volume)"
    }

    /// Whether a mount table `source` is this volume from any of its hosts. Any host counts: the
    /// primary may differ from the one chosen now if the host list changed since mounting.
    public func matches(mountSource source: String) -> Bool {
        guard let colon = source.lastIndex(of: ":") else { return false }
        let host = source[..<colon].lowercased()
        let path = source[source.index(after: colon)...]
        return path == "/" + volume && hosts.contains { $0.lowercased() == host }
    }

    // MARK: - Validation

    /// Gluster's own rule for volume names, minus the names that would be path tricks.
    static func validateVolumeName(_ name: String, key: String) throws(CSIError) {
        let allowed = name.utf8.allSatisfy { byte in
            isASCIIAlphanumeric(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: "-")
        }
        guard !name.isEmpty, name.utf8.count <= 255, allowed, name != ".", name != "..", !name.hasPrefix("-")
        else {
            throw .invalidArgument(
                "volume_context: '\(key)' must be a Gluster volume name (1-255 of A-Z a-z 0-9 _ . -, "
                    + "not starting with '-'), got '\(printable(name))'")
        }
    }

    /// Splits a comma-separated host list, trims spaces, drops empties and duplicates.
    static func parseHosts(_ list: String, key: String) throws(CSIError) -> [String] {
        var hosts: [String] = []
        for entry in list.split(separator: ",") {
            let host = String(entry).trimmingWhitespace()
            if host.isEmpty { continue }
            guard isHostName(host) || isIPv4Address(host) else {
                let hint =
                    isIPv6Address(host)
                    ? "IPv6 literals cannot be passed through mount.glusterfs's backup-volfile-servers; use a DNS name"
                    : "expected a host name or an IPv4 address"
                throw .invalidArgument("volume_context: '\(key)' has an invalid host '\(printable(host))': \(hint)")
            }
            if !hosts.contains(where: { $0.lowercased() == host.lowercased() }) { hosts.append(host) }
        }
        guard !hosts.isEmpty, hosts.count <= 64 else {
            throw .invalidArgument(
                "volume_context: '\(key)' must list 1 to 64 storage hosts separated by commas, got '\(printable(list))'"
            )
        }
        return hosts
    }

    /// An RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
    static func isHostName(_ host: String) -> Bool {
        guard host.utf8.count <= 253 else { return false }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            let bytes = Array(label.utf8)
            guard let first = bytes.first, let last = bytes.last, bytes.count <= 63 else { return false }
            return first != UInt8(ascii: "-") && last != UInt8(ascii: "-")
                && bytes.allSatisfy { isASCIIAlphanumeric($0) || $0 == UInt8(ascii: "-") }
        }
    }

    static func isIPv4Address(_ host: String) -> Bool {
        var address = in_addr()
        return !host.utf8.contains(0) && inet_pton(AF_INET, host, &address) == 1
    }

    static func isIPv6Address(_ host: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, host, &address) == 1
    }

    /// An optional informational ID: letters, digits, `-` and `_` only, so it is safe in logs.
    private static func identifier(_ context: [String: String], _ key: String) throws(CSIError) -> String? {
        guard let value = context[key] else { return nil }
        let valid =
            !value.isEmpty && value.utf8.count <= 128
            && value.utf8.allSatisfy { isASCIIAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
        guard valid else {
            throw .invalidArgument(
                "volume_context: '\(key)' must be 1-128 of A-Z a-z 0-9 - _, got '\(printable(value))'")
        }
        return value
    }
}

func isASCIIAlphanumeric(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
        || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
}
