import CSICore

@testable import Node

/// Mount flags (`Sources/Node/GlusterMountOptions.swift`) and the volume context that makes the
/// rest of the mount command (`Sources/Node/GlusterVolumeSource.swift`): everything a NodeStage
/// hands to `mount -t glusterfs`, whose helper is a shell script that splits on commas.
///
/// Input: one mount flag per line; a first line `!ro` makes the access mode read-only; a line
/// `@key=value` is a volume_context entry instead.
enum MountOptionsTarget {
    static let target = FuzzTarget(
        name: "mount-options",
        summary: "mount_flags and volume_context: the mount command line, or INVALID_ARGUMENT",
        run: run)

    static let logFile = "/var/log/glusterfs/csi/vol-0123456789abcdef.log"

    static func run(_ bytes: [UInt8]) {
        var input = lines(bytes)
        let readOnlyMode = input.first == "!ro"
        if readOnlyMode { input.removeFirst() }
        var flags: [String] = []
        var context: [String: String] = [:]
        for line in input {
            if line.hasPrefix("@") {
                let parts = line.dropFirst().split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                context[String(parts[0])] = parts.count == 2 ? String(parts[1]) : ""
            } else {
                flags.append(line)
            }
        }

        let source = context.isEmpty ? nil : checkSource(context)
        let options: GlusterMountOptions
        do {
            options = try GlusterMountOptions(mountFlags: flags, readOnlyAccessMode: readOnlyMode)
        } catch {
            checkRefusal(error, "GlusterMountOptions")
            return
        }
        check(options, flags: flags, readOnlyMode: readOnlyMode, source: source)
    }

    /// Node errors quote the request through `printable`: INVALID_ARGUMENT, no control characters.
    static func checkRefusal(_ error: any Error, _ what: String) {
        let csi = expectCSIError(error, what)
        expect(csi.code == .invalidArgument, "\(what) refused with \(csi.code), not INVALID_ARGUMENT")
        expect(!hasControlCharacter(csi.message), "\(what)'s message has control characters: \(csi.message)")
    }

    static func check(_ options: GlusterMountOptions, flags: [String], readOnlyMode: Bool, source: GlusterVolumeSource?)
    {
        expect(options.readOnly || !readOnlyMode, "a read-only access mode gave a writable mount")
        expect(options.readOnly == (readOnlyMode || flags.contains("ro")), "read-only is not mode or 'ro'")
        expect(Set(options.userOptions).count == options.userOptions.count, "duplicate options \(options.userOptions)")
        for option in options.userOptions {
            expect(option != "ro" && option != "rw", "'\(option)' kept in userOptions")
            expect(
                !option.isEmpty && option.utf8.count <= 128
                    && option.utf8.allSatisfy {
                        isASCIIAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
                            || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "=")
                    },
                "option '\(printable(option))' has characters outside A-Z a-z 0-9 _ . - =")
            let name = option.split(separator: "=", maxSplits: 1).first.map(String.init) ?? option
            expect(
                !["log-file", "backup-volfile-servers", "volfile-server", "auto_unmount", "xlator-option"].contains(
                    name),
                "denied option '\(name)' accepted")
        }
        // Normalised options validate again to themselves.
        let replayed = options.userOptions + (options.readOnly ? ["ro"] : [])
        expect(
            (try? GlusterMountOptions(mountFlags: replayed, readOnlyAccessMode: readOnlyMode)) == options,
            "normalised options \(replayed) do not validate to themselves")

        let backups = source?.backupHosts(nodeID: "node-1") ?? ["gluster-2.example.com", "10.0.0.3"]
        for autoUnmount in [true, false] {
            let full = options.mountOptions(logFile: logFile, backupHosts: backups, autoUnmount: autoUnmount)
            // mount.glusterfs splits -o on commas: what it reads back must be exactly this list.
            let joined = full.joined(separator: ",")
            expect(
                joined.split(separator: ",", omittingEmptySubsequences: false).map(String.init) == full,
                "options do not survive the comma join: \(joined)")
            expect(full.filter { $0.hasPrefix("log-level=") }.count == 1, "not exactly one log-level in \(joined)")
            expect(full.filter { $0.hasPrefix("log-file=") } == ["log-file=\(logFile)"], "log-file changed: \(joined)")
            expect(full.contains("ro") == options.readOnly, "'ro' does not match readOnly: \(joined)")
            expect(full.contains("auto_unmount") == autoUnmount, "auto_unmount does not match: \(joined)")
            expect(
                !joined.unicodeScalars.contains { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "'" || $0 == "\"" },
                "the option string has characters the shell would split or quote: \(printable(joined))")
        }
    }

    /// The volume context: a valid source, or INVALID_ARGUMENT naming the key.
    static func checkSource(_ context: [String: String]) -> GlusterVolumeSource? {
        let source: GlusterVolumeSource
        do {
            source = try GlusterVolumeSource(volumeContext: context)
        } catch {
            checkRefusal(error, "GlusterVolumeSource")
            return nil
        }
        expect(!source.hosts.isEmpty && source.hosts.count <= 64, "\(source.hosts.count) hosts accepted")
        for host in source.hosts {
            expect(
                GlusterVolumeSource.isHostName(host) || GlusterVolumeSource.isIPv4Address(host),
                "host '\(printable(host))' is neither a host name nor IPv4")
            expect(
                host.utf8.allSatisfy { isASCIIAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") },
                "host '\(printable(host))' has characters a mount command line must not get")
        }
        expect(
            Set(source.hosts.map { $0.lowercased() }).count == source.hosts.count, "duplicate hosts \(source.hosts)")
        expect(
            !source.volume.isEmpty && !source.volume.hasPrefix("-") && source.volume != "." && source.volume != "..",
            "volume name '\(printable(source.volume))' accepted")
        for node in ["node-1", "worker-7.example.com", ""] {
            let primary = source.primary(nodeID: node)
            let backups = source.backupHosts(nodeID: node)
            expect(source.hosts.contains(primary), "primary \(primary) is not one of the hosts")
            expect(primary == source.primary(nodeID: node), "primary is not deterministic")
            expect(
                !backups.contains { $0.lowercased() == primary.lowercased() }, "backups \(backups) list the primary")
            expect(backups.count == source.hosts.count - 1, "backups \(backups) lost a host of \(source.hosts)")
            let mountSource = source.mountSource(nodeID: node)
            expect(mountSource == "\(primary):/\(source.volume)", "mount source '\(mountSource)'")
            expect(source.matches(mountSource: mountSource), "the volume does not match its own mount source")
        }
        if context["glusterHosts"] == nil { expect(source.firstHostIsPrimary, "a static server list lost its primary") }
        return source
    }
}
