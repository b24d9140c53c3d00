import Migration
import Testing

/// Every reason to refuse a PV, one fixture PV each (Fixtures/migrate/refusals.json), and what
/// the options change about them.
@Suite struct RefusalTests {
    static let reasons: [(volume: String, reason: String)] = [
        ("pv-static", "no annotation gluster.kubernetes.io/heketi-volume-id"),
        ("pv-bad-heketi-id", "is '5C6F2A3B9D0E4F1A8B7C6D5E4F3A2B1C', not a Heketi volume ID"),
        ("pv-released", "the PV is Released, not Bound"),
        ("pv-available", "the PV is Available, not Bound"),
        ("pv-claim-missing", "claim default/missing is not in the input"),
        ("pv-claim-elsewhere", "claim default/elsewhere is bound to PV pv-something-else (spec.volumeName)"),
        ("pv-claim-recreated", "the claim was deleted and created again since"),
        ("pv-claim-lost", "claim default/lost is Lost, not Bound"),
        (
            "pv-no-endpoints",
            "Endpoints default/glusterfs-dynamic-missing (spec.glusterfs.endpoints) is not in the input"
        ),
        (
            "pv-empty-endpoints",
            "Endpoints default/glusterfs-dynamic-empty (spec.glusterfs.endpoints) lists no addresses"
        ),
        ("pv-ipv6-endpoints", "IPv6 literals cannot be passed through"),
        ("pv-class-gone", "StorageClass glusterfs-gone is not in the input, so its resturl is unknown"),
        ("pv-class-without-url", "StorageClass glusterfs-nourl has no resturl: give the Heketi URL with --resturl"),
        ("pv-url-too-long", "StorageClass glusterfs-longurl: parameter resturl: 'http://heketi-xx"),
        ("pv-bad-url", "StorageClass glusterfs-badurl: parameter resturl: expected an http:// or https:// URL"),
        ("pv-block", "spec.volumeMode is Block"),
        ("pv-expansion-pending", "requests 20Gi, more than the PV's capacity 10Gi"),
        ("pv-mount-option", "spec.mountOptions: mount_flags: 'transport' is not allowed"),
        ("pv-bad-gid", "annotation pv.beta.kubernetes.io/gid is 'forty', not a group ID"),
        ("pv-twin-a", "is also the volume of in-tree PV pv-twin-b"),
        ("pv-twin-b", "is also the volume of in-tree PV pv-twin-a"),
        ("pv-migrated-before", "already has the glusterfs.csi.heketi.io PV pv-csi-copy"),
        ("pv-bad-volume-name", "the node would refuse the volume context: volume_context: 'glusterVolume'"),
    ]

    @Test(arguments: reasons)
    func refused(volume: String, reason: String) throws {
        let migration = try migration(["refusals.json"])
        let refusal = try #require(migration.refusals.first { $0.volumeName == volume })
        #expect(refusal.reasons.contains { $0.contains(reason) }, "\(refusal.reasons)")
        #expect(!migration.claims.contains { $0.volumeName == volume })
        #expect(migration.manifests.contains("name: \(volume)\n") == false)
    }

    @Test func everyPVOfTheFixtureIsCoveredAndOnlyTheGoodOneMigrates() throws {
        let migration = try migration(["refusals.json"])
        #expect(migration.claims.map(\.volumeName) == ["pv-good"])
        #expect(Set(migration.refusals.map(\.volumeName)) == Set(Self.reasons.map(\.volume)))
        #expect(migration.inTreeCount == Self.reasons.count + 1)
        #expect(migration.hasRefusals)
        // A bad resturl in the class is one reason, not also "no resturl".
        let badURL = try #require(migration.refusals.first { $0.volumeName == "pv-bad-url" })
        #expect(badURL.reasons.count == 1)
    }

    /// A class that is gone, or has no resturl, needs --resturl; with it those PVs migrate and
    /// the plan says where the URL came from (and passes the flag on in step 6).
    @Test func restURLOptionStandsInForTheClass() throws {
        var options = MigrationOptions()
        options.restURL = try MigrationOptions.restURL("http://heketi.storage:8080/")
        let migration = try migration(["refusals.json"], options)
        let gone = try #require(migration.claims.first { $0.volumeName == "pv-class-gone" })
        #expect(gone.volumeHandle == "v1:0000000000000000000000000000000c:http://heketi.storage:8080")
        #expect(gone.urlSource == .optionClassMissing)
        #expect(gone.classState == .missing)
        let noURL = try #require(migration.claims.first { $0.volumeName == "pv-class-without-url" })
        #expect(noURL.urlSource == .optionClassWithoutURL)
        #expect(noURL.classState == .csi)
        // The class's own URL still wins where it has one.
        let good = try #require(migration.claims.first { $0.volumeName == "pv-good" })
        #expect(good.heketiURL == "http://heketi.example.com:8080")
        let plan = migration.plan(inputNames: ["refusals.json"])
        #expect(plan.contains("(--resturl: StorageClass glusterfs-gone is not in the input)"))
        #expect(
            plan.contains(
                "6. glusterfs-csi migrate --claim default/class-gone --resturl http://heketi.storage:8080 < refusals.json"
            ))
        #expect(plan.contains("glusterfs-gone (not in the input; claims default/class-gone)"))
        #expect(!migration.refusals.contains { $0.volumeName == "pv-class-gone" })
    }

    @Test(arguments: [
        ("heketi:8080", "--resturl: parameter resturl: expected an http:// or https:// URL"),
        ("https:///", "--resturl: parameter resturl: expected an http:// or https:// URL"),
        ("", "--resturl: parameter resturl: expected an http:// or https:// URL"),
    ])
    func badRestURLOption(value: String, message: String) {
        #expect(throws: MigrationInputError.self) { try MigrationOptions.restURL(value) }
        do {
            _ = try MigrationOptions.restURL(value)
        } catch {
            #expect(error.message.hasPrefix(message), "\(error.message)")
        }
    }

    /// The exit status says whether anything was refused; an unreadable input writes nothing.
    @Test func exitStatus() {
        #expect(migrate(["in-tree.json"]).status == 0)
        #expect(migrate(["refusals.json"]).status == 1)
        let broken = MigrateOutcome(
            inputs: [MigrationInput(name: "broken.json", bytes: Array("{\"kind\": ".utf8))],
            inputNames: ["broken.json"],
            options: MigrationOptions())
        #expect(broken.status == 2)
        #expect(broken.standardOutput.isEmpty)
        #expect(broken.standardError == "glusterfs-csi migrate: broken.json: not JSON: unexpected end at byte 9\n")
    }
}
