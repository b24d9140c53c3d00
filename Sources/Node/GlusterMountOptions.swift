import CSICore

/// The mount options of a GlusterFS staging mount: the user's validated `mount_flags`
/// (StorageClass `mountOptions`) plus the driver's own.
///
/// ## Policy: an allow-list
///
/// `mount.glusterfs` is a shell script: it joins nothing but splits `-o` on commas and then
/// word-splits and globs every value, and it accepts options that replace the volume's servers,
/// write files anywhere on the node as root, or hand raw options to the kernel or the client's
/// translators. A deny-list would have to chase every client release, so only options known to be
/// harmless are accepted; anything else is INVALID_ARGUMENT with a message naming the option and
/// what to do instead.
///
/// - Each `mount_flags` entry is exactly one option, `name` or `name=value`, made of
///   `A-Z a-z 0-9 _ . - =`. A comma inside an entry (which would smuggle in more options),
///   spaces, quotes, `/`, `*` and every other character are rejected.
/// - Flags allowed without a value: `ro`, `rw`, access-time flags (`noatime`, `relatime`, ...),
///   `nodev`, `nosuid`, `noexec`, `exec`, `acl`, `selinux`, `worm`, `enable-ino32`, `resolve-gids`,
///   `fopen-keep-cache`, `_netdev`.
/// - Options allowed with a value, each value checked: `log-level` (TRACE, DEBUG, INFO, WARNING,
///   ERROR, CRITICAL, NONE), `direct-io-mode`, booleans (`use-readdirp`, `auto-invalidation`,
///   `kernel-writeback-cache`, `fopen-keep-cache`, `event-history`, `fuse-flush-handle-interrupt`),
///   timeouts in seconds (`attribute-timeout`, `entry-timeout`, `negative-timeout`), counts
///   (`gid-timeout`, `lru-limit`, `invalidate-limit`, `background-qlen`, `congestion-threshold`,
///   `fetch-attempts`, `reader-thread-count`, `attr-times-granularity`) and `oom-score-adj`.
///   No value can be a path, so no value can traverse anywhere.
/// - Denied with a specific reason: options that change the source (`volfile-server`,
///   `backup-volfile-servers`, `backupvolfile-server`, `server-port`, `transport`, `volfile-id`,
///   `volume-name`, `volume-id`, `subdir-mount`, `volfile-check`), that write files at a chosen path
///   (`log-file`, `dump-fuse`), that inject unvalidated options (`xlator-option`, `fuse-mountopts`,
///   `process-name`, `io-engine`, SELinux `context` family), and that weaken the node's security
///   (`dev`, `suid`, `root-squash`, `no-root-squash`, `aux-gfid-mount`).
///
/// The driver adds `ro` for read-only access modes, `log-level=ERROR` unless the user set a
/// level, a per-volume `log-file`, `backup-volfile-servers` and `auto_unmount`.
public struct GlusterMountOptions: Sendable, Equatable {
    /// The user's options, validated and normalized, without `ro`/`rw` (see `readOnly`).
    public var userOptions: [String]
    /// Whether the mount is read-only (a read-only access mode, or the user's `ro`).
    public var readOnly: Bool

    /// Validates `mountFlags` for a volume whose access mode is read-only or not.
    public init(mountFlags: [String], readOnlyAccessMode: Bool) throws(CSIError) {
        var options: [String] = []
        var readOnly = readOnlyAccessMode
        for flag in mountFlags {
            let option = try Self.validate(flag)
            switch option {
            case "ro":
                readOnly = true
            case "rw" where readOnlyAccessMode:
                throw .invalidArgument(
                    "mount_flags: 'rw' contradicts the read-only access mode of this volume; remove it")
            case "rw":
                continue
            default:
                if !options.contains(option) { options.append(option) }
            }
        }
        if readOnly && options.contains("rw") { options.removeAll { $0 == "rw" } }
        self.userOptions = options
        self.readOnly = readOnly
    }

    /// Whether the user chose a client log level.
    public var setsLogLevel: Bool { userOptions.contains { $0.hasPrefix("log-level=") } }

    /// The full option list for `mount -t glusterfs -o`.
    ///
    /// `backupHosts` must not contain the primary; `mount.glusterfs` separates them with `:`.
    public func mountOptions(logFile: String, backupHosts: [String], autoUnmount: Bool) -> [String] {
        var result = readOnly ? ["ro"] : []
        result += userOptions
        if !setsLogLevel { result.append("log-level=ERROR") }
        result.append("log-file=\(logFile)")
        if !backupHosts.isEmpty { result.append("backup-volfile-servers=\(backupHosts.joined(separator: ":"))") }
        if autoUnmount { result.append("auto_unmount") }
        return result
    }

    // MARK: - The allow-list

    private enum ValueRule {
        case oneOf([String])
        case boolean
        case seconds
        case count
        case integer(ClosedRange<Int>)
    }

    private static let booleanWords = ["yes", "no", "true", "false", "on", "off", "enable", "disable"]

    private static let flags: Set<String> = [
        "ro", "rw", "acl", "selinux", "worm", "enable-ino32", "resolve-gids", "fopen-keep-cache", "_netdev",
        "noatime", "atime", "nodiratime", "diratime", "relatime", "norelatime", "strictatime", "nostrictatime",
        "nodev", "nosuid", "noexec", "exec",
    ]

    private static let valued: [String: ValueRule] = [
        "log-level": .oneOf(["TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "NONE"]),
        "direct-io-mode": .oneOf(booleanWords + ["auto"]),
        "use-readdirp": .boolean, "auto-invalidation": .boolean, "kernel-writeback-cache": .boolean,
        "fopen-keep-cache": .boolean, "event-history": .boolean, "fuse-flush-handle-interrupt": .boolean,
        "attribute-timeout": .seconds, "entry-timeout": .seconds, "negative-timeout": .seconds,
        "gid-timeout": .count, "lru-limit": .count, "invalidate-limit": .count, "background-qlen": .count,
        "congestion-threshold": .count, "fetch-attempts": .count, "reader-thread-count": .count,
        "attr-times-granularity": .count, "oom-score-adj": .integer(-1000...1000),
    ]

    private static let denied: [String: String] = {
        var reasons: [String: String] = [:]
        for name in [
            "volfile-server", "backup-volfile-servers", "backupvolfile-server", "server-port", "transport",
            "volfile-id", "volume-name", "volume-id", "subdir-mount", "volfile-check",
        ] {
            reasons[name] =
                "it changes what is mounted; the driver takes the volume and its servers from the volume context"
        }
        // In-tree StorageClasses often list it; the driver sets it itself (and retries without it
        // on clients that reject it).
        reasons["auto_unmount"] = "the driver adds it itself"
        for name in ["log-file", "dump-fuse"] {
            reasons[name] =
                "it writes a file at a path of your choice on the node; the driver keeps the client log "
                + "in its own log directory (use log-level to change its detail)"
        }
        for name in [
            "xlator-option", "fuse-mountopts", "process-name", "io-engine", "context", "fscontext",
            "defcontext", "rootcontext",
        ] {
            reasons[name] = "it passes options through to the client or the kernel that the driver cannot check"
        }
        for name in ["dev", "suid", "root-squash", "no-root-squash", "aux-gfid-mount"] {
            reasons[name] =
                "it weakens the node's security (device files, set-user-ID programs or root access from the volume)"
        }
        return reasons
    }()

    /// Checks one `mount_flags` entry and returns it normalized.
    private static func validate(_ flag: String) throws(CSIError) -> String {
        let shown = printable(flag)
        if flag.contains(",") {
            throw .invalidArgument(
                "mount_flags: '\(shown)' contains a comma; give each option as its own mountOptions entry")
        }
        let allowedBytes = flag.utf8.allSatisfy { byte in
            isASCIIAlphanumeric(byte)
                || [UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "=")].contains(byte)
        }
        guard !flag.isEmpty, flag.utf8.count <= 128, allowedBytes else {
            throw .invalidArgument(
                "mount_flags: '\(shown)' is not a valid option; an option is a name or name=value "
                    + "made of A-Z a-z 0-9 _ . - (no spaces, quotes, slashes or commas)")
        }
        let parts = flag.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let name = String(parts[0])
        if let reason = denied[name] {
            throw .invalidArgument("mount_flags: '\(name)' is not allowed: \(reason); remove it from mountOptions")
        }
        guard parts.count == 2 else {
            if flags.contains(name) { return name }
            if valued[name] != nil {
                throw .invalidArgument("mount_flags: '\(name)' needs a value, e.g. \(name)=\(example(name))")
            }
            throw unknown(name)
        }
        let value = String(parts[1])
        guard let rule = valued[name] else {
            if flags.contains(name) {
                throw .invalidArgument("mount_flags: '\(name)' takes no value; write just \(name)")
            }
            throw unknown(name)
        }
        switch rule {
        case .oneOf(let choices):
            if let match = choices.first(where: { $0.lowercased() == value.lowercased() }) { return "\(name)=\(match)" }
            throw .invalidArgument(
                "mount_flags: \(name) must be one of \(choices.joined(separator: ", ")), got '\(printable(value))'")
        case .boolean:
            if booleanWords.contains(value.lowercased()) { return "\(name)=\(value.lowercased())" }
            throw .invalidArgument("mount_flags: \(name) must be yes or no, got '\(printable(value))'")
        case .seconds:
            let pieces = value.split(separator: ".", omittingEmptySubsequences: false)
            let numeric =
                value.utf8.count <= 12 && (1...2).contains(pieces.count)
                && pieces.allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } }
            if numeric { return flag }
            throw .invalidArgument(
                "mount_flags: \(name) must be a number of seconds such as 1 or 0.5, got '\(printable(value))'")
        case .count:
            if let number = Int(value), number >= 0, number <= 999_999_999, !value.hasPrefix("+") {
                return "\(name)=\(number)"
            }
            throw .invalidArgument(
                "mount_flags: \(name) must be a whole number from 0 to 999999999, got '\(printable(value))'")
        case .integer(let range):
            if let number = Int(value), range.contains(number) { return "\(name)=\(number)" }
            throw .invalidArgument(
                "mount_flags: \(name) must be a whole number from \(range.lowerBound) to \(range.upperBound), got '\(printable(value))'"
            )
        }
    }

    private static func unknown(_ name: String) -> CSIError {
        .invalidArgument(
            "mount_flags: unknown option '\(printable(name))'; allowed are "
                + (flags.sorted() + valued.keys.sorted().map { "\($0)=..." }).joined(separator: ", "))
    }

    private static func example(_ name: String) -> String {
        switch valued[name] {
        case .oneOf(let choices)?: choices[0]
        case .boolean?: "yes"
        case .seconds?: "1"
        default: "0"
        }
    }
}
