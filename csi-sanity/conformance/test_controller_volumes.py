"""Controller service: CreateVolume, DeleteVolume, ValidateVolumeCapabilities, ControllerGetVolume
(CSI v1.12 "Controller Service RPC"). Required fields, invalid and unknown IDs, idempotency, and what
Heketi and gluster hold afterwards."""

import os

import grpc
import pytest

from conftest import GIB, TIMEOUT, expect_code, heketi_id, rpc_error, unique, unknown_volume_id
import csitools

ACCESS_MODES = ["SINGLE_NODE_WRITER", "SINGLE_NODE_READER_ONLY", "MULTI_NODE_READER_ONLY", "MULTI_NODE_SINGLE_WRITER",
                "MULTI_NODE_MULTI_WRITER", "SINGLE_NODE_SINGLE_WRITER", "SINGLE_NODE_MULTI_WRITER"]
INVALID_IDS = ["invalid-volume-id", "v1:not-hex:", "v2:" + "0" * 32 + ":", "x" * 200]


def create_request(pb, name, cap, params, secrets, capacity=GIB, limit=0, capabilities=None):
    return pb.CreateVolumeRequest(
        name=name, capacity_range=pb.CapacityRange(required_bytes=capacity, limit_bytes=limit),
        volume_capabilities=capabilities if capabilities is not None else [cap()], parameters=params(),
        secrets=secrets)


# ------------------------------------------------------------------------------------- CreateVolume


def test_create_without_a_name_is_invalid(pb, controller, cap, params, secrets, heketi):
    before = heketi.volume_ids()
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.CreateVolume,
                create_request(pb, "", cap, params, secrets))
    assert heketi.volume_ids() == before


def test_create_without_volume_capabilities_is_invalid(pb, controller, cap, params, secrets, heketi):
    before = heketi.volume_ids()
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.CreateVolume,
                create_request(pb, unique("nocaps"), cap, params, secrets, capabilities=[]))
    assert heketi.volume_ids() == before


@pytest.mark.parametrize("what", ["block", "fs_type ext4", "no access mode", "no access type"])
def test_create_with_a_capability_glusterfs_cannot_honour_is_invalid(pb, controller, cap, params, secrets, what):
    capability = {
        "block": cap(block=True),
        "fs_type ext4": cap(fs_type="ext4"),
        "no access mode": pb.VolumeCapability(mount=pb.VolumeCapability.MountVolume()),
        "no access type": pb.VolumeCapability(access_mode=cap().access_mode),
    }[what]
    error = expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.CreateVolume,
                        create_request(pb, unique("badcap"), cap, params, secrets, capabilities=[capability]))
    assert len(error.details()) > 10


def test_create_with_an_unknown_parameter_says_which(pb, controller, cap, secrets):
    request = pb.CreateVolumeRequest(name=unique("badparam"), volume_capabilities=[cap()],
                                     parameters={"volumetype": "none", "raidLevel": "5"}, secrets=secrets)
    error = expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.CreateVolume, request)
    assert "raidLevel" in error.details()


@pytest.mark.parametrize("volumetype", ["raid5", "replicate:0", "disperse:4"])
def test_create_with_an_invalid_volumetype_says_which(pb, controller, cap, params, secrets, volumetype):
    request = pb.CreateVolumeRequest(name=unique("badtype"), volume_capabilities=[cap()],
                                     parameters=params(volumetype=volumetype), secrets=secrets)
    error = expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.CreateVolume, request)
    assert "volumetype" in error.details()


def test_create_with_a_negative_capacity_is_invalid(pb, controller, cap, params, secrets):
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.CreateVolume,
                create_request(pb, unique("negative"), cap, params, secrets, capacity=-GIB))


def test_create_with_a_limit_below_what_glusterfs_can_make_is_out_of_range(pb, controller, cap, params, secrets,
                                                                          heketi):
    before = heketi.volume_ids()
    # Heketi sizes volumes in whole GiB, at least 1.
    expect_code(grpc.StatusCode.OUT_OF_RANGE, controller.CreateVolume,
                create_request(pb, unique("toosmall"), cap, params, secrets, capacity=0, limit=512 << 20))
    expect_code(grpc.StatusCode.OUT_OF_RANGE, controller.CreateVolume,
                create_request(pb, unique("between"), cap, params, secrets, capacity=GIB + 1, limit=GIB + 2))
    assert heketi.volume_ids() == before


def test_create_with_required_above_limit_is_refused(pb, controller, cap, params, secrets):
    error = rpc_error(controller.CreateVolume,
                      create_request(pb, unique("inverted"), cap, params, secrets, capacity=2 * GIB, limit=GIB))
    assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE), error


def test_create_without_capacity_makes_a_volume_with_its_size_reported(pb, controller, cap, params, secrets, res,
                                                                       heketi):
    request = pb.CreateVolumeRequest(name=unique("nocap"), volume_capabilities=[cap()], parameters=params(),
                                     secrets=secrets)
    volume = controller.CreateVolume(request, timeout=TIMEOUT).volume
    res.track_volume(volume.volume_id)
    assert volume.volume_id and len(volume.volume_id.encode()) <= 128
    assert volume.capacity_bytes == GIB, "no capacity_range: the driver's default is 1 GiB"
    assert heketi.volume(heketi_id(volume))["size"] == 1


def test_create_rounds_up_to_whole_gib_within_the_range(pb, controller, cap, params, secrets, res, heketi):
    volume = res.create(unique("roundup"), capacity=GIB + GIB // 2, limit=2 * GIB, parameters=params(),
                        capabilities=[cap()])
    assert volume.capacity_bytes == 2 * GIB
    assert heketi.volume(heketi_id(volume))["size"] == 2


def test_create_is_idempotent_and_refuses_an_incompatible_repeat(pb, controller, cap, params, secrets, res, heketi):
    name = unique("idem")
    request = create_request(pb, name, cap, params, secrets)
    first = controller.CreateVolume(request, timeout=TIMEOUT).volume
    res.track_volume(first.volume_id)
    before = heketi.volume_ids()
    for _ in range(3):
        again = controller.CreateVolume(request, timeout=TIMEOUT).volume
        assert again == first, "a repeated CreateVolume must answer the same volume"
    assert heketi.volume_ids() == before, "a repeated CreateVolume must not provision again"
    # Same name, incompatible capacity or parameters: ALREADY_EXISTS.
    expect_code(grpc.StatusCode.ALREADY_EXISTS, controller.CreateVolume,
                create_request(pb, name, cap, params, secrets, capacity=2 * GIB))
    other = pb.CreateVolumeRequest()
    other.CopyFrom(request)
    other.parameters["volumetype"] = "replicate:3"
    expect_code(grpc.StatusCode.ALREADY_EXISTS, controller.CreateVolume, other)
    assert heketi.volume_ids() == before


def test_create_with_a_maximum_length_name(pb, controller, cap, params, secrets, res, heketi):
    name = unique("max-")
    name += "n" * (128 - len(name))
    request = create_request(pb, name, cap, params, secrets)
    volume = controller.CreateVolume(request, timeout=TIMEOUT).volume
    res.track_volume(volume.volume_id)
    assert controller.CreateVolume(request, timeout=TIMEOUT).volume.volume_id == volume.volume_id
    assert heketi.volume(heketi_id(volume)) is not None


def test_create_records_the_storage_class_in_heketi(pb, controller, cap, params, secrets, res, heketi):
    volume = res.create(unique("replica3"), parameters=params(volumetype="replicate:3", gidMin="41000",
                                                              gidMax="41010"), capabilities=[cap()])
    described = heketi.volume(heketi_id(volume))
    assert described["durability"]["type"] == "replicate"
    assert described["durability"]["replicate"]["replica"] == 3
    assert 41000 <= described["gid"] <= 41010
    assert len(described["bricks"]) == 3
    assert volume.volume_context["glusterVolume"] == described["name"]
    assert described["name"] in csitools.gluster_volumes()


# ------------------------------------------------------------------------------------- DeleteVolume


def test_delete_without_a_volume_id_is_invalid(pb, controller, secrets):
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.DeleteVolume, pb.DeleteVolumeRequest(secrets=secrets))


@pytest.mark.parametrize("volume_id", INVALID_IDS + ["unknown"])
def test_delete_of_a_volume_that_does_not_exist_succeeds(pb, controller, secrets, volume_id):
    volume_id = unknown_volume_id() if volume_id == "unknown" else volume_id
    controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=volume_id, secrets=secrets), timeout=TIMEOUT)


def test_delete_removes_the_volume_everywhere_and_is_idempotent(pb, controller, cap, params, secrets, res, heketi,
                                                                env):
    volume = res.create(unique("delete"), parameters=params(), capabilities=[cap()])
    described = heketi.volume(heketi_id(volume))
    bricks = [brick["path"] for brick in described["bricks"]]
    for _ in range(2):
        controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=volume.volume_id, secrets=secrets), timeout=TIMEOUT)
    assert heketi.volume(heketi_id(volume)) is None
    assert heketi_id(volume) not in heketi.volume_ids()
    assert described["name"] not in csitools.gluster_volumes()
    for brick in bricks:
        assert brick.startswith(str(env.brick_root)), brick
        assert not os.path.exists(brick), f"brick {brick} left behind"
    expect_code(grpc.StatusCode.NOT_FOUND, controller.ControllerGetVolume,
                pb.ControllerGetVolumeRequest(volume_id=volume.volume_id))


# ------------------------------------------------------------------------ ValidateVolumeCapabilities


def test_validate_requires_a_volume_id_and_capabilities(pb, controller, cap, shared_volume):
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.ValidateVolumeCapabilities,
                pb.ValidateVolumeCapabilitiesRequest(volume_capabilities=[cap()]))
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.ValidateVolumeCapabilities,
                pb.ValidateVolumeCapabilitiesRequest(volume_id=shared_volume.volume_id))


@pytest.mark.parametrize("volume_id", INVALID_IDS + ["unknown"])
def test_validate_of_a_volume_that_does_not_exist_is_not_found(pb, controller, cap, secrets, volume_id):
    volume_id = unknown_volume_id() if volume_id == "unknown" else volume_id
    expect_code(grpc.StatusCode.NOT_FOUND, controller.ValidateVolumeCapabilities,
                pb.ValidateVolumeCapabilitiesRequest(volume_id=volume_id, volume_capabilities=[cap()],
                                                     secrets=secrets))


def test_validate_confirms_every_access_mode_of_a_mounted_volume(pb, controller, cap, secrets, shared_volume):
    capabilities = [cap(mode) for mode in ACCESS_MODES]
    request = pb.ValidateVolumeCapabilitiesRequest(
        volume_id=shared_volume.volume_id, volume_context=shared_volume.volume_context,
        volume_capabilities=capabilities, secrets=secrets)
    response = controller.ValidateVolumeCapabilities(request, timeout=TIMEOUT)
    assert response.HasField("confirmed"), response.message
    assert list(response.confirmed.volume_capabilities) == capabilities
    assert controller.ValidateVolumeCapabilities(request, timeout=TIMEOUT) == response, "must be idempotent"


@pytest.mark.parametrize("what", ["block", "fs_type xfs"])
def test_validate_does_not_confirm_what_glusterfs_cannot_do(pb, controller, cap, secrets, shared_volume, what):
    capability = cap(block=True) if what == "block" else cap(fs_type="xfs")
    response = controller.ValidateVolumeCapabilities(pb.ValidateVolumeCapabilitiesRequest(
        volume_id=shared_volume.volume_id, volume_capabilities=[cap(), capability], secrets=secrets), timeout=TIMEOUT)
    assert not response.HasField("confirmed") or not response.confirmed.volume_capabilities
    assert response.message, "an unconfirmed validation should say why"


def test_validate_does_not_confirm_parameters_it_did_not_check(pb, controller, cap, secrets, shared_volume):
    request = pb.ValidateVolumeCapabilitiesRequest(
        volume_id=shared_volume.volume_id, volume_capabilities=[cap()], parameters={"volumetype": "raid5"},
        secrets=secrets)
    try:
        response = controller.ValidateVolumeCapabilities(request, timeout=TIMEOUT)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        return
    assert not response.HasField("confirmed") or "volumetype" not in response.confirmed.parameters


# ------------------------------------------------------------------------------- ControllerGetVolume


def test_get_volume_requires_an_id(pb, controller):
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.ControllerGetVolume, pb.ControllerGetVolumeRequest())


@pytest.mark.parametrize("volume_id", INVALID_IDS + ["unknown"])
def test_get_volume_of_a_volume_that_does_not_exist_is_not_found(pb, controller, volume_id):
    volume_id = unknown_volume_id() if volume_id == "unknown" else volume_id
    expect_code(grpc.StatusCode.NOT_FOUND, controller.ControllerGetVolume,
                pb.ControllerGetVolumeRequest(volume_id=volume_id))


def test_get_volume_describes_the_volume_as_created(pb, controller, shared_volume):
    request = pb.ControllerGetVolumeRequest(volume_id=shared_volume.volume_id)
    response = controller.ControllerGetVolume(request, timeout=TIMEOUT)
    assert response.volume.volume_id == shared_volume.volume_id
    assert response.volume.capacity_bytes == shared_volume.capacity_bytes
    # "A volume uniquely identified by volume_id SHALL always report the same volume_context."
    assert dict(response.volume.volume_context) == dict(shared_volume.volume_context)
    assert response.HasField("status"), "status is REQUIRED"
    assert controller.ControllerGetVolume(request, timeout=TIMEOUT) == response
