import CSIProto
import Glibc
import SwiftProtobuf

/// The binary seed inputs of `csi-requests` and `redaction`: real CSI requests, as the
/// external-provisioner, external-resizer and kubelet send them for this driver, encoded with
/// swift-protobuf. `glusterfs-csi-fuzz --write-seeds fuzz/corpus` (bench/fuzz --write-seeds)
/// writes them; the text corpora of the other targets are committed as they are.
enum Seeds {
    static let kubelet = FuzzFixture.kubeletDirectory
    static let volumeID = "v1:5c6f0d3e2b1a49788e7f6a5b4c3d2e1f:http://heketi.fuzz:8080"
    static let foreignID = "v1:aa3b7b9d2c0e4e3f8f1e5d6c7b8a9f01:https://heketi.storage.svc:8443"
    static let staging = kubelet + "/plugins/kubernetes.io/csi/glusterfs.csi.heketi.io/8d1f5b/globalmount"
    static let target = kubelet + "/pods/0b5a1c9e-2f43-4d8a-9e61-3c7d2b1a0f5e/volumes/kubernetes.io~csi/pvc-1/mount"

    static func write(to directory: String) {
        for path in [directory, directory + "/csi-requests", directory + "/redaction"] {
            guard mkdir(path, 0o755) == 0 || errno == EEXIST else { fatalError("cannot create \(path)") }
        }
        var written = 0
        for (name, method, scenario, request) in requests {
            guard let index = CSIRequestsTarget.methods.firstIndex(where: { $0.name == method }) else {
                fatalError("no method \(method)")
            }
            let bytes: [UInt8] = (try? request.serializedBytes()) ?? []
            save([UInt8(index), scenario.0, scenario.1] + bytes, to: "\(directory)/csi-requests/\(name)")
            let kind = MessageKind.all.firstIndex { $0.name == type(of: request).protoMessageName }!
            save([UInt8(kind)] + bytes, to: "\(directory)/redaction/\(name)")
            written += 1
        }
        print("wrote \(written) seeds each to \(directory)/csi-requests and \(directory)/redaction")
    }

    static func save(_ bytes: [UInt8], to path: String) {
        guard let file = fopen(path, "wb") else { fatalError("cannot write \(path)") }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }

    static func capability(
        _ mode: Csi_V1_VolumeCapability.AccessMode.Mode, flags: [String] = []
    ) -> Csi_V1_VolumeCapability {
        var capability = Csi_V1_VolumeCapability()
        capability.mount.mountFlags = flags
        capability.accessMode.mode = mode
        return capability
    }

    static func range(_ required: Int64, limit: Int64 = 0) -> Csi_V1_CapacityRange {
        var range = Csi_V1_CapacityRange()
        range.requiredBytes = required
        range.limitBytes = limit
        return range
    }

    static let inTreeParameters = [
        "resturl": "http://heketi.fuzz:8080", "restuser": "admin", "volumetype": "replicate:3",
        "gidMin": "40000", "gidMax": "50000", "csi.storage.k8s.io/pvc/name": "data-postgres-0",
        "csi.storage.k8s.io/pvc/namespace": "databases", "csi.storage.k8s.io/pv/name": "pvc-3f1c",
    ]

    static let controllerContext = [
        "glusterVolume": "vol_5c6f0d3e2b1a49788e7f6a5b4c3d2e1f", "glusterHosts": "10.0.0.11,10.0.0.12,10.0.0.13",
        "gid": "40001", "heketiVolumeID": "5c6f0d3e2b1a49788e7f6a5b4c3d2e1f",
        "heketiClusterID": "64f3a5b6c7d8e9f00112233445566778",
        "storage.kubernetes.io/csiProvisionerIdentity": "1700000000000-8081-glusterfs.csi.heketi.io",
    ]

    typealias Seed = (name: String, method: String, scenario: (UInt8, UInt8), request: any Message)

    static var requests: [Seed] {
        var seeds: [Seed] = [
            ("get-plugin-info", "GetPluginInfo", (0, 0), Csi_V1_GetPluginInfoRequest()),
            ("get-plugin-capabilities", "GetPluginCapabilities", (0, 0), Csi_V1_GetPluginCapabilitiesRequest()),
            ("probe", "Probe", (0, 0), Csi_V1_ProbeRequest()),
            (
                "controller-get-capabilities", "ControllerGetCapabilities", (0, 0),
                Csi_V1_ControllerGetCapabilitiesRequest()
            ),
            ("node-get-info", "NodeGetInfo", (0, 0), Csi_V1_NodeGetInfoRequest()),
            ("node-get-capabilities", "NodeGetCapabilities", (0, 0), Csi_V1_NodeGetCapabilitiesRequest()),
        ]

        var create = Csi_V1_CreateVolumeRequest()
        create.name = "pvc-3f1c2b7a-9d4e-4c1b-8a2f-6e5d4c3b2a10"
        create.capacityRange = range(5 << 30)
        create.volumeCapabilities = [capability(.multiNodeMultiWriter)]
        create.parameters = inTreeParameters
        create.secrets = ["key": "My Secret Heketi Key"]
        seeds.append(("create-in-tree-parameters", "CreateVolume", (0, 0), create))

        var disperse = create
        disperse.parameters = [
            "volumetype": "disperse:4:2",
            "clusterid": "64f3a5b6c7d8e9f00112233445566778,c0ffee00000000000000000000000000",
            "volumeoptions": "client.ssl on, server.ssl on", "snapfactor": "1.5", "volumenameprefix": "dept-dev",
            "restauthenabled": "true", "customepnameprefix": "glusterfs-dynamic",
        ]
        disperse.capacityRange = range(1 << 30, limit: 8 << 30)
        seeds.append(("create-disperse-default-heketi", "CreateVolume", (0, 0), disperse))

        var clone = create
        clone.name = "pvc-clone-7e6d5c4b"
        clone.volumeContentSource.volume.volumeID = volumeID
        clone.parameters = ["resturl": "http://heketi.fuzz:8080"]
        seeds.append(("create-clone", "CreateVolume", (0, 0), clone))

        var plainKey = create
        plainKey.parameters = [
            "resturl": "https://heketi.storage.svc:8443/", "restuserkey": "plain-text-key", "secretName": "heketi",
            "secretNamespace": "kube-system",
        ]
        plainKey.secrets = [:]
        seeds.append(("create-restuserkey-other-heketi", "CreateVolume", (1, 0), plainKey))

        var delete = Csi_V1_DeleteVolumeRequest()
        delete.volumeID = volumeID
        delete.secrets = ["key": "My Secret Heketi Key", "user": "admin"]
        seeds.append(("delete", "DeleteVolume", (0, 0), delete))
        var deleteForeign = delete
        deleteForeign.volumeID = foreignID
        seeds.append(("delete-other-heketi-gone", "DeleteVolume", (8, 0), deleteForeign))
        var deleteStatic = delete
        deleteStatic.volumeID = "static-gv0"
        seeds.append(("delete-static-pv", "DeleteVolume", (0, 0), deleteStatic))

        var expand = Csi_V1_ControllerExpandVolumeRequest()
        expand.volumeID = volumeID
        expand.capacityRange = range(10 << 30)
        expand.volumeCapability = capability(.multiNodeMultiWriter)
        expand.secrets = ["key": "My Secret Heketi Key"]
        seeds.append(("expand", "ControllerExpandVolume", (0, 0), expand))

        var validate = Csi_V1_ValidateVolumeCapabilitiesRequest()
        validate.volumeID = volumeID
        validate.volumeCapabilities = [capability(.singleNodeWriter), capability(.multiNodeReaderOnly)]
        validate.parameters = inTreeParameters
        validate.volumeContext = controllerContext
        validate.secrets = ["key": "My Secret Heketi Key"]
        seeds.append(("validate-capabilities", "ValidateVolumeCapabilities", (0, 0), validate))

        var list = Csi_V1_ListVolumesRequest()
        list.maxEntries = 10
        seeds.append(("list-volumes", "ListVolumes", (16, 0), list))
        list.startingToken = "1"
        seeds.append(("list-volumes-next-page", "ListVolumes", (16, 0), list))

        var get = Csi_V1_ControllerGetVolumeRequest()
        get.volumeID = volumeID
        seeds.append(("controller-get-volume", "ControllerGetVolume", (0, 0), get))

        var capacity = Csi_V1_GetCapacityRequest()
        capacity.volumeCapabilities = [capability(.multiNodeMultiWriter)]
        capacity.parameters = ["resturl": "http://heketi.fuzz:8080", "volumetype": "replicate:2"]
        seeds.append(("get-capacity", "GetCapacity", (0, 0), capacity))

        var stage = Csi_V1_NodeStageVolumeRequest()
        stage.volumeID = volumeID
        stage.stagingTargetPath = staging
        stage.volumeCapability = capability(.multiNodeMultiWriter, flags: ["log-level=WARNING", "noatime"])
        stage.volumeContext = controllerContext
        seeds.append(("node-stage", "NodeStageVolume", (4, 0), stage))
        var stageStatic = stage
        stageStatic.volumeID = "static-gv0"
        stageStatic.volumeCapability = capability(.multiNodeReaderOnly, flags: ["ro", "acl"])
        stageStatic.volumeContext = ["server": "gluster1.example.com,gluster2.example.com", "volume": "gv0"]
        seeds.append(("node-stage-static-read-only", "NodeStageVolume", (4 | 64, 0), stageStatic))
        var stageEscape = stage
        stageEscape.stagingTargetPath = kubelet + "/escape/proc"
        stageEscape.volumeCapability = capability(.singleNodeWriter, flags: ["backup-volfile-servers=evil"])
        seeds.append(("node-stage-escaping-path", "NodeStageVolume", (0, 0), stageEscape))

        var unstage = Csi_V1_NodeUnstageVolumeRequest()
        unstage.volumeID = volumeID
        unstage.stagingTargetPath = staging
        seeds.append(("node-unstage", "NodeUnstageVolume", (0, 0), unstage))
        unstage.stagingTargetPath = "/proc"
        seeds.append(("node-unstage-proc", "NodeUnstageVolume", (3, 0), unstage))

        var publish = Csi_V1_NodePublishVolumeRequest()
        publish.volumeID = volumeID
        publish.stagingTargetPath = staging
        publish.targetPath = target
        publish.volumeCapability = capability(.multiNodeMultiWriter)
        publish.volumeContext = controllerContext
        seeds.append(("node-publish", "NodePublishVolume", (4, 0), publish))
        publish.readonly = true
        publish.targetPath = kubelet + "/pods-link/9a8b7c6d/volumes/kubernetes.io~csi/pvc-1/mount"
        seeds.append(("node-publish-read-only-dead-client", "NodePublishVolume", (4 | 16 | 64, 0), publish))

        var unpublish = Csi_V1_NodeUnpublishVolumeRequest()
        unpublish.volumeID = volumeID
        unpublish.targetPath = target
        seeds.append(("node-unpublish", "NodeUnpublishVolume", (0, 0), unpublish))
        unpublish.targetPath = "/proc"
        seeds.append(("node-unpublish-proc", "NodeUnpublishVolume", (48, 0), unpublish))

        var stats = Csi_V1_NodeGetVolumeStatsRequest()
        stats.volumeID = volumeID
        stats.volumePath = target
        stats.stagingTargetPath = staging
        seeds.append(("node-get-volume-stats", "NodeGetVolumeStats", (0, 0), stats))

        var nodeExpand = Csi_V1_NodeExpandVolumeRequest()
        nodeExpand.volumeID = volumeID
        nodeExpand.volumePath = target
        nodeExpand.capacityRange = range(10 << 30)
        nodeExpand.secrets = ["key": "My Secret Heketi Key"]
        seeds.append(("node-expand", "NodeExpandVolume", (0, 0), nodeExpand))

        // As csi-snapshotter sends them (--extra-create-metadata), and restores as the provisioner does.
        let snapshotID = "s1:7d2e9f0a1b3c4d5e6f708192a3b4c5d6:http://heketi.fuzz:8080"
        var snapshot = Csi_V1_CreateSnapshotRequest()
        snapshot.name = "snapshot-5b8f2c1e-9d4a-4e7b-8c3f-1a2b3c4d5e6f"
        snapshot.sourceVolumeID = volumeID
        snapshot.secrets = ["key": "My Secret Heketi Key"]
        snapshot.parameters = [
            "csi.storage.k8s.io/volumesnapshot/name": "nightly", "csi.storage.k8s.io/volumesnapshot/namespace": "db",
            "csi.storage.k8s.io/volumesnapshotcontent/name": "snapcontent-5b8f2c1e",
        ]
        seeds.append(("create-snapshot", "CreateSnapshot", (0, 0), snapshot))
        seeds.append(("create-snapshot-existing", "CreateSnapshot", (16 | 32, 0), snapshot))
        var deleteSnapshot = Csi_V1_DeleteSnapshotRequest()
        deleteSnapshot.snapshotID = snapshotID
        deleteSnapshot.secrets = ["key": "My Secret Heketi Key"]
        seeds.append(("delete-snapshot", "DeleteSnapshot", (32, 0), deleteSnapshot))
        var listSnapshots = Csi_V1_ListSnapshotsRequest()
        listSnapshots.maxEntries = 2
        seeds.append(("list-snapshots", "ListSnapshots", (16 | 32, 0), listSnapshots))
        listSnapshots.sourceVolumeID = volumeID
        seeds.append(("list-snapshots-of-source", "ListSnapshots", (16 | 32, 0), listSnapshots))
        var getSnapshot = Csi_V1_GetSnapshotRequest()
        getSnapshot.snapshotID = snapshotID
        seeds.append(("get-snapshot", "GetSnapshot", (32, 0), getSnapshot))
        var restore = Csi_V1_CreateVolumeRequest()
        restore.name = "pvc-restored"
        restore.capacityRange = range(5 << 30)
        restore.volumeCapabilities = [capability(.multiNodeMultiWriter)]
        restore.parameters = ["resturl": "http://heketi.fuzz:8080"]
        restore.volumeContentSource.snapshot.snapshotID = snapshotID
        seeds.append(("create-from-snapshot", "CreateVolume", (32, 0), restore))
        return seeds
    }
}
