"""The node plugin touches only what it owns (issue 14, parts 1 and 2), checked on the real binary:

- every staging, target and volume path must lie strictly under --kubelet-dir, after resolving
  symlinks: anything else is INVALID_ARGUMENT naming the directory and the flag, and nothing is
  unmounted or removed;
- NodeUnpublishVolume and NodeUnstageVolume unmount only what this driver mounts (fuse.glusterfs,
  or a bind mount of one): another file system mounted there is FAILED_PRECONDITION naming it, and
  stays mounted; a path with nothing mounted is OK, as before (idempotency).

The driver runs in a mount namespace of its own (`unshare -m --propagation private`, which execs
it, so the process conftest starts is the driver): a driver that unmounted /proc or / anyway would
do it there, not on this machine. The test's own mounts (tmpfs, a bind mount) are made before it
starts, so its namespace holds copies of them. The mount table checked is the driver's
(/proc/<driver pid>/mountinfo), and this process's for the mounts of the test and / and /proc.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from conftest import driver_binary, driver_knows
from restart_system import mount_table, mounts_under

PRIVATE_NAMESPACE = ["unshare", "--mount", "--propagation", "private", "--"]
FLAG = "--kubelet-dir"
VARIABLE = "GLUSTERFS_CSI_KUBELET_DIR"


def require_the_flag():
    if not driver_knows(FLAG):
        pytest.skip(f"{driver_binary()} --help does not list {FLAG}: a build from before confinement (issue 14)")


def capability(csi):
    mode = csi.pb.VolumeCapability.AccessMode
    return csi.pb.VolumeCapability(mount=csi.pb.VolumeCapability.MountVolume(),
                                   access_mode=mode(mode=mode.MULTI_NODE_MULTI_WRITER))


def mount(*args: str):
    result = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"mount {' '.join(args)}: {result.stderr.strip()}"


def unmount_all_under(path: Path):
    """Deepest first; lazily when a plain unmount fails (clean-up must not stop)."""
    for point in sorted(mounts_under(path), reverse=True):
        if subprocess.run(["umount", point], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)


class Node:
    """A node-mode driver confined to `kubelet`, in a private mount namespace, and the test's
    fixtures under `kubelet`: symlinks leading out of it and foreign mounts inside it."""

    def __init__(self, csi, driver, root: Path, sources: dict[str, str]):
        self.csi, self.driver, self.root = csi, driver, root
        self.sources = sources  # the foreign tmpfs mounts: path under the kubelet dir -> source name
        self.stub = csi.grpc.NodeStub(driver.channel())

    @property
    def kubelet(self) -> Path:
        return self.root / "kubelet"

    def driver_table(self) -> str:
        """The driver's mount table, raw: mount IDs included, so an unmount and remount shows too."""
        return Path(f"/proc/{self.driver.process.pid}/mountinfo").read_text()

    def host_table(self) -> list[dict]:
        """Where this process sees /, /proc and the test's mounts (the rest of the machine may change)."""
        return [m for m in mount_table() if m["point"] in ("/", "/proc") or m["point"].startswith(str(self.root))]

    def driver_mount_at(self, path: Path) -> dict | None:
        found = [m for m in mount_table(f"/proc/{self.driver.process.pid}/mountinfo") if m["point"] == str(path)]
        return found[-1] if found else None

    def unpublish(self, path: str):
        return self.stub.NodeUnpublishVolume(self.csi.pb.NodeUnpublishVolumeRequest(
            volume_id="confinement-volume", target_path=path), timeout=30)

    def unstage(self, path: str):
        return self.stub.NodeUnstageVolume(self.csi.pb.NodeUnstageVolumeRequest(
            volume_id="confinement-volume", staging_target_path=path), timeout=30)

    def refused(self, call, *args) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as error:
            call(*args)
        return error.value


@pytest.fixture
def node(csi, start_driver, short_dir):
    require_the_flag()
    if os.geteuid() != 0:
        pytest.skip("needs root: the test mounts tmpfs and runs the driver in a mount namespace of its own")
    if shutil.which("unshare") is None or subprocess.run([*PRIVATE_NAMESPACE, "true"], capture_output=True,
                                                         timeout=30).returncode != 0:
        pytest.skip("unshare --mount does not work here; hostile paths are only sent to a driver in a private "
                    "mount namespace")
    kubelet = short_dir / "kubelet"
    outside = short_dir / "outside"
    for directory in (kubelet / "pods/empty/mount", kubelet / "plugins/empty/globalmount",
                      kubelet / "pods/foreign/mount", kubelet / "plugins/foreign/globalmount",
                      kubelet / "pods/bound/mount", outside):
        directory.mkdir(parents=True)
    (outside / "precious.txt").write_text("outside the kubelet directory\n")
    (kubelet / "proc-link").symlink_to("/proc")
    (kubelet / "pods/escape").symlink_to(outside)
    tag = secrets.token_hex(4)
    sources = {"pods/foreign/mount": f"gcsi-foreign-pod-{tag}",
               "plugins/foreign/globalmount": f"gcsi-foreign-stage-{tag}"}
    try:
        for relative, source in sources.items():
            mount("-t", "tmpfs", "-o", "size=1m,mode=0755", source, str(kubelet / relative))
            (kubelet / relative / "data.txt").write_text(f"kept in {source}\n")
        mount("--bind", str(outside), str(kubelet / "pods/bound/mount"))
        driver = start_driver("--mode", "node", "--node-id", "confinement-node", "--mount-log-dir",
                              str(short_dir / "logs"), "--log-level", "debug", FLAG, str(kubelet),
                              prefix=PRIVATE_NAMESPACE)
        namespace = os.readlink(f"/proc/{driver.process.pid}/ns/mnt")
        # Never send a hostile path to a driver in this process's own mount namespace.
        assert namespace != os.readlink("/proc/self/ns/mnt"), "the driver does not run in a mount namespace of its own"
        yield Node(csi, driver, short_dir, sources)
        driver.terminate()
    finally:
        unmount_all_under(short_dir)


# Paths that break the rule every path of a node request keeps (absolute, no '.', '..', '//', not
# "/"): refused by that rule before the kubelet directory is looked at, with a message naming it.
UNCLEAN = {"/", "'..' out of it", "'..' next to it"}


def outside_paths(kubelet: Path) -> dict[str, str]:
    """Paths that are not strictly under `kubelet`, each the way a client could name it."""
    return {
        "/proc": "/proc",
        "/": "/",
        "/tmp": "/tmp",
        "the kubelet directory itself": str(kubelet),
        "a symlink under it to /proc": str(kubelet / "proc-link"),
        "through a symlinked directory under it": str(kubelet / "pods/escape/mount"),
        "'..' out of it": str(kubelet / "pods") + "/.." * len(kubelet.parts) + "/proc",
        "'..' next to it": f"{kubelet}/../outside",
    }


CASES = list(outside_paths(Path("/kubelet")))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("method", ["NodeUnpublishVolume", "NodeUnstageVolume"])
def test_a_path_outside_the_kubelet_dir_is_refused_and_nothing_is_unmounted(node, method, case):
    path = outside_paths(node.kubelet)[case]
    before, host_before = node.driver_table(), node.host_table()
    call = node.unpublish if method == "NodeUnpublishVolume" else node.unstage
    error = node.refused(call, path)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{path}: {error.code().name}: {error.details()}"
    if case in UNCLEAN:
        assert "clean path" in error.details() and f"'{path}'" in error.details(), error.details()
    else:
        assert f"{path} " in error.details(), error.details()
        assert str(node.kubelet) in error.details() and FLAG in error.details(), error.details()
    assert node.driver_table() == before, f"{method} {path} changed the driver's mount table"
    assert node.host_table() == host_before
    assert (node.root / "outside/precious.txt").exists()
    assert os.path.islink(node.kubelet / "proc-link") and os.path.islink(node.kubelet / "pods/escape")


def test_stage_publish_and_stats_refuse_a_path_outside_too(csi, node):
    before = node.driver_table()
    context = {"glusterHosts": "127.0.0.1", "glusterVolume": "confinement"}
    inside_staging, inside_target = node.kubelet / "plugins/empty/globalmount", node.kubelet / "pods/empty/mount"
    calls = {
        "NodeStageVolume staging /proc": lambda: node.stub.NodeStageVolume(csi.pb.NodeStageVolumeRequest(
            volume_id="confinement-volume", staging_target_path="/proc", volume_capability=capability(csi),
            volume_context=context), timeout=30),
        "NodePublishVolume target /proc": lambda: node.stub.NodePublishVolume(csi.pb.NodePublishVolumeRequest(
            volume_id="confinement-volume", staging_target_path=str(inside_staging), target_path="/proc",
            volume_capability=capability(csi), volume_context=context), timeout=30),
        "NodePublishVolume staging /proc": lambda: node.stub.NodePublishVolume(csi.pb.NodePublishVolumeRequest(
            volume_id="confinement-volume", staging_target_path="/proc", target_path=str(inside_target),
            volume_capability=capability(csi), volume_context=context), timeout=30),
    }
    for what, call in calls.items():
        error = node.refused(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{what}: {error.code().name}: {error.details()}"
        assert str(node.kubelet) in error.details() and FLAG in error.details(), f"{what}: {error.details()}"
    # No volume of this driver is outside the kubelet directory: for stats that is "not found"
    # (upstream csi-sanity asks NOT_FOUND for a volume_path where the volume is not).
    error = node.refused(lambda: node.stub.NodeGetVolumeStats(csi.pb.NodeGetVolumeStatsRequest(
        volume_id="confinement-volume", volume_path="/proc"), timeout=30))
    assert error.code() == grpc.StatusCode.NOT_FOUND, f"{error.code().name}: {error.details()}"
    assert str(node.kubelet) in error.details(), error.details()
    assert node.driver_table() == before
    assert not (node.kubelet / "pods/empty/mount").is_mount()


@pytest.mark.parametrize("method, relative", [
    ("NodeUnpublishVolume", "pods/foreign/mount"),
    ("NodeUnstageVolume", "plugins/foreign/globalmount"),
], ids=["NodeUnpublishVolume", "NodeUnstageVolume"])
def test_a_tmpfs_under_the_kubelet_dir_is_not_this_drivers_and_stays_mounted(node, method, relative):
    path = node.kubelet / relative
    source = node.sources[relative]
    before = node.driver_table()
    call = node.unpublish if method == "NodeUnpublishVolume" else node.unstage
    for _ in range(2):  # a retry by kubelet changes nothing either
        error = node.refused(call, str(path))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, f"{error.code().name}: {error.details()}"
        assert "tmpfs" in error.details() and source in error.details(), error.details()
    assert node.driver_table() == before, f"{method} changed the driver's mount table"
    assert node.driver_mount_at(path)["fstype"] == "tmpfs", "the tmpfs is gone from the driver's namespace"
    assert (path / "data.txt").read_text() == f"kept in {source}\n"


def test_a_bind_mount_of_another_file_system_is_not_this_drivers(node):
    path = node.kubelet / "pods/bound/mount"
    fstype = node.driver_mount_at(path)["fstype"]
    assert not fstype.startswith("fuse"), f"the bind mount's file system is {fstype}; this test needs another"
    before = node.driver_table()
    error = node.refused(node.unpublish, str(path))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, f"{error.code().name}: {error.details()}"
    assert fstype in error.details(), error.details()
    assert node.driver_table() == before
    assert (path / "precious.txt").exists()


def test_a_path_under_the_kubelet_dir_with_nothing_mounted_is_ok(node):
    before = node.driver_table()
    for _ in range(2):  # idempotent
        node.unpublish(str(node.kubelet / "pods/empty/mount"))
        node.unpublish(str(node.kubelet / "pods/never-made/mount"))
        node.unstage(str(node.kubelet / "plugins/empty/globalmount"))
        node.unstage(str(node.kubelet / "plugins/never-made/globalmount"))
    assert node.driver_table() == before
    # Everything of the test's own is still there.
    assert (node.kubelet / "pods/foreign/mount/data.txt").exists()
    assert (node.root / "outside/precious.txt").exists()


def test_the_variable_sets_the_kubelet_dir_too(csi, start_driver, short_dir):
    require_the_flag()
    kubelet = short_dir / "from-variable"
    kubelet.mkdir()
    driver = start_driver("--mode", "node", "--node-id", "confinement-node", "--mount-log-dir",
                          str(short_dir / "logs"), env={VARIABLE: str(kubelet)})
    stub = csi.grpc.NodeStub(driver.channel())
    with pytest.raises(grpc.RpcError) as error:
        stub.NodeUnpublishVolume(csi.pb.NodeUnpublishVolumeRequest(
            volume_id="confinement-volume", target_path=str(short_dir / "elsewhere")), timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(kubelet) in error.value.details()
    stub.NodeUnpublishVolume(csi.pb.NodeUnpublishVolumeRequest(
        volume_id="confinement-volume", target_path=str(kubelet / "pods/x/mount")), timeout=30)


@pytest.mark.parametrize("mode", ["node", "all"])
@pytest.mark.parametrize("problem", ["missing", "relative", "a file"])
def test_a_node_does_not_start_without_its_kubelet_dir(short_dir, mode, problem):
    require_the_flag()
    (short_dir / "file").write_text("not a directory\n")
    value = {"missing": str(short_dir / "missing"), "relative": "var/lib/kubelet", "a file": str(short_dir / "file")}
    result = subprocess.run([str(driver_binary()), "--endpoint", f"unix://{short_dir}/csi.sock", "--mode", mode,
                             "--mount-log-dir", str(short_dir / "logs"), FLAG, value[problem]],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert FLAG in result.stderr, result.stderr


def test_a_controller_does_not_need_the_kubelet_dir(csi, start_driver, short_dir):
    """The controller pod mounts no kubelet directory: the flag's default must not stop it."""
    require_the_flag()
    driver = start_driver("--mode", "controller", FLAG, str(short_dir / "missing"))
    assert csi.grpc.IdentityStub(driver.channel()).Probe(csi.pb.ProbeRequest()).ready.value
