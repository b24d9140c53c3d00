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
