"""The whole product on one machine: the real binary in `all` mode provisions through the
Heketi-compatible server in gluster mode (real GlusterFS volumes on directory bricks) and mounts
them with the glusterfs FUSE client."""

import os
import subprocess
from pathlib import Path

import grpc
import pytest

import heketi_testlib
from conftest import controller_args

GIB = 1 << 30
SECRETS = {"key": heketi_testlib.ADMIN_KEY}

problem = heketi_testlib.glusterd_problem()
pytestmark = pytest.mark.skipif(problem is not None, reason=problem or "")


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as table:
        points = [line.split()[4] for line in table]
    return [point for point in points if point.startswith(str(path))]


@pytest.fixture
def stack(csi, start_heketi, start_driver, short_dir):
    """Heketi (gluster mode) + driver (all mode); unmounts anything a failed test left behind."""
    heketi = start_heketi("--mode", "gluster", "--brick-root", str(short_dir / "bricks"))
    driver = start_driver(*controller_args(heketi, "--mode", "all", "--mount-log-dir", str(short_dir / "logs")))
    channel = driver.channel()

    class Stack:
        pass

    stack = Stack()
    stack.heketi, stack.driver, stack.dir = heketi, driver, short_dir
    stack.controller = csi.grpc.ControllerStub(channel)
    stack.node = csi.grpc.NodeStub(channel)
    yield stack
    for point in sorted(mounts_under(short_dir), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def capability(csi, mode):
    return csi.pb.VolumeCapability(
        mount=csi.pb.VolumeCapability.MountVolume(), access_mode=csi.pb.VolumeCapability.AccessMode(mode=mode))


def test_provision_stage_publish_share_data_and_clean_up(csi, stack):
    rwx = capability(csi, csi.pb.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER)
    volume = stack.controller.CreateVolume(csi.pb.CreateVolumeRequest(
        name="pvc-e2e", capacity_range=csi.pb.CapacityRange(required_bytes=GIB), volume_capabilities=[rwx],
        parameters={"volumetype": "replicate:3"}, secrets=SECRETS), timeout=120).volume
    heketi_volume = stack.heketi.volume(volume.volume_context["heketiVolumeID"])
    staging = stack.dir / "staging/pv"
    targets = [stack.dir / f"pods/{name}/mount" for name in ("a", "b", "ro")]

    stack.node.NodeStageVolume(csi.pb.NodeStageVolumeRequest(
        volume_id=volume.volume_id, staging_target_path=str(staging), volume_capability=rwx,
        volume_context=volume.volume_context), timeout=120)
    for target in targets[:2]:
        stack.node.NodePublishVolume(csi.pb.NodePublishVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(staging), target_path=str(target),
            volume_capability=rwx, volume_context=volume.volume_context), timeout=60)
    stack.node.NodePublishVolume(csi.pb.NodePublishVolumeRequest(
        volume_id=volume.volume_id, staging_target_path=str(staging), target_path=str(targets[2]),
        volume_capability=rwx, readonly=True, volume_context=volume.volume_context), timeout=60)

    (targets[0] / "hello.txt").write_text("written through pod a\n")
    assert (targets[1] / "hello.txt").read_text() == "written through pod a\n"
    for brick in heketi_volume["bricks"]:
        assert (Path(brick["path"]) / "hello.txt").read_text() == "written through pod a\n"
    with pytest.raises(OSError):
        (targets[2] / "nope.txt").write_text("read-only publish must refuse this")

    stats = stack.node.NodeGetVolumeStats(csi.pb.NodeGetVolumeStatsRequest(
        volume_id=volume.volume_id, volume_path=str(targets[0])))
    assert any(usage.total > 0 for usage in stats.usage)
    assert not stats.volume_condition.abnormal

    for target in targets:
        stack.node.NodeUnpublishVolume(csi.pb.NodeUnpublishVolumeRequest(
            volume_id=volume.volume_id, target_path=str(target)), timeout=60)
    stack.node.NodeUnstageVolume(csi.pb.NodeUnstageVolumeRequest(
        volume_id=volume.volume_id, staging_target_path=str(staging)), timeout=60)
    assert mounts_under(stack.dir) == []
    stack.controller.DeleteVolume(csi.pb.DeleteVolumeRequest(volume_id=volume.volume_id, secrets=SECRETS), timeout=120)
    assert not heketi_testlib.gluster_volume_exists(heketi_volume["name"])
    leftover = subprocess.run(["pgrep", "-f", f"volfile-id={heketi_volume['name']}"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


def test_a_static_pv_with_the_minimal_context_mounts(csi, stack):
    rwx = capability(csi, csi.pb.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER)
    volume = stack.controller.CreateVolume(csi.pb.CreateVolumeRequest(
        name="pvc-static", volume_capabilities=[rwx], parameters={"volumetype": "none"}, secrets=SECRETS),
        timeout=120).volume
    hosts = volume.volume_context["glusterHosts"]
    static_context = {"server": hosts, "volume": volume.volume_context["glusterVolume"]}
    staging = stack.dir / "static-staging"
    stack.node.NodeStageVolume(csi.pb.NodeStageVolumeRequest(
        volume_id="static-pv-1", staging_target_path=str(staging), volume_capability=rwx,
        volume_context=static_context), timeout=120)
    assert mounts_under(staging) == [str(staging)]
    (staging / "static.txt").write_text("ok")
    stack.node.NodeUnstageVolume(csi.pb.NodeUnstageVolumeRequest(
        volume_id="static-pv-1", staging_target_path=str(staging)), timeout=60)
    assert mounts_under(staging) == []
