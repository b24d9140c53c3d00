import Migration
import Testing

/// `glusterfs-csi migrate` on the fixtures, compared with golden outputs exactly: the manifests
/// (standard output), the plan (standard error) and the exit status.
@Suite struct GoldenTests {
    @Test func inTreeClusterMigratesEveryClaim() {
        let outcome = migrate(["in-tree.json"])
        #expect(outcome.status == MigrateOutcome.migratedStatus)
        expectGolden(outcome.standardOutput, "in-tree.yaml")
        expectGolden(outcome.standardError, "in-tree.plan.txt")
    }

    @Test func refusalsAreExplainedAndTheRestMigrates() {
        let outcome = migrate(["refusals.json"])
        #expect(outcome.status == MigrateOutcome.refusedStatus)
        expectGolden(outcome.standardOutput, "refusals.yaml")
        expectGolden(outcome.standardError, "refusals.plan.txt")
    }

    /// --check: the same plan, nothing on standard output, the same exit status.
    @Test(arguments: ["in-tree", "refusals"])
    func checkOnlyPlans(fixture: String) {
        var options = MigrationOptions()
        options.checkOnly = true
        let checked = migrate(["\(fixture).json"], options)
        let full = migrate(["\(fixture).json"])
        #expect(checked.standardOutput.isEmpty)
        #expect(checked.status == full.status)
        let firstLine = full.standardError.prefix { $0 != "\n" }
        #expect(firstLine.hasSuffix("."))
        let expected =
            firstLine.dropLast() + " (--check: no manifests written)." + full.standardError.dropFirst(firstLine.count)
        #expect(checked.standardError == String(expected))
    }

    /// The walkthrough's claim comes out as docs/migration.md step 6 writes it by hand (scripts/check-deploy
    /// compares the two documents; this pins the values).
    @Test func walkthroughClaimHasTheDocumentedValues() throws {
        let claim = try #require(try migration(["in-tree.json"]).claims.first { $0.claim.name == "legacy-data" })
        #expect(claim.volumeName == "pvc-4d7e0f6c-1c2b-4b7e-9a53-2f1d6e0c8a11")
        #expect(claim.volumeHandle == "v1:5c6f2a3b9d0e4f1a8b7c6d5e4f3a2b1c:http://heketi.example.com:8080")
        #expect(
            claim.volumeContext == [
                "glusterVolume": "vol_5c6f2a3b9d0e4f1a8b7c6d5e4f3a2b1c",
                "glusterHosts": "192.0.2.11,192.0.2.12,192.0.2.13",
                "gid": "40000",
                "heketiVolumeID": "5c6f2a3b9d0e4f1a8b7c6d5e4f3a2b1c",
                "heketiClusterID": "630372ccdc720a92c681fb928f27b53f",
            ])
        #expect(claim.capacity == "10Gi" && claim.claimRequest == "10Gi")
        #expect(claim.oldReclaimPolicy == "Delete")
        #expect(claim.classState == .inTree)
    }

    @Test func nothingToMigrate() {
        let outcome = MigrateOutcome(
            inputs: [
                MigrationInput(name: "empty.json", bytes: Array(#"{"apiVersion":"v1","kind":"List","items":[]}"#.utf8))
            ],
            inputNames: ["empty.json"], options: MigrationOptions())
        #expect(outcome.status == MigrateOutcome.migratedStatus)
        #expect(outcome.standardOutput.isEmpty)
        #expect(
            outcome.standardError
                == "glusterfs-csi migrate: no in-tree GlusterFS PVs (spec.glusterfs) in the input; nothing to do.\n")
    }
}
