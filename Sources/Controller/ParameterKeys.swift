/// Every StorageClass parameter key the controller understands, in one place.
///
/// Keys are matched case-insensitively, as the in-tree `kubernetes.io/glusterfs` provisioner did,
/// so existing StorageClasses keep working when only the provisioner name changes.
enum ParameterKey {
    static let restURL = "resturl"
    static let restUser = "restuser"
    static let restUserKey = "restuserkey"
    static let restAuthEnabled = "restauthenabled"
    static let secretName = "secretname"
    static let secretNamespace = "secretnamespace"
    static let clusterID = "clusterid"
    static let gidMin = "gidmin"
    static let gidMax = "gidmax"
    static let volumeType = "volumetype"
    static let volumeOptions = "volumeoptions"
    static let volumeNamePrefix = "volumenameprefix"
    static let snapFactor = "snapfactor"
    static let customEndpointPrefix = "customepnameprefix"

    /// The in-tree keys, lower-cased.
    static let all: Set<String> = [
        restURL, restUser, restUserKey, restAuthEnabled, secretName, secretNamespace, clusterID, gidMin, gidMax,
        volumeType, volumeOptions, volumeNamePrefix, snapFactor, customEndpointPrefix,
    ]

    /// Keys the external-provisioner adds with `--extra-create-metadata`.
    static let pvcName = "csi.storage.k8s.io/pvc/name"
    static let pvcNamespace = "csi.storage.k8s.io/pvc/namespace"
    static let pvName = "csi.storage.k8s.io/pv/name"

    /// The prefix Kubernetes reserves for its own keys (secret references, fstype, metadata).
    /// Such keys are accepted and, apart from the PVC metadata above, ignored.
    static let kubernetesPrefix = "csi.storage.k8s.io/"
}

/// Keys of the CSI `secrets` map (the provisioner/controller-expand Secret).
enum SecretKey {
    /// The in-tree Secret layout (type `kubernetes.io/glusterfs`): the Heketi key under `key`.
    static let key = "key"
    /// Optional: the JWT issuer, when the Secret rather than the StorageClass names it.
    static let user = "user"
}
