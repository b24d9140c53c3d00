"""What the pinned sidecar images accept."""

# Flags of the pinned sidecars, read from their sources at these tags (cmd/*/main.go and
# csi-lib-utils standardflags; klog's -v). A new tag needs this table re-read: the check fails
# on an image whose tag is not listed, so the table cannot silently go stale.
SIDECAR_FLAGS: dict[str, dict[str, set[str]]] = {
    "registry.k8s.io/sig-storage/csi-provisioner": {
        "v6.3.0": {
            "csi-address", "kubeconfig", "master", "leader-election", "leader-election-namespace",
            "leader-election-lease-duration", "leader-election-renew-deadline",
            "leader-election-retry-period", "leader-election-labels", "kube-api-qps", "kube-api-burst",
            "http-endpoint", "metrics-address", "metrics-path", "version", "v", "volume-name-prefix",
            "volume-name-uuid-length", "retry-interval-start", "retry-interval-max", "worker-threads",
            "cloning-protection-threads", "snapshot-orphan-sweep-interval", "capacity-threads",
            "timeout", "strict-topology", "immediate-topology", "extra-create-metadata",
            "enable-pprof", "default-fstype", "kube-api-capacity-qps", "kube-api-capacity-burst",
            "enable-capacity", "capacity-for-immediate-binding", "capacity-poll-interval",
            "capacity-ownerref-level", "node-deployment", "node-deployment-immediate-binding",
            "node-deployment-base-delay", "node-deployment-max-delay", "controller-publish-readonly",
            "prevent-volume-mode-conversion", "feature-gates",
        },
    },
    "registry.k8s.io/sig-storage/csi-resizer": {
        "v2.2.1": {
            "csi-address", "kubeconfig", "master", "leader-election", "leader-election-namespace",
            "leader-election-lease-duration", "leader-election-renew-deadline",
            "leader-election-retry-period", "leader-election-labels", "kube-api-qps", "kube-api-burst",
            "http-endpoint", "metrics-address", "metrics-path", "version", "v", "resync-period",
            "workers", "extra-modify-metadata", "timeout", "retry-interval-start",
            "retry-interval-max", "handle-volume-inuse-error", "feature-gates",
        },
    },
    "registry.k8s.io/sig-storage/csi-snapshotter": {
        # cmd/csi-snapshotter/main.go, csi-lib-utils v0.24.0 standardflags, and the logging flags
        # of k8s.io/component-base v0.36.1 logs/api/v1 (JSON format registered).
        "v8.6.0": {
            "csi-address", "kubeconfig", "leader-election", "leader-election-namespace",
            "leader-election-lease-duration", "leader-election-renew-deadline",
            "leader-election-retry-period", "leader-election-labels", "kube-api-qps", "kube-api-burst",
            "http-endpoint", "metrics-address", "metrics-path", "version", "resync-period",
            "snapshot-name-prefix", "snapshot-name-uuid-length", "worker-threads", "timeout",
            "extra-create-metadata", "retry-interval-start", "retry-interval-max", "node-deployment",
            "groupsnapshot-name-prefix", "groupsnapshot-name-uuid-length", "feature-gates",
            "v", "vmodule", "logging-format", "log-flush-frequency", "log-text-split-stream",
            "log-text-info-buffer-size", "log-json-split-stream", "log-json-info-buffer-size",
        },
    },
    "registry.k8s.io/sig-storage/csi-node-driver-registrar": {
        "v2.17.0": {
            "connection-timeout", "timeout", "csi-address", "plugin-registration-path",
            "kubelet-registration-path", "health-port", "http-endpoint", "version", "mode",
            "enable-pprof", "v",
        },
    },
    "registry.k8s.io/sig-storage/livenessprobe": {
        "v2.19.0": {
            "probe-timeout", "csi-address", "health-port", "metrics-address", "http-endpoint",
            "metrics-path", "version", "v",
        },
    },
}
# Defaults of sidecar flags the checks rely on when a manifest leaves them out.
SIDECAR_DEFAULTS = {"csi-address": "/run/csi/socket", "plugin-registration-path": "/registration"}

# The Lease each controller sidecar takes with --leader-election, from the driver name (lease_name
# sanitizes the whole: non-alphanumerics become '-'): csi-lib-utils leaderelection for the
# provisioner and the snapshotter (whose lock name is "external-snapshotter-leader-<driver>"),
# external-resizer's own for the resizer.
LEASE_PREFIXES = {
    "csi-provisioner": "",
    "csi-resizer": "external-resizer-",
    "csi-snapshotter": "external-snapshotter-leader-",
}

# What each controller sidecar of the pinned versions needs from RBAC in this deployment (no
# topology, no attach, no capacity objects, no group snapshots), read from their sources: API
# group, resource, verbs; cluster-wide. Secrets (get) and Leases (get, update, create) are needed
# in the driver's namespace and checked there. A sidecar that lacks one of these fails only when
# it first needs it (a restore, a snapshot, an event), so the check fails instead.
SIDECAR_RBAC: dict[str, list[tuple[str, str, set[str]]]] = {
    "csi-provisioner": [
        ("", "persistentvolumes", {"get", "list", "watch", "create", "patch", "delete"}),
        # update: annotations and the clone-source finalizer
        ("", "persistentvolumeclaims", {"get", "list", "watch", "update"}),
        ("storage.k8s.io", "storageclasses", {"get", "list", "watch"}),
        ("", "events", {"create", "update", "patch"}),
    ],
    "csi-resizer": [
        ("", "persistentvolumes", {"get", "list", "watch", "patch"}),
        ("", "persistentvolumeclaims", {"get", "list", "watch"}),
        ("", "persistentvolumeclaims/status", {"patch"}),
        ("", "events", {"create", "update", "patch"}),
    ],
    "csi-snapshotter": [
        ("snapshot.storage.k8s.io", "volumesnapshotclasses", {"get", "list", "watch"}),
        ("snapshot.storage.k8s.io", "volumesnapshotcontents", {"get", "list", "watch", "update", "patch"}),
        ("snapshot.storage.k8s.io", "volumesnapshotcontents/status", {"update", "patch"}),
        ("", "events", {"create", "update", "patch"}),
    ],
}
# The provisioner's share of snapshots, needed once the driver offers them (restores read the
# VolumeSnapshot and its content and put a finalizer on the VolumeSnapshot; the sweeper watches
# VolumeSnapshots for finalizers left behind).
PROVISIONER_SNAPSHOT_RBAC: list[tuple[str, str, set[str]]] = [
    ("snapshot.storage.k8s.io", "volumesnapshots", {"get", "list", "watch", "update"}),
    ("snapshot.storage.k8s.io", "volumesnapshotcontents", {"get", "list"}),
]
# The client-side rate limit of the sidecars that act on many objects at once. The default (5 qps,
# burst 10) is what bulk provisioning waits on; these are the least the manifests must give.
KUBE_API_DEFAULTS = {"kube-api-qps": 5.0, "kube-api-burst": 10.0}
