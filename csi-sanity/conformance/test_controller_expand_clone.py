"""Controller service: ControllerExpandVolume and cloning (CreateVolume from a volume source; from a
snapshot source: test_snapshots.py)."""

import grpc
import pytest

from conftest import (GIB, TIMEOUT, expect_code, heketi_id, heketi_requests, rpc_error, unique,
                      unknown_snapshot_id, unknown_volume_id)
import csitools

EXPAND = "POST /volumes/{id}/expand"


def expand_request(pb, volume_id, size, secrets, capability=None):
    request = pb.ControllerExpandVolumeRequest(volume_id=volume_id, capacity_range=pb.CapacityRange(
        required_bytes=size), secrets=secrets)
    if capability is not None:
        request.volume_capability.CopyFrom(capability)
    return request


# --------------------------------------------------------------------------- ControllerExpandVolume


def test_expand_requires_a_volume_id_and_a_capacity_range(pb, controller, secrets, shared_volume):
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.ControllerExpandVolume,
                pb.ControllerExpandVolumeRequest(capacity_range=pb.CapacityRange(required_bytes=GIB), secrets=secrets))
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.ControllerExpandVolume,
                pb.ControllerExpandVolumeRequest(volume_id=shared_volume.volume_id, secrets=secrets))


@pytest.mark.parametrize("volume_id", ["invalid-volume-id", "unknown"])
def test_expand_of_a_volume_that_does_not_exist_is_not_found(pb, controller, secrets, volume_id):
    volume_id = unknown_volume_id() if volume_id == "unknown" else volume_id
    expect_code(grpc.StatusCode.NOT_FOUND, controller.ControllerExpandVolume,
                expand_request(pb, volume_id, 2 * GIB, secrets))


def test_expand_with_a_capability_glusterfs_cannot_honour_is_invalid(pb, controller, cap, secrets, shared_volume,
                                                                     heketi):
    before = heketi.volume(heketi_id(shared_volume))["size"]
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.ControllerExpandVolume,
                expand_request(pb, shared_volume.volume_id, 2 * GIB, secrets, cap(block=True)))
    assert heketi.volume(heketi_id(shared_volume))["size"] == before


def test_expand_grows_the_volume_in_heketi_and_gluster_once(pb, controller, cap, secrets, res, heketi):
    volume = res.create(unique("expand"))
    name = volume.volume_context["glusterVolume"]
    bricks_before = len(csitools.gluster_bricks(name))
    calls_before = heketi_requests(heketi, EXPAND)

    request = expand_request(pb, volume.volume_id, 2 * GIB, secrets, cap())
    response = controller.ControllerExpandVolume(request, timeout=TIMEOUT)
    assert response.capacity_bytes >= 2 * GIB
    # The node has no EXPAND_VOLUME capability, so nothing may be left for it to do.
    assert response.node_expansion_required is False
    assert heketi.volume(heketi_id(volume))["size"] == 2
    assert len(csitools.gluster_bricks(name)) > bricks_before, "gluster expands by adding bricks"

    # Idempotent: the same request, or a smaller size, changes nothing and answers the current size.
    for size in (2 * GIB, GIB):
        again = controller.ControllerExpandVolume(expand_request(pb, volume.volume_id, size, secrets),
                                                  timeout=TIMEOUT)
        assert again.capacity_bytes == response.capacity_bytes and not again.node_expansion_required
    assert heketi_requests(heketi, EXPAND) == calls_before + 1, "a repeated expansion must not expand again"
    assert heketi.volume(heketi_id(volume))["size"] == 2

    # Every other view of the volume reports the new size.
    got = controller.ControllerGetVolume(pb.ControllerGetVolumeRequest(volume_id=volume.volume_id), timeout=TIMEOUT)
    assert got.volume.capacity_bytes == response.capacity_bytes
    listed = controller.ListVolumes(pb.ListVolumesRequest(), timeout=TIMEOUT).entries
    assert [e.volume.capacity_bytes for e in listed if e.volume.volume_id == volume.volume_id] == [
        response.capacity_bytes]


def test_expand_beyond_the_limit_is_refused(pb, controller, secrets, shared_volume):
    request = pb.ControllerExpandVolumeRequest(
        volume_id=shared_volume.volume_id, capacity_range=pb.CapacityRange(required_bytes=3 * GIB, limit_bytes=2 * GIB),
        secrets=secrets)
    code = rpc_error(controller.ControllerExpandVolume, request).code()
    assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE)


# ---------------------------------------------------------------------------------------- clone


def volume_source(pb, volume_id):
    return pb.VolumeContentSource(volume=pb.VolumeContentSource.VolumeSource(volume_id=volume_id))


@pytest.mark.parametrize("source_id", ["invalid-volume-id", "unknown"])
def test_clone_of_a_source_that_does_not_exist_is_not_found(pb, controller, cap, params, secrets, heketi, source_id):
    source_id = unknown_volume_id() if source_id == "unknown" else source_id
    before = heketi.volume_ids()
    request = pb.CreateVolumeRequest(name=unique("clone-nosrc"), volume_capabilities=[cap()], parameters=params(),
                                     secrets=secrets, volume_content_source=volume_source(pb, source_id))
    expect_code(grpc.StatusCode.NOT_FOUND, controller.CreateVolume, request)
    assert heketi.volume_ids() == before


@pytest.mark.parametrize("snapshot_id", [
    "non-existing-snapshot-id", "unknown", "a volume's ID", "a volume's Heketi ID as a snapshot ID"])
def test_restore_of_a_snapshot_that_does_not_exist_is_not_found(pb, controller, cap, params, secrets, heketi, res,
                                                                shared_volume, snapshot_id):
    # CREATE_DELETE_SNAPSHOT: a snapshot source this driver does not know → NOT_FOUND.
    snapshot_id = {"unknown": unknown_snapshot_id(), "a volume's ID": shared_volume.volume_id,
                   "a volume's Heketi ID as a snapshot ID": "s1:" + shared_volume.volume_id.removeprefix("v1:")
                   }.get(snapshot_id, snapshot_id)
    before = heketi.volume_ids()
    request = pb.CreateVolumeRequest(
        name=unique("clone-snap"), volume_capabilities=[cap()], parameters=params(), secrets=secrets,
        volume_content_source=pb.VolumeContentSource(
            snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id=snapshot_id)))
    try:
        volume = controller.CreateVolume(request, timeout=TIMEOUT).volume
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND, f"{error.code().name}: {error.details()}"
        assert error.details()
    else:
        res.track_volume(volume.volume_id)  # not left behind for the leftovers check
        pytest.fail(f"expected NOT_FOUND, a volume was restored: {volume.volume_id}")
    assert heketi.volume_ids() == before


def test_clone_copies_the_data_survives_its_source_and_is_idempotent(pb, controller, cap, secrets, res, main_node,
                                                                     heketi):
    """Clones a 1 GiB volume holding a file into a 2 GiB volume (larger than its source: the spec wants
    the larger size and the data), deletes the source, then reads the file through the clone."""
    rwx = cap()
    source = res.create(unique("clone-src"))
    staging = res.stage(main_node, source, rwx, main_node.staging(res.test, "source"))
    target = res.publish(main_node, source, rwx, staging, "writer")
    (target / "from-source.txt").write_text("cloned data\n")
    res.unpublish(main_node, source, target)
    res.unstage(main_node, source, staging)

    request = pb.CreateVolumeRequest(
        name=unique("clone"), capacity_range=pb.CapacityRange(required_bytes=2 * GIB), volume_capabilities=[rwx],
        parameters={"volumetype": "none"}, secrets=secrets, volume_content_source=volume_source(pb, source.volume_id))
    clone = controller.CreateVolume(request, timeout=TIMEOUT).volume
    res.track_volume(clone.volume_id)
    assert clone.volume_id != source.volume_id
    assert clone.capacity_bytes >= 2 * GIB
    assert clone.content_source.volume.volume_id == source.volume_id, "the volume says where its content came from"
    assert heketi.volume(heketi_id(clone))["size"] == 2
    assert controller.CreateVolume(request, timeout=TIMEOUT).volume == clone, "a repeated clone is the same volume"

    controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=source.volume_id, secrets=secrets), timeout=TIMEOUT)
    staging = res.stage(main_node, clone, rwx, main_node.staging(res.test, "clone"))
    target = res.publish(main_node, clone, rwx, staging, "reader")
    assert (target / "from-source.txt").read_text() == "cloned data\n"
