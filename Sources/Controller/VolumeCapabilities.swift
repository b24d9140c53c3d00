import CSICore
import CSIProto

/// Which volume capabilities a GlusterFS volume can honour: mounted file systems only (there is no
/// block device), fs_type empty or `glusterfs`, and every access mode — GlusterFS is a shared file
/// system, and read-only modes are enforced by the node with a read-only mount.
enum VolumeCapabilities {
    static func check(_ capabilities: [Csi_V1_VolumeCapability]) throws(CSIError) {
        guard !capabilities.isEmpty else { throw CSIError.missingField("volume_capabilities") }
        for capability in capabilities {
            try check(capability)
        }
    }

    static func check(_ capability: Csi_V1_VolumeCapability) throws(CSIError) {
        switch capability.accessType {
        case .mount(let mount):
            guard mount.fsType.isEmpty || mount.fsType == "glusterfs" else {
                throw CSIError(
                    .invalidArgument,
                    "fs_type '\(mount.fsType)' is not supported: GlusterFS volumes are mounted as glusterfs; "
                        + "leave fsType empty or set it to glusterfs")
            }
        case .block:
            throw CSIError(
                .invalidArgument,
                "block access is not supported: GlusterFS volumes are file systems; use volumeMode: Filesystem")
        case nil:
            throw CSIError(.invalidArgument, "volume_capability.access_type is required (mount)")
        }
        switch capability.accessMode.mode {
        case .unknown, .UNRECOGNIZED:
            throw CSIError(
                .invalidArgument,
                "volume_capability.access_mode is missing or unknown; use one of the CSI access modes "
                    + "(e.g. MULTI_NODE_MULTI_WRITER for ReadWriteMany)")
        default:
            break
        }
    }
}
