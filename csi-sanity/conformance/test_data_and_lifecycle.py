"""What upstream csi-sanity does not check: data actually flows through publications, two nodes share
one RWX volume, an expanded volume keeps serving, and a full lifecycle leaves nothing in Heketi,
gluster, the mount table or the process table."""

import os
import time
from pathlib import Path

import pytest

from conftest import GIB, TIMEOUT, heketi_id, statvfs_usage, unique
import csitools


def eventually(condition, seconds: float = 10) -> bool:
    """Whether `condition()` holds within `seconds` (a FUSE client exits shortly after its unmount)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def replicated(params):
    return params(volumetype="replicate:3")


def bricks_of(heketi, volume) -> list[Path]:
    return [Path(brick["path"]) for brick in heketi.volume(heketi_id(volume))["bricks"]]


def test_data_written_through_one_target_is_read_through_the_others_and_on_every_brick(cap, params, res, main_node,
                                                                                     heketi):
    rwx = cap()
    volume = res.create(unique("data"), parameters=replicated(params))
    staging = res.stage(main_node, volume, rwx)
    writer = res.publish(main_node, volume, rwx, staging, "writer")
    reader = res.publish(main_node, volume, rwx, staging, "reader")
    viewer = res.publish(main_node, volume, rwx, staging, "viewer", readonly=True)

    payload = os.urandom(256 << 10)
    (writer / "payload.bin").write_bytes(payload)
    (writer / "dir").mkdir()
    (writer / "dir" / "note.txt").write_text("hello from pod writer\n")
    assert (reader / "payload.bin").read_bytes() == payload
    assert (viewer / "dir" / "note.txt").read_text() == "hello from pod writer\n"
    (reader / "dir" / "note.txt").write_text("changed by pod reader\n")
    assert (writer / "dir" / "note.txt").read_text() == "changed by pod reader\n"
    with pytest.raises(OSError):
        (viewer / "refused.txt").write_text("read-only")

    # replicate:3: every brick holds a full copy.
    bricks = bricks_of(heketi, volume)
    assert len(bricks) == 3
    for brick in bricks:
        assert (brick / "payload.bin").read_bytes() == payload, f"brick {brick}"
        assert (brick / "dir" / "note.txt").read_text() == "changed by pod reader\n"

    (reader / "payload.bin").unlink()
    assert not (writer / "payload.bin").exists()


def test_two_nodes_use_one_rwx_volume_at_once(pb, cap, params, res, two_nodes):
    """Two node plugins (own processes, node IDs and staging dirs, as on two Kubernetes nodes) stage and
    publish the same MULTI_NODE_MULTI_WRITER volume at the same time; each sees what the other writes."""
    rwx = cap("MULTI_NODE_MULTI_WRITER")
    volume = res.create(unique("two-nodes"), parameters=replicated(params))
    node_b, node_c = two_nodes
    ids = {handle.stub.NodeGetInfo(pb.NodeGetInfoRequest(), timeout=TIMEOUT).node_id for handle in two_nodes}
    assert ids == {"sanity-node-b", "sanity-node-c"}

    targets = {}
    for handle in two_nodes:
        staging = res.stage(handle, volume, rwx)
        targets[handle.name] = res.publish(handle, volume, rwx, staging, "app")
    staged = [m for m in csitools.mounts() if m["fstype"] == "fuse.glusterfs"
              and m["point"] in {str(node_b.staging(res.test)), str(node_c.staging(res.test))}]
    assert len({m["device"] for m in staged}) == 2, "each node has its own glusterfs client"

    (targets["node-b"] / "from-b.txt").write_text("written on node b\n")
    (targets["node-c"] / "from-c.txt").write_text("written on node c\n")
    assert (targets["node-c"] / "from-b.txt").read_text() == "written on node b\n"
    assert (targets["node-b"] / "from-c.txt").read_text() == "written on node c\n"
    payload = os.urandom(1 << 20)
    (targets["node-c"] / "big.bin").write_bytes(payload)
    assert (targets["node-b"] / "big.bin").read_bytes() == payload

    # One node leaving does not disturb the other.
    res.unpublish(node_b, volume, targets["node-b"])
    res.unstage(node_b, volume, node_b.staging(res.test))
    assert csitools.mounts_under(node_b.base / res.test) == []
    assert (targets["node-c"] / "from-b.txt").read_text() == "written on node b\n"
    (targets["node-c"] / "after-b-left.txt").write_text("still writable\n")


def test_an_expanded_volume_keeps_serving_while_published(pb, controller, node, cap, params, secrets, res, main_node,
                                                         heketi):
    """Online expansion of a published volume: ControllerExpandVolume answers the new capacity, Heketi
    and gluster hold the new size and bricks, the live mount keeps its data and takes new writes, and
    NodeGetVolumeStats keeps answering truthfully (what statvfs of the mount says).

    Limitation, stated rather than faked: NodeGetVolumeStats cannot show the new size here. The test
    bricks are directories on one filesystem, and gluster's statfs of a volume whose bricks share a
    filesystem reports that filesystem's size (divided by the bricks sharing it, shared-brick-count),
    not the volume's Heketi size, before and after the expansion alike. With real Heketi every brick is
    its own thin LV of the brick size, and the same statvfs path would report the grown volume."""
    rwx = cap()
    volume = res.create(unique("grow"))
    staging = res.stage(main_node, volume, rwx)
    target = res.publish(main_node, volume, rwx, staging, "app")
    (target / "before.txt").write_text("written before the expansion\n")
    bricks_before = len(csitools.gluster_bricks(volume.volume_context["glusterVolume"]))

    response = controller.ControllerExpandVolume(pb.ControllerExpandVolumeRequest(
        volume_id=volume.volume_id, capacity_range=pb.CapacityRange(required_bytes=2 * GIB), volume_capability=rwx,
        secrets=secrets), timeout=TIMEOUT)
    assert response.capacity_bytes == 2 * GIB and not response.node_expansion_required
    assert heketi.volume(heketi_id(volume))["size"] == 2
    assert len(csitools.gluster_bricks(volume.volume_context["glusterVolume"])) == 2 * bricks_before

    assert (target / "before.txt").read_text() == "written before the expansion\n"
    for index in range(20):  # enough names that the distribute layer places some on the new brick
        (target / f"after-{index}.txt").write_text(f"{index}\n")
    assert sorted(os.listdir(target)) == sorted(["before.txt"] + [f"after-{i}.txt" for i in range(20)])

    stats = node.NodeGetVolumeStats(pb.NodeGetVolumeStatsRequest(
        volume_id=volume.volume_id, volume_path=str(target), staging_target_path=str(staging)), timeout=TIMEOUT)
    assert not stats.volume_condition.abnormal
    reported = {pb.VolumeUsage.Unit.Name(u.unit): u.total for u in stats.usage}
    assert (reported["BYTES"], reported["INODES"]) == statvfs_usage(target)


def test_full_lifecycle_leaves_nothing_behind(pb, controller, node, cap, params, secrets, res, main_node, heketi,
                                              env):
    """Create → validate → stage → publish → use → unpublish → unstage → delete, each call twice (a CO
    retry); afterwards Heketi (GET /volumes), gluster (volume list), /proc/self/mountinfo and the process
    table hold nothing of the volume."""
    rwx = cap()
    request = pb.CreateVolumeRequest(name=unique("lifecycle"), capacity_range=pb.CapacityRange(required_bytes=GIB),
                                     volume_capabilities=[rwx], parameters=replicated(params), secrets=secrets)
    volume = controller.CreateVolume(request, timeout=TIMEOUT).volume
    res.track_volume(volume.volume_id)
    assert controller.CreateVolume(request, timeout=TIMEOUT).volume == volume
    name = volume.volume_context["glusterVolume"]
    bricks = bricks_of(heketi, volume)
    assert heketi_id(volume) in heketi.volume_ids() and name in csitools.gluster_volumes()

    validate = pb.ValidateVolumeCapabilitiesRequest(volume_id=volume.volume_id, volume_capabilities=[rwx],
                                                    volume_context=volume.volume_context, secrets=secrets)
    assert controller.ValidateVolumeCapabilities(validate, timeout=TIMEOUT).HasField("confirmed")

    staging = main_node.staging(res.test)
    for _ in range(2):
        res.stage(main_node, volume, rwx, staging)
    for _ in range(2):
        target = res.publish(main_node, volume, rwx, staging, "app")
    (target / "file.txt").write_text("lifecycle\n")
    assert (staging / "file.txt").read_text() == "lifecycle\n"
    assert csitools.client_processes(name), "a glusterfs client serves the staged volume"

    for _ in range(2):
        res.unpublish(main_node, volume, target)
    for _ in range(2):
        res.unstage(main_node, volume, staging)
    for _ in range(2):
        controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=volume.volume_id, secrets=secrets), timeout=TIMEOUT)

    assert heketi_id(volume) not in heketi.volume_ids(), "Heketi still lists the volume"
    assert name not in csitools.gluster_volumes(), "gluster still has the volume"
    assert csitools.mounts_under(main_node.base / res.test) == [], "something is still mounted"
    assert [m for m in csitools.mounts() if name in m["source"]] == [], "the volume is still mounted somewhere"
    assert eventually(lambda: csitools.client_processes(name) == []), "a glusterfs client of the volume still runs"
    for brick in bricks:
        assert str(brick).startswith(str(env.brick_root)) and not brick.exists(), f"brick {brick} left behind"
