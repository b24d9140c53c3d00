import CSICore

/// Everything one claim's migration needs, checked: the in-tree PV's Heketi volume as a
/// glusterfs-csi PV of the same name, and the claim as it was, bound to it.
public struct ClaimMigration: Sendable, Equatable {
    /// Where the Heketi URL in the volume ID came from.
    public enum URLSource: Sendable, Equatable {
        /// The `resturl` of the PV's StorageClass.
        case storageClass
        /// `--resturl`, because the class is not in the input.
        case optionClassMissing
        /// `--resturl`, because the class has no `resturl`.
        case optionClassWithoutURL
    }

    /// What the PV's StorageClass is now.
    public enum ClassState: Sendable, Equatable {
        /// Still the in-tree `kubernetes.io/glusterfs` class: replace it (docs/migration.md step 1).
        case inTree
        /// Already a class of this driver.
        case csi
        /// A class of another provisioner.
        case other(String)
        /// Not in the input.
        case missing
    }

    /// The claim, recreated under the same name.
    public var claim: ObjectKey
    /// The PV's name, kept by the glusterfs-csi PV.
    public var volumeName: String
    /// Heketi's ID of the volume (the PV's `gluster.kubernetes.io/heketi-volume-id`).
    public var heketiVolumeID: String
    /// The Heketi URL recorded in the volume ID.
    public var heketiURL: String
    /// Where `heketiURL` came from.
    public var urlSource: URLSource
    /// The Heketi cluster, when the class names exactly one.
    public var heketiClusterID: String?
    /// The Gluster volume name (`spec.glusterfs.path`).
    public var glusterVolume: String
    /// The storage hosts, from the Endpoints object's addresses.
    public var hosts: [String]
    /// The Endpoints object the hosts came from.
    public var endpoints: ObjectKey
    /// The in-tree PVs (this one included) that use the same Endpoints object, sorted.
    public var endpointsUsers: [String]
    /// The volume's GID (`pv.beta.kubernetes.io/gid`), if it has one.
    public var gid: UInt32?
    /// `spec.capacity.storage`.
    public var capacity: String
    /// The PV's access modes.
    public var accessModes: [String]
    /// The PV's class, which the claim gets too (binding needs them equal).
    public var storageClassName: String
    /// What the class is now.
    public var classState: ClassState
    /// The PV's mount options the driver accepts.
    public var mountOptions: [String]
    /// The PV's mount options left out because the driver sets them itself.
    public var droppedMountOptions: [String]
    /// The in-tree PV's reclaim policy (the glusterfs-csi PV is `Retain`).
    public var oldReclaimPolicy: String
    /// `spec.glusterfs.readOnly`.
    public var readOnly: Bool
    /// The claim's labels, kept.
    public var claimLabels: [String: String]
    /// The claim's own annotations, kept.
    public var claimAnnotations: [String: String]
    /// The annotations of the old binding, left out, sorted.
    public var droppedClaimAnnotations: [String]
    /// The claim's `spec.storageClassName` when it differs from the PV's; empty when it had none
    /// (old claims named their class in annotation `volume.beta.kubernetes.io/storage-class`).
    public var oldClaimStorageClassName: String?
    /// The claim's access modes.
    public var claimAccessModes: [String]
    /// The claim's storage request.
    public var claimRequest: String

    /// The volume context a provisioned volume of this driver carries
    /// (`VolumeContextKey`, written by the controller in `ControllerService.csiVolume`).
    public var volumeContext: [String: String] {
        var context = [
            VolumeContextKey.glusterVolume: glusterVolume,
            VolumeContextKey.glusterHosts: hosts.joined(separator: ","),
            VolumeContextKey.heketiVolumeID: heketiVolumeID,
        ]
        if let heketiClusterID { context[VolumeContextKey.heketiClusterID] = heketiClusterID }
        if let gid { context[VolumeContextKey.gid] = String(gid) }
        return context
    }

    /// The CSI volume handle, `v1:<Heketi volume ID>:<Heketi URL>` (docs/volume-id.md).
    public var volumeHandle: String { "v1:\(heketiVolumeID):\(heketiURL)" }
}

/// An in-tree PV that is not migrated, and why.
public struct Refusal: Sendable, Equatable {
    /// The PV's name.
    public var volumeName: String
    /// Its claim, when the PV names one.
    public var claim: ObjectKey?
    /// Every reason, each saying what to do.
    public var reasons: [String]
}
