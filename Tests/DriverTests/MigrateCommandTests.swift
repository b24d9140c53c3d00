import ArgumentParser
import Migration
import Testing

@testable import glusterfs_csi

/// `migrate` is a subcommand: the driver still starts as before without one, with the same flags.
@Suite struct MigrateCommandTests {
    @Test func withoutASubcommandTheDriverRuns() throws {
        #expect(try GlusterFSCSI.parseAsRoot([]) is GlusterFSCSI)
        let command = try GlusterFSCSI.parseAsRoot(["--endpoint", "/tmp/x.sock", "--mode", "node"])
        let driver = try #require(command as? GlusterFSCSI)
        #expect(driver.endpoint == "/tmp/x.sock" && driver.mode == "node")
    }

    @Test func rootHelpKeepsEveryFlagAndNamesTheSubcommand() {
        let help = GlusterFSCSI.helpMessage(columns: 200)
        for flag in [
            "--endpoint", "--mode", "--node-id", "--driver-name", "--log-level", "--log-format", "--max-message-size",
            "--shutdown-grace", "--max-controller-calls", "--max-node-calls", "--heketi-url", "--heketi-user",
            "--heketi-key-file", "--heketi-ca-file", "--heketi-max-operations", "--heketi-operation-timeout",
            "--mount-log-dir", "--mount-placement", "--cgroup-root", "--systemd-socket", "--kubelet-dir",
        ] {
            #expect(help.contains("  \(flag) "), "\(flag)")
        }
        // The migrate flags are its own, not the driver's.
        #expect(!help.contains("--resturl") && !help.contains("--secret-name"))
        let subcommands = help.split(separator: "SUBCOMMANDS:", maxSplits: 1)
        #expect(subcommands.count == 2 && subcommands[1].contains("  migrate "))
    }

    @Test func migrateParsesItsOptions() throws {
        let command = try GlusterFSCSI.parseAsRoot([
            "migrate", "pv.json", "pvc.json", "--claim", "default/legacy-data", "--claim", "team-a/reports",
            "--namespace", "default", "-l", "app=reports", "--resturl", "http://heketi:8080/", "--secret-name",
            "heketi-admin", "--secret-namespace", "storage", "--driver-name", "gluster.example.com", "--check",
        ])
        let migrate = try #require(command as? MigrateCommand)
        #expect(migrate.inputs == ["pv.json", "pvc.json"])
        let options = try migrate.options()
        #expect(options.selector.claims.map(\.description).sorted() == ["default/legacy-data", "team-a/reports"])
        #expect(options.selector.namespaces == ["default"])
        #expect(options.selector.labels?.description == "app=reports")
        #expect(options.restURL == "http://heketi:8080")
        #expect(options.secretName == "heketi-admin" && options.secretNamespace == "storage")
        #expect(options.driverName == "gluster.example.com")
        #expect(options.checkOnly)
    }

    @Test func migrateDefaults() throws {
        let migrate = try #require(try GlusterFSCSI.parseAsRoot(["migrate"]) as? MigrateCommand)
        #expect(try migrate.options() == MigrationOptions())
    }

    /// --driver-name is the driver's own flag, given before or after `migrate`.
    @Test func driverNameIsTheDrivers() throws {
        for arguments in [
            ["--driver-name", "gluster.example.com", "migrate"], ["migrate", "--driver-name", "gluster.example.com"],
        ] {
            let migrate = try #require(try GlusterFSCSI.parseAsRoot(arguments) as? MigrateCommand)
            #expect(try migrate.options().driverName == "gluster.example.com")
        }
    }

    @Test(arguments: [
        (["migrate", "--claim", "legacy-data"], "--claim: expected namespace/name, got 'legacy-data'"),
        (["migrate", "--namespace", "Team_A"], "--namespace: 'Team_A' is not a namespace"),
        (["migrate", "-l", "app in (a,b)"], "selector 'app in (a,b)': cannot read 'app in (a'"),
        (["migrate", "--resturl", "heketi:8080"], "--resturl: parameter resturl: expected an http:// or https:// URL"),
        (["migrate", "--secret-name", "Heketi"], "--secret-name: 'Heketi' is not a Secret name"),
        (["migrate", "--secret-namespace", "Storage"], "--secret-namespace: 'Storage' is not a namespace"),
        (["migrate", "--driver-name", "bad_"], "driver name 'bad_' is invalid"),
        (["migrate", "-", "pv.json"], "'-' (standard input) cannot be combined with files"),
    ])
    func migrateRefusesBadOptions(arguments: [String], message: String) {
        do {
            _ = try GlusterFSCSI.parseAsRoot(arguments)
            Issue.record("parsed \(arguments)")
        } catch {
            #expect(GlusterFSCSI.message(for: error).hasPrefix(message), "\(GlusterFSCSI.message(for: error))")
            #expect(GlusterFSCSI.exitCode(for: error) == .validationFailure)
        }
    }
}
