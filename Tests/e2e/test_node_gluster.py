"""The whole product on one machine: the real binary in `all` mode provisions through the
Heketi-compatible server in gluster mode (real GlusterFS volumes on directory bricks) and mounts
them with the glusterfs FUSE client."""

import os
import subprocess
import time
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


def provision(csi, stack, name, volumetype="replicate:3"):
    rwx = capability(csi, csi.pb.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER)
    volume = stack.controller.CreateVolume(csi.pb.CreateVolumeRequest(
        name=name, volume_capabilities=[rwx], parameters={"volumetype": volumetype}, secrets=SECRETS),
        timeout=120).volume
    return volume, rwx


def stage(csi, stack, volume, rwx, staging, **extra):
    return stack.node.NodeStageVolume(csi.pb.NodeStageVolumeRequest(
        volume_id=volume.volume_id, staging_target_path=str(staging), volume_capability=rwx,
        volume_context=volume.volume_context, **extra), timeout=120)


def publish(csi, stack, volume, rwx, staging, target):
    return stack.node.NodePublishVolume(csi.pb.NodePublishVolumeRequest(
        volume_id=volume.volume_id, staging_target_path=str(staging), target_path=str(target),
        volume_capability=rwx, volume_context=volume.volume_context), timeout=60)


def test_every_node_call_is_idempotent(csi, stack):
    volume, rwx = provision(csi, stack, "pvc-idem")
    staging, target = stack.dir / "idem-staging", stack.dir / "idem-pod/mount"
    for _ in range(2):
        stage(csi, stack, volume, rwx, staging)
    for _ in range(2):
        publish(csi, stack, volume, rwx, staging, target)
    assert mounts_under(stack.dir) == [str(staging), str(target)]
    for _ in range(2):
        stack.node.NodeUnpublishVolume(csi.pb.NodeUnpublishVolumeRequest(
            volume_id=volume.volume_id, target_path=str(target)), timeout=60)
        stack.node.NodeUnstageVolume(csi.pb.NodeUnstageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(staging)), timeout=60)
    assert mounts_under(stack.dir) == []


def test_a_killed_client_is_reported_and_recovered(csi, stack):
    volume, rwx = provision(csi, stack, "pvc-heal")
    staging, target = stack.dir / "heal-staging", stack.dir / "heal-pod/mount"
    stage(csi, stack, volume, rwx, staging)
    publish(csi, stack, volume, rwx, staging, target)
    (target / "kept.txt").write_text("survives the client's death")

    client = subprocess.run(["pgrep", "-f", f"glusterfs.*{staging}"], capture_output=True, text=True).stdout.split()
    assert client, "the glusterfs client of the staged volume should be running"
    for pid in client:
        os.kill(int(pid), 9)

    deadline = time.monotonic() + 10
    while True:
        stats = stack.node.NodeGetVolumeStats(csi.pb.NodeGetVolumeStatsRequest(
            volume_id=volume.volume_id, volume_path=str(target)), timeout=30)
        if stats.volume_condition.abnormal or time.monotonic() > deadline:
            break
    assert stats.volume_condition.abnormal
    assert stats.volume_condition.message

    # kubelet's next NodeStage/NodePublish repairs the mounts; the data is back.
    stage(csi, stack, volume, rwx, staging)
    publish(csi, stack, volume, rwx, staging, target)
    assert (target / "kept.txt").read_text() == "survives the client's death"

    stack.node.NodeUnpublishVolume(csi.pb.NodeUnpublishVolumeRequest(
        volume_id=volume.volume_id, target_path=str(target)), timeout=60)
    stack.node.NodeUnstageVolume(csi.pb.NodeUnstageVolumeRequest(
        volume_id=volume.volume_id, staging_target_path=str(staging)), timeout=60)
    assert mounts_under(stack.dir) == []


def test_unpublish_and_unstage_work_on_a_dead_mount(csi, stack):
    volume, rwx = provision(csi, stack, "pvc-dead")
    staging, target = stack.dir / "dead-staging", stack.dir / "dead-pod/mount"
    stage(csi, stack, volume, rwx, staging)
    publish(csi, stack, volume, rwx, staging, target)
    for pid in subprocess.run(["pgrep", "-f", f"glusterfs.*{staging}"], capture_output=True, text=True).stdout.split():
        os.kill(int(pid), 9)
    stack.node.NodeUnpublishVolume(csi.pb.NodeUnpublishVolumeRequest(
        volume_id=volume.volume_id, target_path=str(target)), timeout=60)
    stack.node.NodeUnstageVolume(csi.pb.NodeUnstageVolumeRequest(
        volume_id=volume.volume_id, staging_target_path=str(staging)), timeout=60)
    assert mounts_under(stack.dir) == []


def test_a_bad_mount_option_and_a_missing_volume_say_what_is_wrong(csi, stack):
    volume, rwx = provision(csi, stack, "pvc-opts")
    with_bad_flag = csi.pb.VolumeCapability()
    with_bad_flag.CopyFrom(rwx)
    with_bad_flag.mount.mount_flags.append("log-file=/etc/passwd")
    with pytest.raises(grpc.RpcError) as bad_option:
        stack.node.NodeStageVolume(csi.pb.NodeStageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(stack.dir / "opt-staging"),
            volume_capability=with_bad_flag, volume_context=volume.volume_context), timeout=60)
    assert bad_option.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "log-file" in bad_option.value.details()

    missing = dict(volume.volume_context, glusterVolume="no-such-volume")
    with pytest.raises(grpc.RpcError) as no_volume:
        stack.node.NodeStageVolume(csi.pb.NodeStageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(stack.dir / "missing-staging"),
            volume_capability=rwx, volume_context=missing), timeout=120)
    # The client log's last lines are appended, as the in-tree plugin did: admins debug with them.
    assert "no-such-volume" in no_volume.value.details()
    assert "last lines of the glusterfs client log" in no_volume.value.details()
    assert mounts_under(stack.dir) == []
