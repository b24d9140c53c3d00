import CSICore

/// Where the volumes of a StorageClass live, read with the controller's own rules: for tools that
/// describe volumes a class already has (`glusterfs-csi migrate` turning in-tree PVs into ours)
/// rather than create new ones.
///
/// Only `resturl` and `clusterid` are read, case-insensitively as CreateVolume reads them; the
/// other parameters say how new volumes are made and do not matter to existing ones.
public struct StorageClassLocation: Sendable, Equatable {
    /// The Heketi URL as CreateVolume records it in volume IDs (a trailing `/` dropped); nil when
    /// the class has no `resturl`.
    public var restURL: String?
    /// The Heketi clusters the class lets Heketi choose from; empty for all of them.
    public var clusterIDs: [String]

    /// Reads the location from a class's `parameters`. Throws INVALID_ARGUMENT naming the key, as
    /// CreateVolume would, for a bad value or a key spelled two ways.
    public init(parameters: [String: String]) throws(CSIError) {
        restURL = try Self.entry(ParameterKey.restURL, in: parameters).map { (entry) throws(CSIError) in
            try StorageClassParameters.url(entry.value)
        }
        clusterIDs =
            try Self.entry(ParameterKey.clusterID, in: parameters).map { (entry) throws(CSIError) in
                try StorageClassParameters.clusterIDs(entry.key, entry.value)
            } ?? []
    }

    /// The parameter `key` (lower case) however it is spelled in `parameters`.
    private static func entry(
        _ key: String, in parameters: [String: String]
    ) throws(CSIError) -> (key: String, value: String)? {
        let spellings = parameters.keys.filter { $0.lowercased() == key }.sorted()
        if spellings.count > 1 {
            throw CSIError(
                .invalidArgument,
                "parameters '\(spellings[0])' and '\(spellings[1])' are the same parameter (keys are "
                    + "case-insensitive); keep one of them in the StorageClass")
        }
        return spellings.first.map { ($0, parameters[$0]!) }
    }
}
