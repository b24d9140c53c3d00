import ArgumentParser
import Migration

#if canImport(Glibc)
import Glibc
#endif

/// `glusterfs-csi migrate`: this driver's manifests for the PVs of the removed in-tree
/// `kubernetes.io/glusterfs` plugin. It only reads and writes; applying is the user's, claim by
/// claim, as the plan it prints says. The work is in the Migration target; this is its I/O.
struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract:
            "Writes glusterfs-csi PVs and claims for the PVs of the removed in-tree kubernetes.io/glusterfs plugin.",
        discussion: """
            Reads a Kubernetes List in JSON, as `kubectl get pv,pvc,endpoints,storageclass -A -o json` writes \
            it, from the files given or standard input. For every PV with spec.glusterfs whose claim is \
            selected, writes to standard output what docs/migration.md builds by hand: the glusterfs-csi PV of \
            the same Heketi volume (same name, reclaim policy Retain) and the claim recreated, bound to it, as \
            YAML for `kubectl apply -f -`. Writes to standard error the plan: claim by claim, what changes and \
            the commands of each step in order, and every PV it refuses, with why.

            Exit status: 0 when every selected claim is migrated, 1 when some PVs are refused (the others are \
            still written), 2 when the input cannot be read (nothing is written).

            The PVs name the CSI driver of the driver's own --driver-name (GLUSTERFS_CSI_DRIVER_NAME), \
            glusterfs.csi.heketi.io unless you changed it.
            """)

    @Argument(
        help: ArgumentHelp(
            "JSON files to read, as kubectl writes them. (default: standard input, also '-')", valueName: "file"))
    var inputs: [String] = []

    @Option(name: .customLong("namespace"), help: "Only claims in this namespace; repeatable.")
    var namespaces: [String] = []

    @Option(
        name: .customLong("claim"),
        help: ArgumentHelp("Only this claim, as namespace/name; repeatable.", valueName: "namespace/name"))
    var claims: [String] = []

    @Option(
        name: [.customShort("l"), .long],
        help: ArgumentHelp(
            "Only claims with these labels: key=value, key!=value, key or !key, comma-separated.",
            valueName: "labels"))
    var selector: String?

    @Option(
        name: .customLong("resturl"),
        help: ArgumentHelp(
            "The Heketi URL for PVs whose StorageClass is not in the input or has no resturl. (default: none)",
            valueName: "url"))
    var restURL: String?

    @Option(
        help: "The Heketi Secret the PVs name for expansion. (default: \(MigrationOptions.defaultSecretName))")
    var secretName: String?

    @Option(help: "The namespace of that Secret. (default: \(MigrationOptions.defaultSecretNamespace))")
    var secretNamespace: String?

    /// The driver's own flags: `--driver-name` (or GLUSTERFS_CSI_DRIVER_NAME) is the driver the PVs
    /// name, before or after `migrate`, as for the driver itself.
    @ParentCommand var driver: GlusterFSCSI

    @Flag(help: "Only check the input and print the plan; write no manifests.")
    var check = false

    /// The options, validated; the errors name the flag.
    func options() throws -> MigrationOptions {
        var options = MigrationOptions()
        do {
            for namespace in namespaces {
                try MigrationOptions.validateNamespace(namespace, option: "--namespace")
                options.selector.namespaces.insert(namespace)
            }
            for claim in claims {
                guard let key = ObjectKey(parsing: claim) else {
                    throw MigrationInputError("--claim: expected namespace/name, got '\(claim)'")
                }
                options.selector.claims.insert(key)
            }
            if let selector { options.selector.labels = try LabelSelector(parsing: selector) }
            if let restURL { options.restURL = try MigrationOptions.restURL(restURL) }
            if let secretName {
                try MigrationOptions.validateSecretName(secretName)
                options.secretName = secretName
            }
            if let secretNamespace {
                try MigrationOptions.validateNamespace(secretNamespace, option: "--secret-namespace")
                options.secretNamespace = secretNamespace
            }
        } catch {
            throw ValidationError("\(error)")
        }
        options.driverName = try driver.resolvedConfiguration().driverName
        if inputs.contains("-") && inputs.count > 1 {
            throw ValidationError("'-' (standard input) cannot be combined with files")
        }
        options.checkOnly = check
        return options
    }

    func validate() throws {
        _ = try options()
    }

    func run() throws {
        let options = try options()
        let names = inputs == ["-"] ? [] : inputs
        let outcome: MigrateOutcome
        do {
            let read =
                names.isEmpty
                ? [
                    MigrationInput(
                        name: "standard input", bytes: try Self.readAll(STDIN_FILENO, name: "standard input"))
                ]
                : try names.map { name in MigrationInput(name: name, bytes: try Self.readFile(name)) }
            outcome = MigrateOutcome(inputs: read, inputNames: names, options: options)
        } catch let error as MigrationInputError {
            outcome = MigrateOutcome(inputError: error)
        }
        Self.write(outcome.standardOutput, to: STDOUT_FILENO)
        Self.write(outcome.standardError, to: STDERR_FILENO)
        if outcome.status != MigrateOutcome.migratedStatus {
            throw ExitCode(outcome.status)
        }
    }

    private static func readFile(_ path: String) throws(MigrationInputError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw MigrationInputError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        return try readAll(fd, name: path)
    }

    private static func readAll(_ fd: Int32, name: String) throws(MigrationInputError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                bytes += chunk[0..<count]
            } else if count == 0 {
                return bytes
            } else if errno != EINTR {
                throw MigrationInputError("cannot read \(name): \(String(cString: strerror(errno)))")
            }
        }
    }

    private static func write(_ text: String, to fd: Int32) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written > 0 {
                bytes = bytes.dropFirst(written)
            } else if written < 0 && errno == EINTR {
                continue
            } else {
                return
            }
        }
    }
}
