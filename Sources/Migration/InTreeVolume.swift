import Heketi

/// What a PV of the removed in-tree `kubernetes.io/glusterfs` plugin (one with `spec.glusterfs`)
/// says, as read from the API server's JSON. Nothing is checked here; `Migration` does that.
struct InTreeVolume {
    /// Annotation holding Heketi's volume ID, set by the in-tree provisioner.
    static let heketiVolumeIDAnnotation = "gluster.kubernetes.io/heketi-volume-id"
    /// Annotation holding the volume's GID; kubelet gives pods using the PV that group.
    static let gidAnnotation = "pv.beta.kubernetes.io/gid"

    var name: String
    var annotations: [String: String]
    var claim: ObjectKey?
    var claimUID: String?
    var phase: String?
    /// `spec.glusterfs.path`: the Gluster volume name.
    var path: String?
    /// `spec.glusterfs.endpoints`: the Endpoints object listing the storage hosts.
    var endpointsName: String?
    /// `spec.glusterfs.endpointsNamespace`; without it, the claim's namespace.
    var endpointsNamespace: String?
    var readOnly: Bool
    var capacity: String?
    var accessModes: [String]
    var storageClassName: String?
    var mountOptions: [String]
    var reclaimPolicy: String?
    var volumeMode: String?

    /// Nil for a PV without `spec.glusterfs` (CSI, NFS, ...): not ours to migrate.
    init?(name: String, object: JSONFields) throws(HeketiWireError) {
        guard let spec = try object.object("spec"), let glusterfs = try spec.object("glusterfs") else { return nil }
        self.name = name
        let metadata = try object.object("metadata")
        annotations = try metadata?.stringMap("annotations") ?? [:]
        let claimRef = try spec.object("claimRef")
        if let claimRef, let claimName = try claimRef.string("name") {
            claim = ObjectKey(namespace: try claimRef.string("namespace") ?? "default", name: claimName)
        }
        claimUID = try claimRef?.string("uid")
        phase = try object.object("status")?.string("phase")
        path = try glusterfs.string("path")
        endpointsName = try glusterfs.string("endpoints")
        endpointsNamespace = try glusterfs.string("endpointsNamespace")
        readOnly = try glusterfs.bool("readOnly") ?? false
        capacity = try spec.object("capacity")?.string("storage")
        accessModes = try spec.strings("accessModes") ?? []
        storageClassName = try spec.string("storageClassName")
        mountOptions = try spec.strings("mountOptions") ?? []
        reclaimPolicy = try spec.string("persistentVolumeReclaimPolicy")
        volumeMode = try spec.string("volumeMode")
    }

    /// The Endpoints object named by the PV, in its namespace (`endpointsNamespace`, else the
    /// claim's, as the in-tree plugin looked it up).
    var endpoints: ObjectKey? {
        guard let endpointsName, let namespace = endpointsNamespace ?? claim?.namespace else { return nil }
        return ObjectKey(namespace: namespace, name: endpointsName)
    }
}

/// A PVC's fields that migration keeps or checks.
struct ClaimObject {
    var uid: String?
    var phase: String?
    var volumeName: String?
    var storageClassName: String?
    var accessModes: [String]
    var request: String?
    var volumeMode: String?
    var labels: [String: String]
    var annotations: [String: String]

    init(_ object: JSONFields) throws(HeketiWireError) {
        let metadata = try object.object("metadata")
        uid = try metadata?.string("uid")
        labels = try metadata?.stringMap("labels") ?? [:]
        annotations = try metadata?.stringMap("annotations") ?? [:]
        phase = try object.object("status")?.string("phase")
        let spec = try object.object("spec")
        volumeName = try spec?.string("volumeName")
        storageClassName = try spec?.string("storageClassName")
        accessModes = try spec?.strings("accessModes") ?? []
        request = try spec?.object("resources")?.object("requests")?.string("storage")
        volumeMode = try spec?.string("volumeMode")
    }

    /// Annotations that belonged to the old binding or to kubectl, not to the claim's owner:
    /// the PV controller's and provisioners' bookkeeping, and kubectl's record of the last apply.
    static func isBindingAnnotation(_ key: String) -> Bool {
        key.hasPrefix("pv.kubernetes.io/") || key.hasPrefix("volume.beta.kubernetes.io/")
            || key.hasPrefix("volume.kubernetes.io/") || key == "kubectl.kubernetes.io/last-applied-configuration"
    }
}

/// The addresses of an Endpoints object, in order, without repeats.
func endpointAddresses(_ object: JSONFields) throws(HeketiWireError) -> [String] {
    var addresses: [String] = []
    for subset in try object.objects("subsets") ?? [] {
        for address in try subset.objects("addresses") ?? [] {
            if let ip = try address.string("ip"), !ip.isEmpty, !addresses.contains(ip) {
                addresses.append(ip)
            }
        }
    }
    return addresses
}

/// The PV's StorageClass as the input has it.
struct ClassObject {
    var provisioner: String?
    var parameters: [String: String]

    init(_ object: JSONFields) throws(HeketiWireError) {
        provisioner = try object.string("provisioner")
        parameters = try object.stringMap("parameters") ?? [:]
    }
}
