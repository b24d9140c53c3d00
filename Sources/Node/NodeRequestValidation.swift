import CSICore
import CSIProto

/// Checks of the fields every Node RPC carries. Each failure is INVALID_ARGUMENT naming the field.
enum NodeRequestValidation {
    /// CSI's general size limit for string fields.
    static let maxIDLength = 128

    /// A volume ID: required, at most 128 bytes, printable ASCII without spaces (it appears in
    /// log lines, lock keys and error messages).
    static func volumeID(_ id: String) throws(CSIError) -> String {
        guard !id.isEmpty else { throw .missingField("volume_id") }
        guard id.utf8.count <= maxIDLength, id.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw .invalidArgument(
                "volume_id must be at most \(maxIDLength) bytes of printable ASCII without spaces, got '\(printable(id))'"
            )
        }
        // A snapshot is a Heketi volume too, but mounting it would let pods write into a backup.
        if SnapshotID(parsing: id) != nil {
            throw .invalidArgument(
                "volume_id '\(id)' is a snapshot ID, not a volume; restore the snapshot into a new volume "
                    + "(a PersistentVolumeClaim whose dataSource is the VolumeSnapshot) and use that")
        }
        return id
    }

    /// A path: required, absolute and clean — no empty, `.` or `..` components, no trailing slash,
    /// no control characters — so that what we mount, compare with the mount table and remove is
    /// exactly the path the CO means.
    static func path(_ path: String, field: String) throws(CSIError) -> String {
        guard !path.isEmpty else { throw .missingField(field) }
        let components = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        let clean =
            path.hasPrefix("/") && path != "/" && path.utf8.count <= 4095
            && components.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
            && path.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7f }
        guard clean else {
            throw .invalidArgument(
                "\(field) must be an absolute, clean path (no '.', '..', '//' or trailing '/'), got '\(printable(path))'"
            )
        }
        return path
    }

    /// A path that `mount.glusterfs` gets as its mount point. That script expands it unquoted, so
    /// spaces and glob characters would split or rewrite it; kubelet never produces them.
    static func mountHelperPath(_ path: String, field: String) throws(CSIError) -> String {
        let path = try self.path(path, field: field)
        let unsafe: Set<Character> = [
            " ", "\t", "*", "?", "[", "]", "\\", "$", "`", "\"", "'", ",", ";", "&", "|", "<", ">",
        ]
        if path.contains(where: { unsafe.contains($0) }) {
            throw .invalidArgument(
                "\(field) must not contain spaces, quotes or shell characters (mount.glusterfs cannot mount on it), "
                    + "got '\(printable(path))'")
        }
        return path
    }

    /// A validated file-system volume capability.
    struct Capability {
        typealias Mode = Csi_V1_VolumeCapability.AccessMode.Mode
        var mode: Mode
        var mountFlags: [String]

        /// The mode's name as the CSI spec writes it, for messages.
        var modeName: String {
            switch mode {
            case .singleNodeWriter: "SINGLE_NODE_WRITER"
            case .singleNodeReaderOnly: "SINGLE_NODE_READER_ONLY"
            case .multiNodeReaderOnly: "MULTI_NODE_READER_ONLY"
            case .multiNodeSingleWriter: "MULTI_NODE_SINGLE_WRITER"
            case .multiNodeMultiWriter: "MULTI_NODE_MULTI_WRITER"
            case .singleNodeSingleWriter: "SINGLE_NODE_SINGLE_WRITER"
            case .singleNodeMultiWriter: "SINGLE_NODE_MULTI_WRITER"
            case .unknown, .UNRECOGNIZED: "access mode \(mode.rawValue)"
            }
        }

        /// Read-only access modes: the mount is made with `ro`.
        var isReadOnlyMode: Bool { mode == .singleNodeReaderOnly || mode == .multiNodeReaderOnly }

        /// Modes that allow one publication on the node at a time. SINGLE_NODE_MULTI_WRITER is the
        /// one single-node mode made for several targets, so it is not among them.
        var allowsOnePublication: Bool {
            mode == .singleNodeWriter || mode == .singleNodeReaderOnly || mode == .singleNodeSingleWriter
        }
    }

    /// Checks `volume_capability`: present, mount access (GlusterFS is not a block device), an
    /// empty or `glusterfs` fs_type, a known access mode, no volume_mount_group.
    static func capability(_ request: Csi_V1_VolumeCapability, present: Bool) throws(CSIError) -> Capability {
        guard present else { throw .missingField("volume_capability") }
        let mount: Csi_V1_VolumeCapability.MountVolume
        switch request.accessType {
        case .mount(let value)?:
            mount = value
        case .block?:
            throw .invalidArgument(
                "volume_capability: block access is not supported, GlusterFS volumes are file systems; "
                    + "use volumeMode: Filesystem")
        case nil:
            throw .invalidArgument("volume_capability: access_type is required and must be mount")
        }
        guard mount.fsType.isEmpty || mount.fsType == "glusterfs" else {
            throw .invalidArgument(
                "volume_capability: fs_type must be empty or 'glusterfs', got '\(printable(mount.fsType))'")
        }
        guard mount.volumeMountGroup.isEmpty else {
            throw .invalidArgument(
                "volume_capability: volume_mount_group is not supported by this driver (it does not advertise "
                    + "VOLUME_MOUNT_GROUP); the volume's group comes from its GID")
        }
        guard request.hasAccessMode else { throw .missingField("volume_capability.access_mode") }
        switch request.accessMode.mode {
        case .singleNodeWriter, .singleNodeReaderOnly, .multiNodeReaderOnly, .multiNodeSingleWriter,
            .multiNodeMultiWriter, .singleNodeSingleWriter, .singleNodeMultiWriter:
            return Capability(mode: request.accessMode.mode, mountFlags: mount.mountFlags)
        case .unknown, .UNRECOGNIZED:
            throw .invalidArgument(
                "volume_capability: access_mode \(request.accessMode.mode.rawValue) is not a known access mode")
        }
    }
}
