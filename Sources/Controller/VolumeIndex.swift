import Heketi

/// What the controller knows of one Heketi's volumes: name → volume, and the GIDs in use.
///
/// Heketi's `GET /volumes` lists IDs only, so finding a volume by name would cost one request per
/// volume. The index is built once from Heketi (in the background when the controller starts, or
/// by the first create), kept current by the controller's own creates, expansions and deletes,
/// and caught up incrementally (one list request plus one request per volume it has not seen):
///
/// - before a create of an unknown name, only when the last catch-up is older than a maximum age.
///   The controller's own volumes are always in the index, so their GIDs stay unique; the age
///   bounds how long a volume someone else created (heketi-cli, another cluster) can go unseen
///   when a GID is chosen. A name held by a volume the index has not seen is not lost either:
///   Heketi refuses the create ("already in use") and the controller catches up and adopts it.
/// - before every clone, because Heketi does not refuse a clone whose name is taken.
/// - when Heketi says a name is in use.
///
/// So a repeated CreateVolume costs no scan, and a new name costs no list in steady state.
actor VolumeIndex {
    private var byID: [String: HeketiVolume] = [:]
    private var idByName: [String: String] = [:]
    /// GIDs handed out for creates that have not finished yet.
    private var reservedGIDs: Set<Int> = []
    private var catchingUp: Task<Void, any Error>?
    /// When the last successful catch-up listed Heketi's volumes; nil before the first.
    private var listedAt: ContinuousClock.Instant?

    /// The volume with this Heketi name, if the index knows one. Costs no request.
    func volume(named name: String) -> HeketiVolume? {
        idByName[name].flatMap { byID[$0] }
    }

    func volume(id: String) -> HeketiVolume? { byID[id] }

    var count: Int { byID.count }

    /// True once a catch-up has completed.
    var isBuilt: Bool { listedAt != nil }

    /// Catches up unless the last catch-up started less than `maxAge` ago.
    func catchUp(with heketi: any HeketiAPI, ifOlderThan maxAge: Duration) async throws {
        if let listedAt, ContinuousClock.now - listedAt < maxAge { return }
        try await catchUp(with: heketi)
    }

    /// Brings the index up to date with Heketi: fetches volumes it has not seen, drops deleted ones.
    /// Concurrent callers share one catch-up.
    func catchUp(with heketi: any HeketiAPI) async throws {
        if let catchingUp {
            return try await catchingUp.value
        }
        let task = Task { try await self.fetchChanges(from: heketi) }
        catchingUp = task
        defer { catchingUp = nil }
        try await task.value
    }

    private func fetchChanges(from heketi: any HeketiAPI) async throws {
        let started = ContinuousClock.now
        let ids = Set(try await heketi.volumeIDs())
        for id in byID.keys where !ids.contains(id) {
            remove(id: id)
        }
        for id in ids where byID[id] == nil {
            // nil: deleted between the list and the lookup.
            if let volume = try await heketi.volumeIfExists(id: id) {
                record(volume)
            }
        }
        listedAt = started
    }

    func record(_ volume: HeketiVolume) {
        if let old = byID[volume.id], idByName[old.name] == volume.id {
            idByName[old.name] = nil
        }
        byID[volume.id] = volume
        // Heketi does not stop two clones from sharing a name; the first one seen keeps it.
        if idByName[volume.name] == nil {
            idByName[volume.name] = volume.id
        }
    }

    func remove(id: String) {
        guard let volume = byID.removeValue(forKey: id) else { return }
        if idByName[volume.name] == id {
            idByName[volume.name] = byID.values.first { $0.name == volume.name }?.id
        }
    }

    /// The lowest GID in `range` that no known volume uses and no pending create holds, reserved
    /// until `release(gid:)`; nil when the range is exhausted.
    func reserveGID(in range: ClosedRange<Int>) -> Int? {
        let used = Set(byID.values.map(\.gid)).union(reservedGIDs)
        // Heketi accepts at most 2147483646; a range entirely above that has no usable GID (clamping
        // it would hand out a GID outside the StorageClass's range).
        let highest = min(range.upperBound, 2_147_483_646)
        guard range.lowerBound <= highest,
            let gid = (range.lowerBound...highest).first(where: { !used.contains($0) })
        else {
            return nil
        }
        reservedGIDs.insert(gid)
        return gid
    }

    func release(gid: Int) {
        reservedGIDs.remove(gid)
    }

    /// All known volumes, sorted by ID (a stable order for ListVolumes pagination).
    func allVolumes() -> [HeketiVolume] {
        byID.values.sorted { $0.id < $1.id }
    }
}
