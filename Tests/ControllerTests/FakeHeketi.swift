import Heketi
import Synchronization

/// An in-memory Heketi for controller tests. It records every call and follows heketi-api.md's
/// rules that matter to the controller: unique names (pending creates included), "Id not found",
/// expand by delta, clones that may share a name, and capacity from node devices.
final class FakeHeketi: HeketiAPI, Sendable {
    struct State {
        var volumes: [String: HeketiVolume] = [:]
        /// Names held by operations Heketi has not finished (or that went stale).
        var heldNames: Set<String> = []
        var calls: [String] = []
        var nextID = 1
        var freeGiB = 1000
        var createDelay: Duration = .zero
        var failNextCreate: HeketiError?
        var nodesOnline = true
        /// The next create finds its name just taken by a volume that appears at that moment, as
        /// when a pending Heketi operation for the same name completes.
        var raceOnCreate = false
        /// The next N `GET /volumes` fail as if Heketi were down.
        var failLists = 0
        /// Creates running now, and operations of others (e.g. a killed controller) Heketi runs.
        var runningCreates = 0
        var othersInFlight = 0
        /// The next create makes the volume but reports a timeout, as when the driver stopped
        /// waiting for Heketi's queue.
        var timeOutAfterNextCreate = false
        /// When set, the next `GET /volumes` takes its snapshot and then waits for `releaseList()`.
        var holdNextList = false
        /// When set, a held list fails with this once released.
        var failHeldList: HeketiError?
        var heldList: CheckedContinuation<Void, Never>?
    }

    let state = Mutex(State())
    let clusterID = "c0ffee00000000000000000000000000"
    let hosts = ["10.0.0.11", "10.0.0.12", "10.0.0.13"]

    var calls: [String] { state.withLock { $0.calls } }
    func calls(_ prefix: String) -> Int { calls.filter { $0.hasPrefix(prefix) }.count }
    var volumes: [HeketiVolume] { state.withLock { Array($0.volumes.values) } }

    private func record(_ call: String) {
        state.withLock { $0.calls.append(call) }
    }

    private func newID() -> String {
        state.withLock { state in
            defer { state.nextID += 1 }
            let hex = String(state.nextID, radix: 16)
            return String(repeating: "0", count: 32 - hex.count) + hex
        }
    }

    /// Adds a volume as if someone else had created it.
    @discardableResult
    func seed(name: String, sizeGiB: Int = 1, gid: Int = 0, durability: Durability = .replicate(3)) -> HeketiVolume {
        let volume = HeketiVolume(
            id: newID(), name: name, sizeGiB: sizeGiB, clusterID: clusterID, gid: gid, durability: durability,
            hosts: hosts, brickCount: 3)
        state.withLock { $0.volumes[volume.id] = volume }
        return volume
    }

    func volumeIDs() async throws(HeketiError) -> [String] {
        record("GET /volumes")
        let (ids, hold) = try state.withLock { state throws(HeketiError) -> ([String], Bool) in
            if state.failLists > 0 {
                state.failLists -= 1
                throw .unreachable("connection refused")
            }
            defer { state.holdNextList = false }
            return (Array(state.volumes.keys), state.holdNextList)
        }
        if hold {
            await withCheckedContinuation { continuation in state.withLock { $0.heldList = continuation } }
            if let failure = state.withLock({ $0.failHeldList }) { throw failure }
        }
        return ids
    }

    /// Whether a list is being held (its snapshot taken).
    var isHoldingList: Bool { state.withLock { $0.heldList != nil } }

    func releaseList() {
        state.withLock { state in
            defer { state.heldList = nil }
            return state.heldList
        }?.resume()
    }

    func operationsInFlight() async throws(HeketiError) -> Int {
        record("GET /operations")
        return state.withLock { $0.runningCreates + $0.othersInFlight }
    }

    func volume(id: String) async throws(HeketiError) -> HeketiVolume {
        record("GET /volumes/\(id)")
        guard let volume = state.withLock({ $0.volumes[id] }) else { throw .notFound("Id not found") }
        return volume
    }

    func createVolume(_ request: VolumeCreateRequest) async throws(HeketiError) -> HeketiVolume {
        record("POST /volumes \(request.name)")
        if state.withLock({ state in
            defer { state.raceOnCreate = false }; return state.raceOnCreate
        }) {
            seed(name: request.name, sizeGiB: request.sizeGiB, gid: request.gid, durability: request.durability)
            throw .nameInUse("Failed to allocate new volume: Volume name '\(request.name)' already in use")
        }
        let reserved = state.withLock { state -> HeketiError? in
            if let failure = state.failNextCreate {
                state.failNextCreate = nil
                return failure
            }
            if state.heldNames.contains(request.name)
                || state.volumes.values.contains(where: { $0.name == request.name })
            {
                return .nameInUse("Failed to allocate new volume: Volume name '\(request.name)' already in use")
            }
            if request.sizeGiB * 3 > state.freeGiB { return .noSpace("Failed to allocate new volume: No space") }
            state.heldNames.insert(request.name)
            state.runningCreates += 1
            return nil
        }
        if let reserved { throw reserved }
        let delay = state.withLock { $0.createDelay }
        if delay > .zero { try? await Task.sleep(for: delay) }
        let volume = HeketiVolume(
            id: newID(), name: request.name, sizeGiB: request.sizeGiB, clusterID: clusterID, gid: request.gid,
            durability: request.durability, hosts: hosts, glusterVolumeOptions: request.glusterVolumeOptions,
            snapshotFactor: request.snapshotFactor, brickCount: 3)
        let timeOut = state.withLock { state in
            state.heldNames.remove(request.name)
            state.volumes[volume.id] = volume
            state.freeGiB -= request.sizeGiB * 3
            state.runningCreates -= 1
            defer { state.timeOutAfterNextCreate = false }
            return state.timeOutAfterNextCreate
        }
        if timeOut { throw .timedOut("Heketi did not finish (create) within 5m; it may still complete in Heketi") }
        return volume
    }

    func expandVolume(id: String, deltaGiB: Int) async throws(HeketiError) -> HeketiVolume {
        record("POST /volumes/\(id)/expand \(deltaGiB)")
        return try state.withLock { state throws(HeketiError) -> HeketiVolume in
            guard var volume = state.volumes[id] else { throw .notFound("Id not found") }
            volume.sizeGiB += deltaGiB
            state.volumes[id] = volume
            return volume
        }
    }

    func cloneVolume(id: String, name: String) async throws(HeketiError) -> HeketiVolume {
        record("POST /volumes/\(id)/clone \(name)")
        guard var volume = state.withLock({ $0.volumes[id] }) else { throw .notFound("Id not found") }
        volume.id = newID()
        volume.name = name
        state.withLock { $0.volumes[volume.id] = volume }
        return volume
    }

    func deleteVolume(id: String) async throws(HeketiError) {
        record("DELETE /volumes/\(id)")
        let removed = state.withLock { $0.volumes.removeValue(forKey: id) }
        guard removed != nil else { throw .notFound("Id not found") }
    }

    func clusterIDs() async throws(HeketiError) -> [String] {
        record("GET /clusters")
        return [clusterID]
    }

    func cluster(id: String) async throws(HeketiError) -> HeketiCluster {
        record("GET /clusters/\(id)")
        guard id == clusterID else { throw .notFound("Id not found") }
        return HeketiCluster(id: id, nodeIDs: ["n1", "n2", "n3"], volumeIDs: [])
    }

    func node(id: String) async throws(HeketiError) -> HeketiNode {
        record("GET /nodes/\(id)")
        let (free, online) = state.withLock { ($0.freeGiB, $0.nodesOnline) }
        let device = HeketiNode.Device(name: "/dev/vdb", totalKiB: 1000 << 20, freeKiB: (free / 3) << 20, online: true)
        return HeketiNode(
            id: id, clusterID: clusterID, storageHostnames: ["h-\(id)"], online: online, devices: [device])
    }
}
