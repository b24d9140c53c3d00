extension Migration {
    /// The manifests for every migrated claim, in claim order: for each, its glusterfs-csi PV and
    /// the recreated claim, as YAML documents `kubectl apply -f -` takes. Empty when nothing is
    /// migrated.
    public var manifests: String {
        var documents: [String] = []
        for claim in claims {
            let header = "# \(claim.claim): the in-tree PV \(claim.volumeName) and its claim, migrated\n"
            documents.append(header + persistentVolume(claim).document)
            documents.append(persistentVolumeClaim(claim).document)
        }
        return documents.joined(separator: "---\n")
    }

    /// The glusterfs-csi PV: docs/migration.md step 6, deploy/examples/migrated-pv.yaml.
    func persistentVolume(_ claim: ClaimMigration) -> YAMLNode {
        var metadata: [(String, YAMLNode)] = [("name", .string(claim.volumeName))]
        if let gid = claim.gid {
            metadata.append(("annotations", .map([(InTreeVolume.gidAnnotation, .quoted(String(gid)))])))
        }
        var csi: [(String, YAMLNode)] = [
            ("driver", .string(options.driverName)),
            ("volumeHandle", .quoted(claim.volumeHandle)),
        ]
        if claim.readOnly { csi.append(("readOnly", .bool(true))) }
        csi.append(("volumeAttributes", Self.sortedMap(claim.volumeContext)))
        csi.append(
            (
                "controllerExpandSecretRef",
                .map([("name", .string(options.secretName)), ("namespace", .string(options.secretNamespace))])
            ))
        var spec: [(String, YAMLNode)] = [
            ("capacity", .map([("storage", .string(claim.capacity))])),
            ("accessModes", .list(claim.accessModes.map { .string($0) })),
            ("persistentVolumeReclaimPolicy", .string("Retain")),
            ("storageClassName", .string(claim.storageClassName)),
        ]
        if !claim.mountOptions.isEmpty {
            spec.append(("mountOptions", .list(claim.mountOptions.map { .string($0) })))
        }
        spec.append(("csi", .map(csi)))
        spec.append(
            (
                "claimRef",
                .map([("namespace", .string(claim.claim.namespace)), ("name", .string(claim.claim.name))])
            ))
        return .map([
            ("apiVersion", .string("v1")), ("kind", .string("PersistentVolume")), ("metadata", .map(metadata)),
            ("spec", .map(spec)),
        ])
    }

    /// The claim as it was (labels, own annotations, class, access modes, request), naming the PV.
    func persistentVolumeClaim(_ claim: ClaimMigration) -> YAMLNode {
        var metadata: [(String, YAMLNode)] = [
            ("name", .string(claim.claim.name)), ("namespace", .string(claim.claim.namespace)),
        ]
        if !claim.claimLabels.isEmpty { metadata.append(("labels", Self.sortedMap(claim.claimLabels))) }
        if !claim.claimAnnotations.isEmpty {
            metadata.append(("annotations", Self.sortedMap(claim.claimAnnotations)))
        }
        let spec: [(String, YAMLNode)] = [
            ("storageClassName", .string(claim.storageClassName)),
            ("volumeName", .string(claim.volumeName)),
            ("accessModes", .list(claim.claimAccessModes.map { .string($0) })),
            ("resources", .map([("requests", .map([("storage", .string(claim.claimRequest))]))])),
        ]
        return .map([
            ("apiVersion", .string("v1")), ("kind", .string("PersistentVolumeClaim")),
            ("metadata", .map(metadata)), ("spec", .map(spec)),
        ])
    }

    /// A map of strings, keys sorted, every value quoted.
    private static func sortedMap(_ entries: [String: String]) -> YAMLNode {
        .map(entries.keys.sorted().map { ($0, .quoted(entries[$0]!)) })
    }
}
