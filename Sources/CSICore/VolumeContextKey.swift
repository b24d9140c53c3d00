/// The `volume_context` keys: the contract between the controller, which writes them, and the
/// node, which mounts from them.
///
/// The controller writes `glusterVolume` + `glusterHosts` (+ the informational Heketi keys and
/// `gid`). Admins writing a static PV for an existing Gluster volume can use the minimal pair
/// `volume` + `server` instead. Other keys (e.g. kubelet's `csi.storage.k8s.io/*`) are ignored.
public enum VolumeContextKey {
    /// Gluster volume name, written by the controller.
    public static let glusterVolume = "glusterVolume"
    /// Comma-separated storage hosts, written by the controller; the node picks the primary.
    public static let glusterHosts = "glusterHosts"
    /// The volume's GID (bricks are group-owned by it); validated, informational on the node.
    public static let gid = "gid"
    /// Heketi's volume ID; informational (logged).
    public static let heketiVolumeID = "heketiVolumeID"
    /// Heketi's cluster ID; informational (logged).
    public static let heketiClusterID = "heketiClusterID"
    /// Static PVs: the Gluster volume name.
    public static let volume = "volume"
    /// Static PVs: one host, or a comma-separated list whose first entry is the primary.
    public static let server = "server"
}
