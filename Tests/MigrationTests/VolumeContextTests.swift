import CSICore
import Heketi
import Migration
import Node
import Testing

@testable import Controller

/// A migrated PV carries what a PV the controller provisioned carries, and the node takes it.
@Suite struct VolumeContextTests {
    @Test func sameContextAsTheControllerWrites() throws {
        for claim in try migration(["in-tree.json"]).claims {
            let volume = HeketiVolume(
                id: claim.heketiVolumeID, name: claim.glusterVolume, sizeGiB: 10,
                clusterID: claim.heketiClusterID ?? "", gid: Int(claim.gid ?? 0), hosts: claim.hosts)
            var provisioned = VolumeContextKey.context(for: volume)
            // The controller knows the cluster from Heketi; a migration only when the class names one.
            if claim.heketiClusterID == nil { provisioned[VolumeContextKey.heketiClusterID] = nil }
            #expect(claim.volumeContext == provisioned, "\(claim.claim)")
        }
    }

    @Test func theNodeAcceptsEveryMigratedVolume() throws {
        for claim in try migration(["in-tree.json"]).claims {
            let source = try GlusterVolumeSource(volumeContext: claim.volumeContext)
            #expect(source.volume == claim.glusterVolume)
            #expect(source.hosts == claim.hosts)
            #expect(source.gid == claim.gid)
            #expect(!source.firstHostIsPrimary)
            _ = try GlusterMountOptions(
                mountFlags: claim.mountOptions, readOnlyAccessMode: claim.accessModes == ["ReadOnlyMany"])
        }
    }

    @Test func volumeHandlesParse() throws {
        for claim in try migration(["in-tree.json"]).claims {
            let id = try #require(VolumeID(parsing: claim.volumeHandle))
            #expect(id.heketiID == claim.heketiVolumeID)
            #expect(id.heketiURL == claim.heketiURL)
        }
    }

    /// What the fixture exercises besides the walkthrough claim.
    @Test func inTreeDetails() throws {
        let claims = try migration(["in-tree.json"]).claims
        let reports = try #require(claims.first { $0.claim.name == "reports" })
        // resturl normalized as CreateVolume records it; two cluster IDs: the cluster is unknown.
        #expect(reports.heketiURL == "https://heketi.storage.svc:8443")
        #expect(reports.heketiClusterID == nil)
        #expect(reports.classState == .csi)
        #expect(reports.endpoints.description == "team-a/glusterfs-dynamic-9b1e5a70-3c4d-4e2f-8a6b-7c8d9e0f1a2b")
        #expect(reports.mountOptions == ["log-level=WARNING", "noatime"])
        #expect(reports.droppedMountOptions == ["auto_unmount", "backup-volfile-servers=192.0.2.22:192.0.2.23"])
        #expect(reports.oldReclaimPolicy == "Retain")
        #expect(reports.claimLabels == ["app": "reports", "tier": "batch"])
        #expect(reports.claimAnnotations == ["backup.example.com/schedule": "daily"])
        #expect(reports.oldClaimStorageClassName == "")
        #expect(reports.droppedClaimAnnotations.contains("volume.beta.kubernetes.io/storage-class"))
        #expect(reports.droppedClaimAnnotations.contains("kubectl.kubernetes.io/last-applied-configuration"))
        let cache = try #require(claims.first { $0.claim.name == "cache" })
        // Repeated addresses once, in the Endpoints' order; no GID annotation, no gid attribute.
        #expect(cache.hosts == ["192.0.2.13", "192.0.2.11", "192.0.2.12"])
        #expect(cache.gid == nil && cache.volumeContext[VolumeContextKey.gid] == nil)
        #expect(cache.readOnly)
        #expect(cache.claimRequest == "1536Mi" && cache.capacity == "2Gi")
    }

    /// Secret, driver name: the manifests and the plan's commands follow the options.
    @Test func optionsShapeTheManifests() throws {
        var options = MigrationOptions()
        options.secretName = "heketi-admin"
        options.secretNamespace = "storage"
        options.driverName = "gluster.example.com"
        let outcome = migrate(["in-tree.json"], options)
        #expect(outcome.standardOutput.contains("    driver: gluster.example.com\n"))
        #expect(outcome.standardOutput.contains("      name: heketi-admin\n      namespace: storage\n"))
        #expect(!outcome.standardOutput.contains("heketi-secret"))
        #expect(
            outcome.standardError.contains(
                "6. glusterfs-csi migrate --claim default/legacy-data --secret-name heketi-admin --secret-namespace "
                    + "storage --driver-name gluster.example.com < in-tree.json | kubectl apply -f -"))
        #expect(outcome.standardError.contains("volume.kubernetes.io/provisioner-deletion-secret-name=heketi-admin"))
        // glusterfs-fast is a class of glusterfs.csi.heketi.io, no longer this driver's: to replace.
        #expect(outcome.standardError.contains("  glusterfs-fast (now glusterfs.csi.heketi.io; claims team-a/reports)"))
    }

    @Test func standardInputPlan() {
        let outcome = MigrateOutcome(
            inputs: [Fixture.input("in-tree.json")], inputNames: [], options: MigrationOptions())
        #expect(outcome.standardError.contains("The input came from standard input: save it first"))
        #expect(outcome.standardError.contains("6. glusterfs-csi migrate --claim team-b/cache < in-tree.json |"))
        #expect(outcome.standardOutput == migrate(["in-tree.json"]).standardOutput)
    }

    @Test func shellQuotingOfInputNames() {
        let outcome = MigrateOutcome(
            inputs: [Fixture.input("in-tree.json")], inputNames: ["my cluster's pvs.json"], options: MigrationOptions())
        #expect(outcome.standardError.contains(#"--claim default/legacy-data < 'my cluster'\''s pvs.json' |"#))
    }

    /// Several input files are passed as files (standard input holds one JSON text).
    @Test func severalInputsAreArguments() {
        let outcome = MigrateOutcome(
            inputs: [Fixture.input("in-tree.json")], inputNames: ["pv.json", "pvc.json"], options: MigrationOptions())
        #expect(outcome.standardError.contains("6. glusterfs-csi migrate --claim team-b/cache pv.json pvc.json |"))
    }
}
