"""Controller service: snapshots (CSI v1.12 CreateSnapshot, DeleteSnapshot, ListSnapshots,
GetSnapshot) and restores (CreateVolume from a snapshot source). Required fields, idempotency by
name, ALREADY_EXISTS and NOT_FOUND, list filters, paging and tokens, what Heketi and gluster hold
afterwards, and the data a restore holds.

A snapshot of this driver is a Heketi clone of its source (a gluster snapshot on real Heketi; a copy
in the test server), named `snap-<12 hex>-<9 hex>_<source's Heketi ID>`."""

import re
import secrets as secrets_module

import grpc
import pytest

from conftest import GIB, TIMEOUT, expect_code, heketi_id, heketi_requests, unique, unknown_snapshot_id, \
    unknown_volume_id
import csitools

CLONE = "POST /volumes/{id}/clone"
CLONE_NAME = re.compile(r"^snap-[0-9a-f]{12}-[0-9a-f]{9}_[0-9a-f]{32}$")


def snapshot_request(pb, name, source_volume_id, secrets, parameters=None):
    return pb.CreateSnapshotRequest(name=name, source_volume_id=source_volume_id, secrets=secrets,
                                    parameters=parameters or {})


def clone_of(snapshot) -> str:
    """The Heketi ID of the clone behind a snapshot ID (`s1:<id>:<url>`)."""
    return snapshot.snapshot_id.split(":")[1]


def clones_in(heketi) -> list[str]:
    """Heketi IDs of every snapshot clone Heketi holds."""
    return sorted(vid for vid in heketi.volume_ids() if CLONE_NAME.match(heketi.volume(vid)["name"]))


def gluster_volume_exists(name: str) -> bool:
    return csitools.gluster("volume", "info", name).returncode == 0


def list_all(pb, controller, secrets, max_entries=0, **filters):
    """Every listed snapshot, page by page; fails on a page larger than max_entries."""
    snapshots, token = [], ""
    for _ in range(1000):
        page = controller.ListSnapshots(pb.ListSnapshotsRequest(max_entries=max_entries, starting_token=token,
                                                                secrets=secrets, **filters), timeout=TIMEOUT)
        if max_entries:
            assert len(page.entries) <= max_entries, f"a page of {len(page.entries)} for max_entries {max_entries}"
        snapshots += [entry.snapshot for entry in page.entries]
        if not page.next_token:
            return snapshots
        token = page.next_token
    pytest.fail("ListSnapshots keeps handing out next_token")


def restore_source(pb, snapshot_id):
    return pb.VolumeContentSource(snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id=snapshot_id))


@pytest.fixture(scope="module")
def other_volume(pb, controller, secrets, params, cap):
    """A second source volume; deleted afterwards."""
    request = pb.CreateVolumeRequest(name=unique(f"snap-other-{secrets_module.token_hex(2)}"),
                                     capacity_range=pb.CapacityRange(required_bytes=2 * GIB),
                                     volume_capabilities=[cap()], parameters=params(), secrets=secrets)
    volume = controller.CreateVolume(request, timeout=TIMEOUT).volume
    yield volume
    controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=volume.volume_id, secrets=secrets), timeout=TIMEOUT)


@pytest.fixture(scope="module")
def snapshots(pb, controller, secrets, shared_volume, other_volume):
    """Three snapshots: two of the shared volume, one of the other volume; deleted afterwards."""
    made = []
    for index, source in enumerate((shared_volume, shared_volume, other_volume)):
        request = snapshot_request(pb, unique(f"snapshot-{index}-{secrets_module.token_hex(2)}"), source.volume_id,
                                   secrets)
        made.append((request, controller.CreateSnapshot(request, timeout=TIMEOUT).snapshot))
    yield made
    for _, snapshot in made:
        controller.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot_id, secrets=secrets),
                                  timeout=TIMEOUT)


# ------------------------------------------------------------------------------------ CreateSnapshot


@pytest.mark.parametrize("missing", ["name", "source_volume_id"])
def test_create_snapshot_requires_a_name_and_a_source(pb, controller, secrets, shared_volume, heketi, missing):
    before = heketi.volume_ids()
    request = snapshot_request(pb, unique("snapshot-required"), shared_volume.volume_id, secrets)
    request.ClearField(missing)
    error = expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.CreateSnapshot, request)
    assert missing in error.details()
    assert heketi.volume_ids() == before


@pytest.mark.parametrize("source", ["invalid-volume-id", "unknown", "a snapshot's ID"])
def test_create_snapshot_of_a_volume_that_does_not_exist_is_not_found(pb, controller, secrets, heketi, snapshots,
                                                                      source):
    source = {"unknown": unknown_volume_id(), "a snapshot's ID": snapshots[0][1].snapshot_id}.get(source, source)
    before = heketi.volume_ids()
    expect_code(grpc.StatusCode.NOT_FOUND, controller.CreateSnapshot,
                snapshot_request(pb, unique("snapshot-nosrc"), source, secrets))
    assert heketi.volume_ids() == before


def test_create_snapshot_with_a_parameter_it_does_not_take_says_which(pb, controller, secrets, shared_volume,
                                                                      heketi):
    before = heketi.volume_ids()
    error = expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.CreateSnapshot, snapshot_request(
        pb, unique("snapshot-param"), shared_volume.volume_id, secrets, {"snapshotType": "full"}))
    assert "snapshotType" in error.details()
    assert heketi.volume_ids() == before


def test_create_snapshot_answers_a_ready_snapshot_held_by_a_clone(pb, controller, shared_volume, snapshots, heketi):
    _, snapshot = snapshots[0]
    assert snapshot.snapshot_id.startswith("s1:") and snapshot.snapshot_id != shared_volume.volume_id
    assert snapshot.source_volume_id == shared_volume.volume_id
    assert snapshot.size_bytes == shared_volume.capacity_bytes, "a restore needs at least the source's size"
    assert snapshot.ready_to_use, "a Heketi clone is complete when the call returns"
    assert snapshot.HasField("creation_time") and snapshot.creation_time.seconds > 1_700_000_000
    clone = heketi.volume(clone_of(snapshot))
    assert CLONE_NAME.match(clone["name"]) and clone["name"].endswith("_" + heketi_id(shared_volume))
    assert int(clone["name"][18:27], 16) == snapshot.creation_time.seconds, "the name carries the creation time"
    assert gluster_volume_exists(clone["name"])
    assert len({s.snapshot_id for _, s in snapshots}) == 3


def test_create_snapshot_is_idempotent(pb, controller, snapshots, heketi):
    clones = heketi_requests(heketi, CLONE)
    for request, snapshot in snapshots:
        assert controller.CreateSnapshot(request, timeout=TIMEOUT).snapshot == snapshot, \
            "the same name and source: the same snapshot, creation_time included"
    assert heketi_requests(heketi, CLONE) == clones, "a repeated CreateSnapshot must not clone again"


def test_create_snapshot_of_the_same_name_and_another_source_already_exists(pb, controller, secrets, snapshots,
                                                                           other_volume, heketi):
    request, snapshot = snapshots[0]
    assert snapshot.source_volume_id != other_volume.volume_id
    before = heketi.volume_ids()
    error = expect_code(grpc.StatusCode.ALREADY_EXISTS, controller.CreateSnapshot,
                        snapshot_request(pb, request.name, other_volume.volume_id, secrets))
    assert request.name in error.details()
    assert heketi.volume_ids() == before


def test_create_snapshot_with_a_maximum_length_name(pb, controller, secrets, shared_volume, res):
    name = unique("snapshot-maxlen-").ljust(128, "a")
    first = res.snapshot(name, shared_volume.volume_id)
    request = snapshot_request(pb, name, shared_volume.volume_id, secrets)
    assert controller.CreateSnapshot(request, timeout=TIMEOUT).snapshot == first


# ---------------------------------------------------------------------------------------- GetSnapshot


def test_get_snapshot_requires_an_id(pb, controller, secrets):
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.GetSnapshot, pb.GetSnapshotRequest(secrets=secrets))


@pytest.mark.parametrize("snapshot_id", ["none-exist-id", "unknown", "a volume's ID"])
def test_get_snapshot_of_an_id_that_does_not_exist_is_not_found(pb, controller, secrets, shared_volume,
                                                                snapshot_id):
    snapshot_id = {"unknown": unknown_snapshot_id(), "a volume's ID": shared_volume.volume_id}.get(snapshot_id,
                                                                                                 snapshot_id)
    expect_code(grpc.StatusCode.NOT_FOUND, controller.GetSnapshot,
                pb.GetSnapshotRequest(snapshot_id=snapshot_id, secrets=secrets))


def test_get_snapshot_answers_what_create_snapshot_answered(pb, controller, secrets, snapshots):
    for _, snapshot in snapshots:
        got = controller.GetSnapshot(pb.GetSnapshotRequest(snapshot_id=snapshot.snapshot_id, secrets=secrets),
                                     timeout=TIMEOUT)
        assert got.snapshot == snapshot


# -------------------------------------------------------------------------------------- ListSnapshots


def test_list_snapshots_lists_every_snapshot_heketi_holds(pb, controller, secrets, snapshots, heketi):
    listed = list_all(pb, controller, secrets)
    for _, snapshot in snapshots:
        assert listed.count(snapshot) == 1, f"{snapshot.snapshot_id} not listed once as CreateSnapshot answered it"
    for snapshot in listed:
        assert snapshot.snapshot_id and snapshot.source_volume_id and snapshot.HasField("creation_time")
        assert snapshot.ready_to_use
    assert sorted(clone_of(s) for s in listed) == clones_in(heketi)


def test_list_snapshots_by_snapshot_id(pb, controller, secrets, snapshots):
    for _, snapshot in snapshots:
        assert list_all(pb, controller, secrets, snapshot_id=snapshot.snapshot_id) == [snapshot]
        # Both filters: the snapshot, when it is of that volume.
        assert list_all(pb, controller, secrets, snapshot_id=snapshot.snapshot_id,
                        source_volume_id=snapshot.source_volume_id) == [snapshot]


def test_list_snapshots_by_source_volume(pb, controller, secrets, snapshots, shared_volume, other_volume):
    for source in (shared_volume, other_volume):
        wanted = sorted(s.snapshot_id for _, s in snapshots if s.source_volume_id == source.volume_id)
        for max_entries in (0, 1):
            listed = list_all(pb, controller, secrets, max_entries, source_volume_id=source.volume_id)
            assert sorted(s.snapshot_id for s in listed) == wanted
    _, of_shared = snapshots[0]
    assert list_all(pb, controller, secrets, snapshot_id=of_shared.snapshot_id,
                    source_volume_id=other_volume.volume_id) == []


@pytest.mark.parametrize("filters", ["snapshot_id none-exist-id", "snapshot_id unknown", "snapshot_id a volume's ID",
                                     "source_volume_id fake-vol-id", "source_volume_id unknown",
                                     "source_volume_id a snapshot's ID"])
def test_list_snapshots_with_a_filter_naming_nothing_is_empty(pb, controller, secrets, snapshots, shared_volume,
                                                              filters):
    field, what = filters.split(" ", 1)
    value = {"unknown": unknown_snapshot_id() if field == "snapshot_id" else unknown_volume_id(),
             "a volume's ID": shared_volume.volume_id, "a snapshot's ID": snapshots[0][1].snapshot_id}.get(what, what)
    response = controller.ListSnapshots(pb.ListSnapshotsRequest(secrets=secrets, **{field: value}), timeout=TIMEOUT)
    assert list(response.entries) == [] and not response.next_token


@pytest.mark.parametrize("max_entries", [1, 2])
def test_list_snapshots_pages_through_everything_once(pb, controller, secrets, snapshots, max_entries):
    everything = list_all(pb, controller, secrets)
    assert len(everything) >= 3
    assert list_all(pb, controller, secrets, max_entries) == everything, \
        "pages must cover the list exactly once, in the same order"
    first = controller.ListSnapshots(pb.ListSnapshotsRequest(max_entries=max_entries, secrets=secrets),
                                     timeout=TIMEOUT)
    assert len(first.entries) == max_entries and first.next_token, "more entries than max_entries: next_token"
    # The rest in one page, as upstream csi-sanity asks for it.
    rest = controller.ListSnapshots(pb.ListSnapshotsRequest(starting_token=first.next_token, secrets=secrets),
                                    timeout=TIMEOUT)
    assert [e.snapshot for e in (*first.entries, *rest.entries)] == everything


@pytest.mark.parametrize("token", ["invalid-token", "-1", "99999", "1.5", "\u00e9"])
def test_list_snapshots_with_a_token_it_did_not_issue_is_aborted(pb, controller, secrets, snapshots, token):
    expect_code(grpc.StatusCode.ABORTED, controller.ListSnapshots,
                pb.ListSnapshotsRequest(starting_token=token, secrets=secrets))


def test_list_snapshots_with_negative_max_entries_is_invalid(pb, controller, secrets):
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.ListSnapshots,
                pb.ListSnapshotsRequest(max_entries=-1, secrets=secrets))


def test_snapshots_are_not_volumes(pb, controller, secrets, snapshots, shared_volume):
    volumes = controller.ListVolumes(pb.ListVolumesRequest(), timeout=TIMEOUT).entries
    listed_volumes = {entry.volume.volume_id for entry in volumes}
    assert shared_volume.volume_id in listed_volumes
    for _, snapshot in snapshots:
        assert snapshot.snapshot_id not in listed_volumes
        assert "v1:" + snapshot.snapshot_id.removeprefix("s1:") not in listed_volumes
        expect_code(grpc.StatusCode.NOT_FOUND, controller.ControllerGetVolume,
                    pb.ControllerGetVolumeRequest(volume_id=snapshot.snapshot_id))
    assert shared_volume.volume_id not in {s.snapshot_id for s in list_all(pb, controller, secrets)}


def test_the_node_refuses_a_snapshot_id_as_a_volume(pb, node, cap, snapshots, shared_volume, main_node, res):
    staging = main_node.staging(res.test)
    error = expect_code(grpc.StatusCode.INVALID_ARGUMENT, node.NodeStageVolume, pb.NodeStageVolumeRequest(
        volume_id=snapshots[0][1].snapshot_id, staging_target_path=str(staging), volume_capability=cap(),
        volume_context=shared_volume.volume_context))
    assert "snapshot" in error.details()
    assert not csitools.mounts_under(staging)


# ------------------------------------------------------------------------------------- DeleteSnapshot


def test_delete_snapshot_requires_an_id(pb, controller, secrets):
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, controller.DeleteSnapshot, pb.DeleteSnapshotRequest(secrets=secrets))


@pytest.mark.parametrize("snapshot_id", ["reallyfakesnapshotid", "unknown", "a volume's ID"])
def test_delete_snapshot_of_an_id_it_never_issued_succeeds_and_deletes_nothing(pb, controller, secrets,
                                                                              shared_volume, heketi, snapshot_id):
    snapshot_id = {"unknown": unknown_snapshot_id(), "a volume's ID": shared_volume.volume_id}.get(snapshot_id,
                                                                                                 snapshot_id)
    before = heketi.volume_ids()
    controller.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snapshot_id, secrets=secrets), timeout=TIMEOUT)
    assert heketi.volume_ids() == before


def test_delete_snapshot_deletes_the_clone_and_is_idempotent(pb, controller, secrets, shared_volume, heketi, res):
    snapshot = res.snapshot(unique("snapshot-deleted"), shared_volume.volume_id)
    name = heketi.volume(clone_of(snapshot))["name"]
    listed = len(list_all(pb, controller, secrets))
    for _ in range(2):
        controller.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot_id, secrets=secrets),
                                  timeout=TIMEOUT)
    assert heketi.volume(clone_of(snapshot)) is None
    assert not gluster_volume_exists(name)
    assert len(list_all(pb, controller, secrets)) == listed - 1
    assert list_all(pb, controller, secrets, snapshot_id=snapshot.snapshot_id) == []
    expect_code(grpc.StatusCode.NOT_FOUND, controller.GetSnapshot,
                pb.GetSnapshotRequest(snapshot_id=snapshot.snapshot_id, secrets=secrets))
    assert heketi.volume(heketi_id(shared_volume)) is not None, "the source stays"


# --------------------------------------------------------------------------------------------- restore


def test_a_restore_holds_the_data_of_the_snapshot_and_outlives_its_source(pb, controller, cap, secrets, res,
                                                                         main_node, heketi):
    """Writes A, snapshots, writes B and changes A; restores into a larger volume (A as it was, no B),
    deletes the source, restores again."""
    rwx = cap()
    source = res.create(unique("restore-src"))
    staging = res.stage(main_node, source, rwx, main_node.staging(res.test, "source"))
    live = res.publish(main_node, source, rwx, staging, "source")
    (live / "a.txt").write_text("A at the snapshot\n")
    snapshot = res.snapshot(unique("restore-snap"), source.volume_id)
    (live / "a.txt").write_text("A after the snapshot\n")
    (live / "b.txt").write_text("B after the snapshot\n")

    request = pb.CreateVolumeRequest(
        name=unique("restored"), capacity_range=pb.CapacityRange(required_bytes=2 * GIB), volume_capabilities=[rwx],
        parameters={"volumetype": "none"}, secrets=secrets,
        volume_content_source=restore_source(pb, snapshot.snapshot_id))
    restored = controller.CreateVolume(request, timeout=TIMEOUT).volume
    res.track_volume(restored.volume_id)
    assert restored.capacity_bytes >= 2 * GIB and heketi.volume(heketi_id(restored))["size"] == 2
    assert restored.content_source.snapshot.snapshot_id == snapshot.snapshot_id, "the volume says where it came from"
    assert controller.CreateVolume(request, timeout=TIMEOUT).volume == restored, "a repeated restore is the same volume"
    view = res.publish(main_node, restored, rwx, res.stage(main_node, restored, rwx,
                                                           main_node.staging(res.test, "restored")), "restored")
    assert (view / "a.txt").read_text() == "A at the snapshot\n"
    assert not (view / "b.txt").exists()
    assert (live / "a.txt").read_text() == "A after the snapshot\n" and (live / "b.txt").exists()

    res.unpublish(main_node, source, live)
    res.unstage(main_node, source, staging)
    controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=source.volume_id, secrets=secrets), timeout=TIMEOUT)
    got = controller.GetSnapshot(pb.GetSnapshotRequest(snapshot_id=snapshot.snapshot_id, secrets=secrets),
                                 timeout=TIMEOUT).snapshot
    assert got == snapshot, "a snapshot outlives its source"
    again = res.create(unique("restored-again"), source=restore_source(pb, snapshot.snapshot_id))
    view = res.publish(main_node, again, rwx, res.stage(main_node, again, rwx,
                                                        main_node.staging(res.test, "again")), "again")
    assert (view / "a.txt").read_text() == "A at the snapshot\n"
