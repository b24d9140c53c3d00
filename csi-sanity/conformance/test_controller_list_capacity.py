"""Controller service: ListVolumes (pagination, tokens) and GetCapacity (CSI v1.12)."""

import grpc
import pytest

from conftest import GIB, TIMEOUT, expect_code, heketi_id, unique


def list_all(pb, controller, max_entries=0):
    """Every entry, page by page; fails on a page larger than max_entries."""
    entries, token, pages = [], "", 0
    while True:
        page = controller.ListVolumes(pb.ListVolumesRequest(max_entries=max_entries, starting_token=token),
                                      timeout=TIMEOUT)
        if max_entries:
            assert len(page.entries) <= max_entries, f"a page of {len(page.entries)} for max_entries {max_entries}"
        entries += page.entries
        pages += 1
        assert pages < 1000, "ListVolumes keeps handing out next_token"
        if not page.next_token:
            return entries
        token = page.next_token


@pytest.fixture(scope="module")
def three_volumes(pb, controller, secrets, params, cap):
    """Three volumes, so that pagination has pages to walk."""
    volumes = []
    for index in range(3):
        request = pb.CreateVolumeRequest(name=unique(f"list-{index}"), volume_capabilities=[cap()],
                                         capacity_range=pb.CapacityRange(required_bytes=(index + 1) * GIB),
                                         parameters=params(), secrets=secrets)
        volumes.append(controller.CreateVolume(request, timeout=TIMEOUT).volume)
    yield volumes
    for volume in volumes:
        controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=volume.volume_id, secrets=secrets), timeout=TIMEOUT)


# -------------------------------------------------------------------------------------- ListVolumes


def test_list_volumes_lists_every_created_volume_with_its_size(pb, controller, three_volumes, heketi):
    listed = {entry.volume.volume_id: entry.volume for entry in list_all(pb, controller)}
    for volume in three_volumes:
        assert volume.volume_id in listed, f"{volume.volume_id} missing from ListVolumes"
        assert listed[volume.volume_id].capacity_bytes == volume.capacity_bytes
        assert dict(listed[volume.volume_id].volume_context) == dict(volume.volume_context)
    # The driver lists what its Heketi holds: one entry per Heketi volume.
    assert sorted(heketi_id(v) for v in listed.values()) == sorted(heketi.volume_ids())


@pytest.mark.parametrize("max_entries", [1, 2])
def test_list_volumes_pages_through_everything_once(pb, controller, three_volumes, max_entries):
    everything = [entry.volume.volume_id for entry in list_all(pb, controller)]
    assert len(everything) >= 3
    paged = [entry.volume.volume_id for entry in list_all(pb, controller, max_entries)]
    assert paged == everything, "pages must cover the list exactly once, in the same order"
    first = controller.ListVolumes(pb.ListVolumesRequest(max_entries=max_entries), timeout=TIMEOUT)
    assert len(first.entries) == max_entries and first.next_token, "more entries than max_entries: next_token"


def test_list_volumes_is_idempotent(pb, controller, three_volumes):
    assert list_all(pb, controller) == list_all(pb, controller)


@pytest.mark.parametrize("token", ["invalid-token", "-1", "99999", "1.5", "\u00e9"])
def test_list_volumes_with_a_token_it_did_not_issue_is_aborted(pb, controller, three_volumes, token):
    expect_code(grpc.StatusCode.ABORTED, controller.ListVolumes, pb.ListVolumesRequest(starting_token=token))


def test_list_volumes_with_negative_max_entries_is_invalid(pb, controller):
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.ListVolumes, pb.ListVolumesRequest(max_entries=-1))


def test_list_volumes_forgets_a_deleted_volume_and_accepts_a_token_across_the_delete(pb, controller, res, secrets):
    volume = res.create(unique("list-deleted"))
    before = [entry.volume.volume_id for entry in list_all(pb, controller)]
    assert volume.volume_id in before
    token = controller.ListVolumes(pb.ListVolumesRequest(max_entries=1), timeout=TIMEOUT).next_token
    controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=volume.volume_id, secrets=secrets), timeout=TIMEOUT)
    after = [entry.volume.volume_id for entry in list_all(pb, controller)]
    assert after == [volume_id for volume_id in before if volume_id != volume.volume_id]
    # The spec lets a CO page while volumes come and go; an issued token must stay usable.
    controller.ListVolumes(pb.ListVolumesRequest(max_entries=1, starting_token=token), timeout=TIMEOUT)


def test_list_volumes_uses_the_id_create_volume_gave_when_the_class_names_resturl(pb, controller, res, params,
                                                                                  env):
    volume = res.create(unique("resturl"), parameters=params(resturl=env.heketi_url))
    assert volume.volume_id in [entry.volume.volume_id for entry in list_all(pb, controller)]


# -------------------------------------------------------------------------------------- GetCapacity


def capacity(pb, controller, cap, **request):
    response = controller.GetCapacity(pb.GetCapacityRequest(**request), timeout=TIMEOUT)
    assert response.available_capacity >= 0
    if response.HasField("maximum_volume_size"):
        assert response.maximum_volume_size.value >= 0
    if response.HasField("minimum_volume_size"):
        assert response.minimum_volume_size.value >= 0
    return response


def test_get_capacity_answers_without_parameters(pb, controller, cap):
    response = capacity(pb, controller, cap)
    assert response.available_capacity > 0, "the test Heketi has 3 x 100 GiB of free devices"


def test_get_capacity_accounts_for_the_volume_type(pb, controller, cap, params):
    plain = capacity(pb, controller, cap, parameters=params(volumetype="none")).available_capacity
    replicated = capacity(pb, controller, cap, parameters=params(volumetype="replicate:3")).available_capacity
    dispersed = capacity(pb, controller, cap, parameters=params(volumetype="disperse:4:2")).available_capacity
    assert replicated == pytest.approx(plain / 3, rel=0.01)
    assert dispersed == pytest.approx(plain * 4 / 6, rel=0.01)


def test_get_capacity_is_zero_for_capabilities_glusterfs_cannot_honour(pb, controller, cap):
    response = capacity(pb, controller, cap, volume_capabilities=[cap(block=True)])
    assert response.available_capacity == 0


def test_get_capacity_with_an_invalid_parameter_is_invalid(pb, controller, params):
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.GetCapacity,
                pb.GetCapacityRequest(parameters=params(volumetype="raid5")))


def test_get_capacity_is_stable_and_shrinks_by_what_a_volume_takes(pb, controller, cap, params, res):
    request = dict(volume_capabilities=[cap()], parameters=params())
    before = capacity(pb, controller, cap, **request)
    assert capacity(pb, controller, cap, **request).available_capacity == before.available_capacity
    # A volume of the smallest size the plugin names must be creatable with that as its limit.
    minimum = before.minimum_volume_size.value if before.HasField("minimum_volume_size") else GIB
    volume = res.create(unique("capacity"), capacity=0, limit=minimum)
    assert 0 < volume.capacity_bytes <= minimum
    after = capacity(pb, controller, cap, **request).available_capacity
    assert after <= before.available_capacity - volume.capacity_bytes
