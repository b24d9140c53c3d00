/// What `glusterfs-csi migrate` writes and the status it exits with, from its inputs: the whole
/// command but for reading files and writing streams, so tests run it as it is.
public struct MigrateOutcome: Sendable, Equatable {
    /// Every selected claim migrated (or nothing to migrate).
    public static let migratedStatus: Int32 = 0
    /// Something selected was refused (a reason per PV on standard error); the rest is written.
    public static let refusedStatus: Int32 = 1
    /// An input could not be read; nothing is written.
    public static let inputErrorStatus: Int32 = 2

    /// The manifests (empty with `--check`).
    public var standardOutput: String
    /// The plan, or why the input could not be read.
    public var standardError: String
    /// `migratedStatus`, `refusedStatus` or `inputErrorStatus`.
    public var status: Int32

    /// Runs the migration of `inputs`; `inputNames` are the files as given (empty: standard input).
    public init(inputs: [MigrationInput], inputNames: [String], options: MigrationOptions) {
        do {
            let migration = try Migration(inputs: inputs, options: options)
            self.init(
                standardOutput: options.checkOnly ? "" : migration.manifests,
                standardError: migration.plan(inputNames: inputNames),
                status: migration.hasRefusals ? Self.refusedStatus : Self.migratedStatus)
        } catch {
            self.init(inputError: error)
        }
    }

    private init(standardOutput: String, standardError: String, status: Int32) {
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.status = status
    }

    /// The outcome of an input that could not be read.
    public init(inputError: MigrationInputError) {
        self.init(
            standardOutput: "", standardError: "glusterfs-csi migrate: \(inputError.message)\n",
            status: Self.inputErrorStatus)
    }
}
