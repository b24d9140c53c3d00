import Heketi

/// Lookups where "Heketi does not know it" is an answer, not an error.
extension HeketiAPI {
    /// The volume, or nil when Heketi answers "Id not found".
    func volumeIfExists(id: String) async throws(HeketiError) -> HeketiVolume? {
        do {
            return try await volume(id: id)
        } catch {
            if case .notFound = error { return nil }
            throw error
        }
    }

    /// The cluster, or nil when Heketi answers "Id not found".
    func clusterIfExists(id: String) async throws(HeketiError) -> HeketiCluster? {
        do {
            return try await cluster(id: id)
        } catch {
            if case .notFound = error { return nil }
            throw error
        }
    }

    /// Deletes the volume; a volume Heketi does not know counts as deleted.
    func deleteVolumeIfExists(id: String) async throws(HeketiError) {
        do {
            try await deleteVolume(id: id)
        } catch {
            if case .notFound = error { return }
            throw error
        }
    }
}
