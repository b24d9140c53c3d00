import Heketi

/// What the controller knows of one Heketi's volumes: name → volume, and the GIDs in use.
///
/// Heketi's `GET /volumes` lists IDs only, so finding a volume by name would cost one request per
/// volume. The index is built once from Heketi (in the background when the controller starts, or
/// by the first create), kept current by the controller's own creates, expansions and deletes,
/// and caught up incrementally (one list request plus one request per volume it has not seen):
///
/// - before a create of an unknown name, unless the index is *settled* and its last catch-up is
///   younger than a maximum age. Settled means a catch-up listed Heketi's volumes after Heketi
///   reported no operation in flight: then nothing an earlier controller (killed mid-create) or
///   this one (a create whose outcome is unknown) started can still finish unseen, so the
///   controller's own volumes are all in the index and their GIDs stay unique. Until then, and
///   again after a create with an unknown outcome, every new name catches up first. The age bounds
///   how long a volume someone else created (heketi-cli, another cluster) can go unseen when a
///   GID is chosen. A name held by a volume the index has not seen is not lost either: Heketi
///   refuses the create ("already in use") and the controller catches up and adopts it.
/// - before a clone (a snapshot, a restore, a volume clone) of an unknown name, as before a create,
///   and a clone also waits for the index to be settled. Heketi does not refuse a clone whose
///   name is taken, so only the index can tell a clone exists: a clone an earlier controller left
///   running is invisible until it finishes, and cloning meanwhile would make a second one. Once
///   settled, every clone a controller of this driver started is in the index (the index knows
///   its own, and was listed when nothing else was in flight); the maximum age bounds how long
///   one made by someone else under the same name (heketi-cli) can go unseen.
/// - when Heketi says a name is in use.
///
/// So a repeated CreateVolume costs no scan, and a new name costs no list in steady state.
actor VolumeIndex {
    private var byID: [String: HeketiVolume] = [:]
    /// Name → IDs of the volumes with that name, first seen first; the first holds the name.
    /// (Heketi lets clones share a name; almost always there is one.)
    private var idsByName: [String: [String]] = [:]
    /// Snapshot clone names by their lookup prefix, so CreateSnapshot finds its clone without a scan.
    private var snapshotNamesByPrefix: [String: Set<String>] = [:]
    /// GID → how many known volumes use it: a create looks GIDs up here instead of collecting the
    /// GIDs of every volume.
    private var volumesByGID: [Int: Int] = [:]
    /// When each volume was recorded, so a catch-up does not drop what was recorded after its list.
    private var recordedAt: [String: ContinuousClock.Instant] = [:]
    /// GIDs handed out for creates that have not finished yet.
    private var reservedGIDs: Set<Int> = []
    /// GIDs of creates whose outcome is unknown (the volume may still appear): held until the
    /// index settles, when the list shows whether they were used.
    private var unknownOutcomeGIDs: Set<Int> = []
    /// Range start → a GID such that every GID from the start up to (not including) it is in use
    /// or held: where the next search for a free GID from that start may begin. Lowered whenever
    /// a GID below it comes free, so thousands of volumes in a dense range cost no probing.
    private var searchFrom: [Int: Int] = [:]
    private var catchingUp: Task<Void, any Error>?
    /// When the last successful catch-up listed Heketi's volumes; nil before the first.
    private var listedAt: ContinuousClock.Instant?
    /// See the type's documentation.
    private(set) var isSettled = false
    /// Counts `createOutcomeUnknown` calls, so a catch-up that overlapped one does not settle.
    private var unknownOutcomes = 0
    /// While unsettled: how many operations Heketi last said were in flight. A create an earlier
    /// controller left running is invisible to the list, and it took the lowest GID free at the
    /// time, so new GIDs skip that many of the lowest free ones.
    private var inFlightElsewhere = 0

    /// The volume with this Heketi name, if the index knows one. Costs no request.
    func volume(named name: String) -> HeketiVolume? {
        idsByName[name]?.first.flatMap { byID[$0] }
    }

    func volume(id: String) -> HeketiVolume? { byID[id] }

    /// The volume with this ID from the index or, when the index does not know it (made outside
    /// the driver since the last catch-up), from Heketi, then recorded; nil when Heketi does not
    /// know it either.
    func volume(id: String, askingIfUnknown heketi: any HeketiAPI) async throws(HeketiError) -> HeketiVolume? {
        if let known = byID[id] { return known }
        guard let fetched = try await heketi.volumeIfExists(id: id) else { return nil }
        record(fetched)
        return fetched
    }

    /// The clone of the snapshot whose clone names start with `lookupPrefix` (HeketiSnapshotName),
    /// the earliest if there are several. Costs no request.
    func snapshot(lookupPrefix: String) -> HeketiVolume? {
        snapshotNamesByPrefix[lookupPrefix]?.min().flatMap { volume(named: $0) }
    }

    /// A clone failed in a way that leaves its outcome unknown: it may still appear, so the index
    /// is unsettled until a catch-up at a moment Heketi has nothing in flight.
    func cloneOutcomeUnknown() {
        unknownOutcomes += 1
        isSettled = false
    }

    var count: Int { byID.count }

    /// Catches up unless the index is settled and the last catch-up started less than `maxAge` ago.
    func catchUp(with heketi: any HeketiAPI, ifOlderThan maxAge: Duration) async throws {
        if isSettled, let listedAt, ContinuousClock.now - listedAt < maxAge { return }
        try await catchUp(with: heketi)
    }

    /// A create with this GID failed in a way that leaves its outcome unknown (timed out, lost by
    /// Heketi, no answer): the volume may exist or still appear. Keeps the GID out of use and the
    /// index unsettled until a catch-up can tell.
    func createOutcomeUnknown(gid: Int) {
        reservedGIDs.remove(gid)
        unknownOutcomeGIDs.insert(gid)
        unknownOutcomes += 1
        isSettled = false
    }

    /// Brings the index up to date with Heketi: fetches volumes it has not seen, drops deleted ones.
    /// Concurrent callers share one catch-up.
    func catchUp(with heketi: any HeketiAPI) async throws {
        if let running = catchingUp {
            // Made with another caller's client and credentials (the start-up build has only the
            // controller's own key, perhaps none): when it fails, this caller's may still work.
            if (try? await running.value) != nil { return }
            // Another caller may have started a newer one meanwhile (the failed one may still be
            // recorded until its own caller resumes).
            if let again = catchingUp, again != running { return try await again.value }
        }
        let task = Task { try await self.fetchChanges(from: heketi) }
        catchingUp = task
        defer { if catchingUp == task { catchingUp = nil } }
        try await task.value
    }

    private func fetchChanges(from heketi: any HeketiAPI) async throws {
        // Asked before the list: with nothing in flight now, every volume anyone was creating is
        // complete, so the list that follows shows it. (No answer: stay unsettled, list anyway.)
        let unknownBefore = unknownOutcomes
        var settles = isSettled
        if !settles {
            let inFlight = try? await heketi.operationsInFlight()
            settles = inFlight == 0
            // No answer: assume the limit Heketi runs by default (8 mutating operations).
            inFlightElsewhere = inFlight ?? 8
        }
        let started = ContinuousClock.now
        let ids = Set(try await heketi.volumeIDs())
        for id in byID.keys where !ids.contains(id) {
            // Recorded after the list was taken (a create that finished meanwhile): keep it.
            if let recorded = recordedAt[id], recorded >= started { continue }
            remove(id: id)
        }
        // `index(forKey:)`: `byID[id]` would copy each listed volume just to test for it.
        for id in ids where byID.index(forKey: id) == nil {
            // nil: deleted between the list and the lookup.
            if let volume = try await heketi.volumeIfExists(id: id) {
                record(volume)
            }
        }
        listedAt = started
        if settles && !isSettled && unknownOutcomes == unknownBefore {
            isSettled = true
            let held = unknownOutcomeGIDs
            unknownOutcomeGIDs.removeAll()
            for gid in held { cameFree(gid) }
            inFlightElsewhere = 0
        }
    }

    func record(_ volume: HeketiVolume) {
        let old = byID.updateValue(volume, forKey: volume.id)
        recordedAt[volume.id] = .now
        count(gid: volume.gid, by: 1)
        if let old { count(gid: old.gid, by: -1) }
        // Heketi does not stop two clones from sharing a name; the first one seen keeps it, and a
        // volume recorded again keeps its place.
        if old?.name != volume.name {
            if let old { forget(name: old.name, of: old.id) }
            idsByName[volume.name, default: []].append(volume.id)
            if let snapshot = HeketiSnapshotName(parsing: volume.name) {
                snapshotNamesByPrefix[snapshot.lookupPrefix, default: []].insert(volume.name)
            }
        }
    }

    func remove(id: String) {
        guard let volume = byID.removeValue(forKey: id) else { return }
        recordedAt[id] = nil
        count(gid: volume.gid, by: -1)
        forget(name: volume.name, of: id)
    }

    private func count(gid: Int, by change: Int) {
        let users = volumesByGID[gid, default: 0] + change
        volumesByGID[gid] = users > 0 ? users : nil
        if users <= 0 { cameFree(gid) }
    }

    private func isInUse(_ gid: Int) -> Bool {
        volumesByGID[gid] != nil || reservedGIDs.contains(gid) || unknownOutcomeGIDs.contains(gid)
    }

    /// Keeps `searchFrom` true after `gid` may have come free.
    private func cameFree(_ gid: Int) {
        guard !isInUse(gid) else { return }
        for (start, from) in searchFrom where start <= gid && gid < from {
            searchFrom[start] = gid
        }
    }

    /// Drops `id` from the volumes named `name`; the next one seen, if any, holds the name now.
    private func forget(name: String, of id: String) {
        guard var ids = idsByName[name] else { return }
        ids.removeAll { $0 == id }
        idsByName[name] = ids.isEmpty ? nil : ids
        if ids.isEmpty, let snapshot = HeketiSnapshotName(parsing: name) {
            snapshotNamesByPrefix[snapshot.lookupPrefix]?.remove(name)
            if snapshotNamesByPrefix[snapshot.lookupPrefix]?.isEmpty == true {
                snapshotNamesByPrefix[snapshot.lookupPrefix] = nil
            }
        }
    }

    /// The lowest GID in `range` that no known volume uses and no pending create holds (skipping,
    /// while unsettled, as many of the lowest free ones as Heketi has operations in flight),
    /// reserved until `release(gid:)`; nil when the range is exhausted.
    func reserveGID(in range: ClosedRange<Int>) -> Int? {
        // Heketi accepts at most 2147483646; a range entirely above that has no usable GID (clamping
        // it would hand out a GID outside the StorageClass's range).
        let highest = min(range.upperBound, 2_147_483_646)
        guard range.lowerBound <= highest else { return nil }
        var skip = isSettled ? 0 : inFlightElsewhere
        let start = max(range.lowerBound, searchFrom[range.lowerBound] ?? range.lowerBound)
        guard start <= highest else { return nil }
        var foundFree = false
        for gid in start...highest where !isInUse(gid) {
            if !foundFree {
                foundFree = true
                searchFrom[range.lowerBound] = gid
            }
            if skip > 0 {
                skip -= 1
                continue
            }
            reservedGIDs.insert(gid)
            return gid
        }
        if !foundFree { searchFrom[range.lowerBound] = highest + 1 }
        return nil
    }

    func release(gid: Int) {
        reservedGIDs.remove(gid)
        cameFree(gid)
    }

    /// All known volumes, sorted by ID (a stable order for ListVolumes pagination).
    func allVolumes() -> [HeketiVolume] {
        byID.values.sorted { $0.id < $1.id }
    }
}
