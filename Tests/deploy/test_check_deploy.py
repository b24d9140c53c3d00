"""Tests of scripts/check-deploy: the repository passes every check, and each check fails, naming
the problem, on a copy of deploy/, docs/, README.md and the Dockerfile with one deliberate mistake.

A check that cannot fail is worse than none, so every check has at least one breakage here. The
copies are made under pytest's tmp_path; the release binary is built once (or taken from
GLUSTERFS_CSI_RELEASE_BIN) and shared.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check-deploy"
COPIED = ["deploy", "docs", "Dockerfile", "README.md", ".yamllint", ".hadolint.yaml"]


@pytest.fixture(scope="session")
def binary() -> Path:
    given = os.environ.get("GLUSTERFS_CSI_RELEASE_BIN")
    if given:
        return Path(given)
    result = subprocess.run([sys.executable, str(SCRIPT), "--print-binary"], capture_output=True, text=True)
    assert result.returncode == 0, f"cannot build the release binary:\n{result.stderr}"
    return Path(result.stdout.strip())


class Tree:
    """A copy of what check-deploy reads, to break on purpose."""

    def __init__(self, root: Path):
        self.root = root
        for name in COPIED:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, root / name)
            else:
                shutil.copy2(source, root / name)

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.root / relative
        text = path.read_text()
        # The breakage must really happen, or the test proves nothing.
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {relative}, expected once"
        path.write_text(text.replace(old, new))

    def edit_all(self, relative: str, old: str, new: str) -> None:
        """Every occurrence, for what a page says more than once."""
        path = self.root / relative
        text = path.read_text()
        assert old in text, f"{old!r} does not occur in {relative}"
        path.write_text(text.replace(old, new))

    def delete(self, relative: str) -> None:
        (self.root / relative).unlink()


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "tree")


def check(binary: Path, *checks: str, root: Path = REPO, binary_override: Path | None = None):
    command = [sys.executable, str(SCRIPT), "--root", str(root), "--binary", str(binary_override or binary), *checks]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_the_repository_passes_every_check(binary):
    result = check(binary)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ["render", "validate", "yamllint", "hadolint", "agreement", "ldd", "migrate", "docs"]:
        assert f"check-deploy: {name}: ok" in result.stdout
    assert "8 passed, 0 failed" in result.stdout


def test_an_unmodified_copy_passes(binary, tree):
    """The breakage tests below differ from this only in their one edit."""
    result = check(binary, root=tree.root)
    assert result.returncode == 0, result.stdout + result.stderr


BREAKAGES = [
    # (id, check, file, old, new, what the failure must say)
    ("render: missing resource", "render", "deploy/base/kustomization.yaml",
     "  - node.yaml", "  - nodes.yaml", "kustomize cannot render"),
    ("validate: unknown field in the base", "validate", "deploy/base/node.yaml",
     "      hostNetwork: true", "      hostNetwrk: true", "'hostNetwrk' was unexpected"),
    ("validate: wrong type in an example", "validate", "deploy/examples/pvc-gluster-pvc-10g.yaml",
     "  accessModes:\n    - ReadWriteMany", "  accessModes: ReadWriteMany", "is not of type 'array'"),
    # The API server stores 10k and 64Mi; a manifest saying otherwise is "configured" on every apply.
    # The snapshot CRD kinds, against our schemas (scripts/deploycheck/crds.py).
    ("validate: a VolumeSnapshotClass deletionPolicy that does not exist", "validate",
     "deploy/examples/volumesnapshotclass-glusterfs.yaml", "deletionPolicy: Delete", "deletionPolicy: Remove",
     "'Remove' is not one of ['Delete', 'Retain'] (at deletionPolicy)"),
    ("validate: an unknown VolumeSnapshot field", "validate", "deploy/examples/volumesnapshot-gluster-pvc-10g.yaml",
     "  volumeSnapshotClassName: glusterfs-snapshot", "  snapshotClassName: glusterfs-snapshot",
     "('snapshotClassName' was unexpected) (at spec)"),
    ("validate: a VolumeSnapshot with two sources", "validate", "deploy/examples/volumesnapshot-gluster-pvc-10g.yaml",
     "    persistentVolumeClaimName: gluster-pvc-10g\n",
     "    persistentVolumeClaimName: gluster-pvc-10g\n    volumeSnapshotContentName: snapcontent-1\n",
     "has too many properties (at spec/source)"),
    ("validate: VolumeSnapshot metadata against ObjectMeta", "validate",
     "deploy/examples/volumesnapshot-gluster-pvc-10g.yaml", "  namespace: default", "  namespaces: default",
     "('namespaces' was unexpected) (at metadata)"),
    ("validate: a snapshot kind we have no schema for", "validate",
     "deploy/examples/volumesnapshot-gluster-pvc-10g.yaml", "apiVersion: snapshot.storage.k8s.io/v1",
     "apiVersion: snapshot.storage.k8s.io/v1beta1", "has no schema in scripts/deploycheck/crds.py"),
    ("validate: a quota count the API server rewrites", "validate", "deploy/base/namespace.yaml",
     "    pods: 10k\n", '    pods: "10000"\n', "spec.hard.pods: write '10000' as '10k'"),
    ("validate: a memory request the API server rewrites", "validate", "deploy/base/node.yaml",
     "              memory: 64Mi\n", "              memory: 65536Ki\n", "write '65536Ki' as '64Mi'"),
    ("yamllint: trailing spaces", "yamllint", "deploy/base/controller.yaml",
     "  replicas: 1\n", "  replicas: 1   \n", "trailing-spaces"),
    ("hadolint: apt-get install without -y", "hadolint", "Dockerfile",
     "    && apt-get install -y --no-install-recommends \\\n        ca-certificates",
     "    && apt-get install --no-install-recommends \\\n        ca-certificates", "DL3014"),
    ("agreement: registration path of another driver", "agreement", "deploy/base/node.yaml",
     "--kubelet-registration-path=/var/lib/kubelet/plugins/glusterfs.csi.heketi.io/csi.sock",
     "--kubelet-registration-path=/var/lib/kubelet/plugins/glusterfs-csi/csi.sock",
     "--kubelet-registration-path is /var/lib/kubelet/plugins/glusterfs-csi/csi.sock"),
    ("agreement: a flag the binary does not have", "agreement", "deploy/base/controller.yaml",
     "- --heketi-key-file=/etc/glusterfs-csi/heketi/key", "- --heketi-keyfile=/etc/glusterfs-csi/heketi/key",
     "glusterfs-csi has no flag --heketi-keyfile"),
    ("agreement: a variable the binary does not read", "agreement", "deploy/base/node.yaml",
     "- name: GLUSTERFS_CSI_NODE_ID", "- name: GLUSTERFS_CSI_NODEID",
     "env GLUSTERFS_CSI_NODEID is not a variable glusterfs-csi reads"),
    ("agreement: CSIDriver name differs from the binary's", "agreement", "deploy/base/csidriver.yaml",
     "  name: glusterfs.csi.heketi.io", "  name: gluster.csi.example.com",
     "is not the CSIDriver's gluster.csi.example.com"),
    ("agreement: attachRequired true", "agreement", "deploy/base/csidriver.yaml",
     "  attachRequired: false", "  attachRequired: true", "attachRequired must be false"),
    ("agreement: fsGroupPolicy File", "agreement", "deploy/base/csidriver.yaml",
     "  fsGroupPolicy: None", "  fsGroupPolicy: File", "fsGroupPolicy must be None"),
    ("agreement: a sidecar dials another socket", "agreement", "deploy/base/controller.yaml",
     "          env:\n            - name: ADDRESS\n              value: /csi/csi.sock\n"
     "            - name: NAMESPACE\n              valueFrom:\n                fieldRef:\n"
     "                  fieldPath: metadata.namespace\n          ports:\n            - name: provisioner",
     "          env:\n            - name: ADDRESS\n              value: /csi/provisioner.sock\n"
     "            - name: NAMESPACE\n              valueFrom:\n                fieldRef:\n"
     "                  fieldPath: metadata.namespace\n          ports:\n            - name: provisioner",
     "--csi-address /csi/provisioner.sock is not the driver's socket"),
    ("agreement: a sidecar flag its version lacks", "agreement", "deploy/base/controller.yaml",
     "- --extra-create-metadata=true\n            # How long", "- --extra-create-metadta=true\n            # How long",
     "has no flag -extra-create-metadta"),
    ("agreement: a snapshotter flag its version lacks", "agreement", "deploy/base/controller.yaml",
     "- --http-endpoint=:8082", "- --http-endpont=:8082", "csi-snapshotter:v8.6.0 has no flag -http-endpont"),
    ("agreement: provisioner timeout too short for Heketi", "agreement", "deploy/base/controller.yaml",
     "            - --timeout=300s\n            # Restores", "            - --timeout=10s\n            # Restores",
     "is too short for Heketi"),
    ("agreement: snapshotter timeout too short for a clone", "agreement", "deploy/base/controller.yaml",
     "            - --timeout=300s\n            # The VolumeSnapshot's", "            - --timeout=30s\n            # The "
     "VolumeSnapshot's", "csi-snapshotter: --timeout 30s is too short for a Heketi clone"),
    # The API server's client-side rate limit: the default 5 qps is what bulk provisioning waits on.
    ("agreement: the resizer back at the default API rate", "agreement", "deploy/base/controller.yaml",
     "wait on the client.\n            - --kube-api-qps=100\n", "wait on the client.\n",
     "container csi-resizer: --kube-api-qps 5 (default) keeps the client-side rate limit at or below the default 5"),
    ("agreement: the provisioner's snapshot-finalizer sweeper off", "agreement", "deploy/base/controller.yaml",
     "            - --kube-api-burst=200\n            - --http-endpoint=:8080",
     "            - --kube-api-burst=200\n            - --snapshot-orphan-sweep-interval=0\n"
     "            - --http-endpoint=:8080", "--snapshot-orphan-sweep-interval=0 with a csi-snapshotter in the pod"),
    ("agreement: lease name of another driver", "agreement", "deploy/base/rbac-controller.yaml",
     'resourceNames: ["glusterfs-csi-heketi-io"]', 'resourceNames: ["glusterfs-csi"]',
     "no lease rule for 'glusterfs-csi-heketi-io'"),
    ("agreement: the snapshotter's lease misnamed", "agreement", "deploy/base/rbac-controller.yaml",
     'resourceNames: ["external-snapshotter-leader-glusterfs-csi-heketi-io"]',
     'resourceNames: ["external-snapshotter-glusterfs-csi-heketi-io"]',
     "no lease rule for 'external-snapshotter-leader-glusterfs-csi-heketi-io'"),
    # RBAC: what each sidecar in the pod needs, granted to the pod's ServiceAccount.
    ("agreement: the snapshotter cannot patch content status", "agreement", "deploy/base/rbac-controller.yaml",
     '    resources: ["volumesnapshotcontents/status"]\n    verbs: ["update", "patch"]',
     '    resources: ["volumesnapshotcontents/status"]\n    verbs: ["update"]',
     "csi-snapshotter needs patch on volumesnapshotcontents/status (snapshot.storage.k8s.io) cluster-wide"),
    ("agreement: the provisioner cannot protect a snapshot it restores", "agreement",
     "deploy/base/rbac-controller.yaml",
     '    resources: ["volumesnapshots"]\n    verbs: ["get", "list", "watch", "update"]',
     '    resources: ["volumesnapshots"]\n    verbs: ["get", "list", "watch"]',
     "csi-provisioner needs update on volumesnapshots (snapshot.storage.k8s.io) cluster-wide"),
    ("agreement: the resizer's ClusterRole unbound", "agreement", "deploy/base/rbac-controller.yaml",
     "  kind: ClusterRole\n  name: glusterfs-csi-resizer\n", "  kind: ClusterRole\n  name: glusterfs-csi-resizr\n",
     "csi-resizer needs patch on persistentvolumeclaims/status cluster-wide"),
    ("agreement: image tag is not the binary's version", "agreement", "deploy/base/node.yaml",
     "          image: glusterfs-csi:0.1.0", "          image: glusterfs-csi:0.2.0",
     "image tag 0.2.0 is not the binary's version"),
    # Mount placement: what each placement needs from the pod, and the update strategy it allows.
    ("agreement: the node plugin back on OnDelete", "agreement", "deploy/base/node.yaml",
     "    type: RollingUpdate\n    rollingUpdate:\n      maxUnavailable: 1\n      maxSurge: 0\n",
     "    type: OnDelete\n", "must use updateStrategy RollingUpdate: with --mount-placement=auto"),
    ("agreement: placement none rolling (kills mounts)", "agreement", "deploy/base/node.yaml",
     "- --mount-placement=auto", "- --mount-placement=none",
     "with --mount-placement=none the FUSE clients run in the node plugin's container"),
    ("agreement: a placement the binary does not know", "agreement", "deploy/base/node.yaml",
     "- --mount-placement=auto", "- --mount-placement=scope", "--mount-placement scope is none of"),
    ("agreement: two node plugins on one node during a rollout", "agreement", "deploy/base/node.yaml",
     "      maxSurge: 0", "      maxSurge: 1", "rollingUpdate.maxSurge must be 0, not 1"),
    ("agreement: the node plugin in its own PID namespace", "agreement", "deploy/base/node.yaml",
     "      hostPID: true\n", "", "needs hostPID: true with --mount-placement=auto"),
    ("agreement: --cgroup-root the container's own cgroup tree", "agreement", "deploy/base/node.yaml",
     "- --cgroup-root=/host/sys/fs/cgroup", "- --cgroup-root=/sys/fs/cgroup",
     "--cgroup-root /sys/fs/cgroup must be where a hostPath volume of the host's /sys/fs/cgroup is mounted"),
    ("agreement: the cgroup volume is one hierarchy only", "agreement", "deploy/base/node.yaml",
     "            path: /sys/fs/cgroup\n", "            path: /sys/fs/cgroup/pids\n",
     "it is the host's /sys/fs/cgroup/pids"),
    ("agreement: the cgroup tree mounted read-only", "agreement", "deploy/base/node.yaml",
     "              mountPath: /host/sys/fs/cgroup\n",
     "              mountPath: /host/sys/fs/cgroup\n              readOnly: true\n",
     "of the host's cgroup tree must be read-write"),
    ("agreement: --systemd-socket outside the systemd mount", "agreement", "deploy/base/node.yaml",
     "- --systemd-socket=/run/systemd/private", "- --systemd-socket=/var/run/systemd/private",
     "--systemd-socket /var/run/systemd/private must lie inside a hostPath volume of the host's /run/systemd"),
    ("agreement: the systemd directory mounted from elsewhere", "agreement", "deploy/base/node.yaml",
     "            path: /run/systemd\n", "            path: /var/lib/systemd\n",
     "it is the host's /var/lib/systemd/private"),
    ("agreement: a node without systemd would not start", "agreement", "deploy/base/node.yaml",
     "            path: /run/systemd\n            type: DirectoryOrCreate",
     "            path: /run/systemd\n            type: Directory",
     "has type Directory: with --mount-placement=auto it must be DirectoryOrCreate"),
    # --kubelet-dir: where kubelet's directory is, inside the container and on the host.
    ("agreement: --kubelet-dir below where kubelet's directory is mounted", "agreement", "deploy/base/node.yaml",
     "- --kubelet-dir=/var/lib/kubelet", "- --kubelet-dir=/var/lib/kubelet/pods",
     "--kubelet-dir /var/lib/kubelet/pods must be the mountPath of the hostPath volume of kubelet's directory"),
    ("agreement: kubelet's directory mounted elsewhere, --kubelet-dir left", "agreement", "deploy/base/node.yaml",
     "              mountPath: /var/lib/kubelet\n              mountPropagation: Bidirectional\n",
     "              mountPath: /data/kubelet\n              mountPropagation: Bidirectional\n",
     "--kubelet-dir /var/lib/kubelet must be the mountPath of the hostPath volume of kubelet's directory, mounted "
     "with Bidirectional propagation (volume kubelet-dir at /data/kubelet)"),
    ("agreement: kubelet's directory from another host path", "agreement", "deploy/base/node.yaml",
     "            path: /var/lib/kubelet\n            type: Directory\n",
     "            path: /data/kubelet\n            type: Directory\n",
     "--kubelet-dir /var/lib/kubelet is the host's /data/kubelet (volume kubelet-dir)"),
    ("agreement: a secret as an environment variable", "agreement", "deploy/base/controller.yaml",
     "          env:\n            # Only used in log lines",
     "          env:\n            - name: GLUSTERFS_CSI_HEKETI_KEY\n              valueFrom:\n"
     "                secretKeyRef:\n                  name: heketi-secret\n                  key: key\n"
     "            # Only used in log lines",
     "never as variables"),
    ("agreement: an overlay adds a flag the binary does not have", "agreement",
     "deploy/overlays/example/controller-heketi-url.yaml", "--heketi-url=", "--heketi-uri=",
     "deploy/overlays/example: StatefulSet/glusterfs-csi-controller container glusterfs-csi: glusterfs-csi has no "
     "flag --heketi-uri"),
    ("agreement: an overlay gives a value the binary refuses", "agreement",
     "deploy/overlays/example/controller-heketi-url.yaml", "--heketi-url=http://heketi.example.com:8080",
     "--heketi-url=heketi.example.com:8080", "exited with 64 when started with the manifest's arguments"),
    ("agreement: StorageClass parameter the binary rejects", "agreement",
     "deploy/examples/storageclass-glusterfs-rep3.yaml",
     'volumetype: "replicate:3"', 'volumetype: "raid5"', "answered CreateVolume with INVALID_ARGUMENT"),
    # Snapshot examples against the manifests and the binary.
    ("agreement: VolumeSnapshotClass of another driver", "agreement",
     "deploy/examples/volumesnapshotclass-glusterfs.yaml", "driver: glusterfs.csi.heketi.io",
     "driver: gluster.example.com", "driver gluster.example.com is not glusterfs.csi.heketi.io"),
    ("agreement: VolumeSnapshotClass parameter the binary rejects", "agreement",
     "deploy/examples/volumesnapshotclass-glusterfs.yaml", "parameters:\n", "parameters:\n  snapfactor: \"2\"\n",
     "answered CreateSnapshot with INVALID_ARGUMENT"),
    ("agreement: snapshotter Secret where the controller may not read it", "agreement",
     "deploy/examples/volumesnapshotclass-glusterfs.yaml",
     "csi.storage.k8s.io/snapshotter-secret-namespace: glusterfs-csi",
     "csi.storage.k8s.io/snapshotter-secret-namespace: default",
     "snapshotter Secret is in namespace default, where the controller may not read Secrets"),
    ("agreement: VolumeSnapshot of a claim that is no example", "agreement",
     "deploy/examples/volumesnapshot-gluster-pvc-10g.yaml", "persistentVolumeClaimName: gluster-pvc-10g",
     "persistentVolumeClaimName: gluster-pvc-20g", "source claim gluster-pvc-20g is no example PVC in namespace default"),
    ("agreement: restore smaller than the snapshot", "agreement", "deploy/examples/pvc-gluster-pvc-10g-restored.yaml",
     "storage: 20Gi", "storage: 5Gi", "less than the snapshot's restore size"),
    ("agreement: restore from a snapshot that is no example", "agreement",
     "deploy/examples/pvc-gluster-pvc-10g-restored.yaml", "    name: gluster-pvc-10g-snap",
     "    name: gluster-pvc-10g-snapshot", "dataSource gluster-pvc-10g-snapshot is no example VolumeSnapshot"),
    ("agreement: Secret where the controller may not read it", "agreement",
     "deploy/examples/storageclass-glusterfs-none.yaml",
     "csi.storage.k8s.io/provisioner-secret-namespace: glusterfs-csi",
     "csi.storage.k8s.io/provisioner-secret-namespace: default", "where the controller may not read Secrets"),
    ("agreement: static PV context the node rejects", "agreement", "deploy/examples/static-pv.yaml",
     'server: "gluster1.example.com,', 'server: "gluster_1.example.com,',
     "the node rejected the PV's volume context"),
    ("agreement: static PV mount option the node rejects", "agreement", "deploy/examples/static-pv.yaml",
     "    - noatime", "    - log-file=/tmp/x", "the node rejected the PV's volume context or mount options"),
    ("agreement: migrated PV with a malformed volume ID", "agreement", "deploy/examples/migrated-pv.yaml",
     'volumeHandle: "v1:5c6f2a3b9d0e4f1a8b7c6d5e4f3a2b1c:', 'volumeHandle: "v1:5C6F2A3B9D0E4F1A8B7C6D5E4F3A2B1C:',
     "is not v1:<Heketi volume ID>:<Heketi URL>"),
    # README.md's Command line section against the binary's --help.
    ("agreement: README lists a variable the binary does not read", "agreement", "README.md",
     "`GLUSTERFS_CSI_SYSTEMD_SOCKET`", "`GLUSTERFS_CSI_SYSTEMD_SOCKET_PATH`",
     "README.md: the Command line section does not list the variable GLUSTERFS_CSI_SYSTEMD_SOCKET"),
    ("agreement: README shows a flag without the binary's default", "agreement", "README.md",
     "[--cgroup-root /sys/fs/cgroup]", "[--cgroup-root /host/sys/fs/cgroup]",
     "README.md: the synopsis shows --cgroup-root /host/sys/fs/cgroup, the binary's default is /sys/fs/cgroup"),
    ("agreement: README misses a flag", "agreement", "README.md",
     " [--mount-placement auto|systemd|cgroup|none]", "",
     "README.md: the Command line synopsis does not show --mount-placement"),
    ("agreement: README offers a placement the binary lacks", "agreement", "README.md",
     "[--mount-placement auto|systemd|cgroup|none]", "[--mount-placement auto|systemd|none]",
     "the placements are auto|systemd|cgroup|none"),
    # libcurl4 is not linked (ldd does not show it) but dlopened: the check must still want it.
    ("ldd: the dlopened libcurl's package missing from the runtime stage", "ldd", "Dockerfile",
     "        libcurl4 \\\n", "",
     "the binary loads libcurl.so.4 with dlopen on first use (ldd does not show it); name its package "
     "libcurl4 in the runtime stage"),
    # libsystemd0 likewise: the node dlopens libsystemd.so.0 for systemd placement.
    ("ldd: the dlopened libsystemd's package missing from the runtime stage", "ldd", "Dockerfile",
     "        libsystemd0 \\\n", "",
     "the binary loads libsystemd.so.0 with dlopen on first use (ldd does not show it); name its package "
     "libsystemd0 in the runtime stage"),
    ("ldd: gRPC core no longer linked statically", "ldd", "Dockerfile",
     "ENV GLUSTERFS_CSI_STATIC_GRPC=1\n", "", "must set ENV GLUSTERFS_CSI_STATIC_GRPC=1"),
    ("ldd: glusterfs-client missing", "ldd", "Dockerfile",
     "        glusterfs-client \\\n", "", "/sbin/mount.glusterfs comes from glusterfs-client"),
    ("ldd: build without the static Swift stdlib", "ldd", "Dockerfile",
     "RUN swift build -c release --static-swift-stdlib --product", "RUN swift build -c release --product",
     "must run 'swift build -c release --static-swift-stdlib --product glusterfs-csi'"),
    ("ldd: another Debian release", "ldd", "Dockerfile",
     "FROM debian:bookworm-slim", "FROM debian:trixie-slim", "the runtime stage is FROM debian:trixie-slim"),
    # glusterfs-csi migrate writes exactly what the page and the example show for the walkthrough's claim.
    ("migrate: docs/migration.md step 6 not what the command writes", "migrate", "docs/migration.md",
     '      heketiClusterID: "630372ccdc720a92c681fb928f27b53f"\n', "",
     "docs/migration.md (step 6) differs from what `glusterfs-csi migrate in-tree.json` writes for claim "
     "default/legacy-data"),
    ("migrate: the example's claimRef not what the command writes", "migrate", "deploy/examples/migrated-pv.yaml",
     "    name: legacy-data\n", "    name: legacy-data-old\n",
     "deploy/examples/migrated-pv.yaml differs from what `glusterfs-csi migrate in-tree.json` writes"),
    ("docs: a StorageClass parameter left undocumented", "docs", "docs/storageclass.md",
     "| `snapfactor` |", "| `snapshot-factor` |", "does not document the StorageClass parameter `snapfactor`"),
    ("docs: a link to a heading that does not exist", "docs", "docs/security.md",
     "install.md#9-non-root-pods", "install.md#9-nonroot-pods", "link to install.md#9-nonroot-pods: no such heading"),
    ("docs: a path that does not exist", "docs", "docs/volume-id.md",
     "`deploy/examples/static-pv.yaml`", "`deploy/examples/static.yaml`",
     "mentions deploy/examples/static.yaml, which does not exist"),
]


@pytest.mark.parametrize("name, check_name, relative, old, new, expected", BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_each_check_catches_a_deliberate_breakage(binary, tree, name, check_name, relative, old, new, expected):
    tree.edit(relative, old, new)
    result = check(binary, check_name, root=tree.root)
    output = result.stdout + result.stderr
    assert result.returncode == 1, f"{check_name} did not fail:\n{output}"
    assert f"check-deploy: {check_name}: FAILED" in result.stdout, output
    assert expected in output, output


def test_docs_require_the_upgrade_page(binary, tree):
    tree.delete("docs/upgrade.md")
    result = check(binary, "docs", root=tree.root)
    assert result.returncode == 1, result.stdout
    assert "docs/upgrade.md is missing" in result.stdout, result.stdout


def test_docs_require_the_snapshot_page(binary, tree):
    tree.delete("docs/snapshots.md")
    result = check(binary, "docs", root=tree.root)
    assert result.returncode == 1, result.stdout
    assert "docs/snapshots.md is missing" in result.stdout, result.stdout


def test_agreement_requires_a_snapshotter_when_the_binary_offers_snapshots(binary, tree):
    """The driver offers CREATE_DELETE_SNAPSHOT: without the sidecar, VolumeSnapshots would wait forever."""
    import re

    path = tree.root / "deploy/base/controller.yaml"
    text, count = re.subn(r"        - name: csi-snapshotter\n.*?(?=        - name: liveness-probe\n)", "",
                          path.read_text(), flags=re.DOTALL)
    assert count == 1
    path.write_text(text)
    # Its Lease goes too, or the check stops at a lease no sidecar uses before asking the binary.
    tree.edit("deploy/base/rbac-controller.yaml",
              '    resourceNames: ["external-snapshotter-leader-glusterfs-csi-heketi-io"]\n', "")
    result = check(binary, "agreement", root=tree.root)
    assert result.returncode == 1, result.stdout
    assert "the binary offers snapshots (CREATE_DELETE_SNAPSHOT) but the pod has no csi-snapshotter" in result.stdout, \
        result.stdout


def test_docs_require_every_placement_on_the_upgrade_page(binary, tree):
    tree.edit_all("docs/upgrade.md", "`cgroup`", "cgroups")
    result = check(binary, "docs", root=tree.root)
    assert result.returncode == 1, result.stdout
    assert "docs/upgrade.md does not mention the mount placement `cgroup`" in result.stdout, result.stdout


def test_docs_require_the_readme_to_link_the_upgrade_page(binary, tree):
    tree.edit_all("README.md", "](docs/upgrade.md)", "](docs/install.md)")
    result = check(binary, "docs", root=tree.root)
    assert result.returncode == 1, result.stdout
    assert "README.md does not link docs/upgrade.md" in result.stdout, result.stdout


def test_agreement_requires_the_upgrade_page_to_quote_the_placement_line(binary, tree):
    """docs/upgrade.md tells admins which log line names a node's placement; the binary must log it."""
    tree.edit_all("docs/upgrade.md", "mount placement chosen", "placement selected")
    result = check(binary, "agreement", root=tree.root)
    assert result.returncode == 1, result.stdout
    assert "docs/upgrade.md does not quote the start-up line 'mount placement chosen'" in result.stdout, result.stdout


QUANTITIES = [
    # (as written, as the API server stores it: k8s.io/apimachinery resource.Quantity.String())
    ("10000", "10k"), ("10k", "10k"), ("1500", "1500"), ("15000", "15k"), ("1000m", "1"), ("0.5", "500m"),
    ("1.5", "1500m"), ("20m", "20m"), ("0.1m", "100u"), ("1024Mi", "1Gi"), ("64Mi", "64Mi"), ("1.5Gi", "1536Mi"),
    ("0.25Gi", "256Mi"), ("0.5Ki", "512"), ("1023Mi", "1023Mi"), ("65536Ki", "64Mi"), ("5G", "5G"), ("1e3", "1e3"),
    ("1E3", "1e3"), ("0", "0"), ("0Mi", "0"), ("1.5e3", "1500"), ("banana", None), ("1.2.3", None),
]


@pytest.mark.parametrize("written, stored", QUANTITIES, ids=[q[0] for q in QUANTITIES])
def test_canonical_quantity(written, stored):
    sys.path.insert(0, str(REPO / "scripts"))
    from deploycheck.kube import canonical_quantity

    assert canonical_quantity(written) == stored


def test_ldd_rejects_a_binary_that_needs_the_swift_runtime(binary, tree):
    """A binary built without --static-swift-stdlib loads libswiftCore.so from the toolchain,
    which no Debian package (and so no image) has. scripts/test's debug build is one."""
    debug = Path(os.environ.get("GLUSTERFS_CSI_BIN", REPO / ".build/debug/glusterfs-csi"))
    if not debug.exists():
        pytest.skip(f"no debug build at {debug}")
    result = check(binary, "ldd", root=tree.root, binary_override=debug)
    assert result.returncode == 1, result.stdout
    assert "libswiftCore.so" in result.stdout and "belongs to no Debian package" in result.stdout, result.stdout


def test_agreement_fails_when_the_binary_will_not_start_with_the_manifest_arguments(binary, tree):
    """A value the binary rejects (not only an unknown flag) stops it at start-up."""
    tree.edit("deploy/base/controller.yaml", "- --log-level=info", "- --log-level=verbose")
    result = check(binary, "agreement", root=tree.root)
    assert result.returncode == 1, result.stdout
    assert "exited with 64 when started with the manifest's arguments" in result.stdout, result.stdout
    assert "--log-level (GLUSTERFS_CSI_LOG_LEVEL) 'verbose'" in result.stdout, result.stdout


def test_unknown_check_names_are_refused():
    result = subprocess.run([sys.executable, str(SCRIPT), "lint"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown check 'lint'" in result.stderr


BROKEN_MIGRATE = """#!/bin/sh
# The real binary, except that `migrate` writes a PV the API server would reject.
if [ "$1" = migrate ]; then
    cat <<'YAML'
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv-x
spec:
  capacity:
    storage: 10240Mi
  accessModes: [ReadWriteMany]
  csi:
    driver: glusterfs.csi.heketi.io
    volumeHandle: "v1:5c6f2a3b9d0e4f1a8b7c6d5e4f3a2b1c:"
    volumeAttributs: {}
  claimRef: {namespace: default, name: x}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: x, namespace: default}
spec: {volumeName: pv-x, accessModes: [ReadWriteMany], resources: {requests: {storage: 10Gi}}}
YAML
    exit 0
fi
exec "%s" "$@"
"""


def test_migrate_validates_what_the_binary_writes(binary, tree, tmp_path):
    """The manifests of `glusterfs-csi migrate` go through the same schemas and quantity rules as deploy/."""
    fake = tmp_path / "glusterfs-csi"
    fake.write_text(BROKEN_MIGRATE % binary)
    fake.chmod(0o755)
    result = check(binary, "migrate", root=tree.root, binary_override=fake)
    assert result.returncode == 1, result.stdout
    assert "check-deploy: migrate: FAILED" in result.stdout, result.stdout
    assert "('volumeAttributs' was unexpected) (at spec/csi)" in result.stdout, result.stdout
    assert "spec.capacity.storage: write '10240Mi' as '10Gi'" in result.stdout, result.stdout
    assert "its output differs from Tests/MigrationTests/Fixtures/migrate/in-tree.yaml" in result.stdout, result.stdout
