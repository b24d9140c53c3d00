/// How a Heketi volume keeps its data safe.
public enum Durability: Sendable, Equatable, Hashable {
    /// N copies of every file (Heketi allows N ≤ 3).
    case replicate(Int)
    /// Erasure coding with `data` + `redundancy` bricks per set (Heketi allows 2+1, 4+2, 8+3, 8+4).
    case disperse(data: Int, redundancy: Int)
    /// One brick per set, no protection.
    case none
}

/// What to create: the body of `POST /volumes`.
public struct VolumeCreateRequest: Sendable, Equatable {
    public var sizeGiB: Int
    public var name: String
    public var durability: Durability
    /// Group ID for the brick roots; 0 means none.
    public var gid: Int
    /// Cluster IDs to choose from; empty means any.
    public var clusters: [String]
    /// `"option value"` strings passed to gluster verbatim.
    public var glusterVolumeOptions: [String]
    /// Thin-pool factor for snapshots (1...100); nil leaves snapshots off.
    public var snapshotFactor: Double?

    public init(
        sizeGiB: Int, name: String, durability: Durability, gid: Int = 0, clusters: [String] = [],
        glusterVolumeOptions: [String] = [], snapshotFactor: Double? = nil
    ) {
        self.sizeGiB = sizeGiB
        self.name = name
        self.durability = durability
        self.gid = gid
        self.clusters = clusters
        self.glusterVolumeOptions = glusterVolumeOptions
        self.snapshotFactor = snapshotFactor
    }
}

/// A volume as `GET /volumes/{id}` describes it.
public struct HeketiVolume: Sendable, Equatable {
    public var id: String
    public var name: String
    public var sizeGiB: Int
    public var clusterID: String
    /// 0 when the volume has no GID.
    public var gid: Int
    public var durability: Durability
    /// Storage host names of all nodes of the cluster (`mount.glusterfs.hosts`).
    public var hosts: [String]
    /// The options as Heketi echoes them, without its own empty pre/post entries.
    public var glusterVolumeOptions: [String]
    public var snapshotFactor: Double?
    public var brickCount: Int

    public init(
        id: String, name: String, sizeGiB: Int, clusterID: String, gid: Int = 0, durability: Durability = .none,
        hosts: [String] = [], glusterVolumeOptions: [String] = [], snapshotFactor: Double? = nil, brickCount: Int = 0
    ) {
        self.id = id
        self.name = name
        self.sizeGiB = sizeGiB
        self.clusterID = clusterID
        self.gid = gid
        self.durability = durability
        self.hosts = hosts
        self.glusterVolumeOptions = glusterVolumeOptions
        self.snapshotFactor = snapshotFactor
        self.brickCount = brickCount
    }
}

/// `GET /clusters/{id}`.
public struct HeketiCluster: Sendable, Equatable {
    public var id: String
    public var nodeIDs: [String]
    public var volumeIDs: [String]

    public init(id: String, nodeIDs: [String], volumeIDs: [String]) {
        self.id = id
        self.nodeIDs = nodeIDs
        self.volumeIDs = volumeIDs
    }
}

/// `GET /nodes/{id}`, with the device facts capacity needs. Sizes in KiB, as Heketi reports them.
public struct HeketiNode: Sendable, Equatable {
    public struct Device: Sendable, Equatable {
        public var name: String
        public var totalKiB: Int
        public var freeKiB: Int
        public var online: Bool

        public init(name: String, totalKiB: Int, freeKiB: Int, online: Bool) {
            self.name = name
            self.totalKiB = totalKiB
            self.freeKiB = freeKiB
            self.online = online
        }
    }

    public var id: String
    public var clusterID: String
    public var storageHostnames: [String]
    public var online: Bool
    public var devices: [Device]

    public init(id: String, clusterID: String, storageHostnames: [String], online: Bool, devices: [Device]) {
        self.id = id
        self.clusterID = clusterID
        self.storageHostnames = storageHostnames
        self.online = online
        self.devices = devices
    }
}
