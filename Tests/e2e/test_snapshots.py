"""Volume snapshots (issue 13) through the real binary: CreateSnapshot, DeleteSnapshot,
ListSnapshots, GetSnapshot and restore (CreateVolume from a snapshot), against the Heketi-compatible
test server. A snapshot is a Heketi clone named `snap-<12 hex of the CSI name>-<9 hex created>_<source
Heketi ID>`; its ID is `s1:<clone's Heketi ID>:<Heketi URL>`.

Mock mode for what Heketi's bookkeeping shows (names, counts of clone requests, paging over 50
snapshots, a controller killed mid-clone); gluster mode (real GlusterFS volumes, FUSE mounts) for
the data: a restore holds exactly what the volume held when the snapshot was taken.
"""

import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest

import heketi_testlib
from conftest import controller_args

C = grpc.StatusCode
GIB = 1 << 30
SECRETS = {"key": heketi_testlib.ADMIN_KEY}
CLONE = "POST /volumes/{id}/clone"
RWX = "MULTI_NODE_MULTI_WRITER"


# --- helpers

def lookup_prefix(csi_name: str) -> str:
    """`snap-<hash>-` for a CSI snapshot name, computed here from the documented scheme (FNV-1a 64,
    its top 48 bits as 12 hex digits), not by the driver."""
    value = 0xcbf29ce484222325
    for byte in csi_name.encode():
        value = ((value ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"snap-{value >> 16:012x}-"


def all_heketi_volumes(server) -> list[dict]:
    """Every volume the test server holds, those still being made (pending) included."""
    return server.test_api("GET", "/_test/state").json()["volumes"]


def clones_named(server, csi_name: str) -> list[dict]:
    return [v for v in all_heketi_volumes(server) if v["name"].startswith(lookup_prefix(csi_name))]


def requests_to(server, key: str) -> int:
    return server.test_api("GET", "/_test/requests").json()["counts"].get(key, 0)


def capability(csi):
    access = csi.pb.VolumeCapability.AccessMode
    return csi.pb.VolumeCapability(mount=csi.pb.VolumeCapability.MountVolume(),
                                   access_mode=access(mode=access.Mode.Value(RWX)))


def volume_request(csi, name, gib=1, snapshot_id=None, parameters=None):
    request = csi.pb.CreateVolumeRequest(
        name=name, capacity_range=csi.pb.CapacityRange(required_bytes=gib * GIB),
        volume_capabilities=[capability(csi)], parameters=parameters or {"volumetype": "none"}, secrets=SECRETS)
    if snapshot_id is not None:
        request.volume_content_source.snapshot.snapshot_id = snapshot_id
    return request


def snapshot_request(csi, name, source_volume_id, secrets=SECRETS, parameters=None):
    return csi.pb.CreateSnapshotRequest(name=name, source_volume_id=source_volume_id, secrets=secrets,
                                        parameters=parameters or {})


def wait_for_log(driver, text: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while text not in driver.log():
        assert time.monotonic() < deadline, f"{text!r} not in the driver's log within {timeout} s"
        time.sleep(0.05)


def error_of(call, request, timeout=60) -> grpc.RpcError:
    try:
        response = call(request, timeout=timeout)
    except grpc.RpcError as error:
        assert error.details(), f"{error.code().name} without a message"
        return error
    pytest.fail(f"expected an error, got {response}")


def retry_while_aborted(call, request, timeout=90, seen=None):
    """Calls until the answer is not ABORTED (or UNAVAILABLE while a driver starts), as the
    external-snapshotter retries; records the refusals in `seen`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(request, timeout=30)
        except grpc.RpcError as error:
            if error.code() not in (C.ABORTED, C.UNAVAILABLE) or time.monotonic() > deadline:
                raise
            if seen is not None:
                seen.append((error.code(), error.details()))
            time.sleep(0.2)


class Controller:
    """A controller in front of a Heketi: its stub, and shorthands for the calls the tests make."""

    def __init__(self, csi, driver):
        self.csi, self.pb, self.driver = csi, csi.pb, driver
        self.stub = csi.grpc.ControllerStub(driver.channel())

    def volume(self, name, gib=1, **extra):
        return self.stub.CreateVolume(volume_request(self.csi, name, gib, **extra), timeout=120).volume

    def snapshot(self, name, source_volume_id, **extra):
        return self.stub.CreateSnapshot(snapshot_request(self.csi, name, source_volume_id, **extra),
                                        timeout=120).snapshot

    def get(self, snapshot_id):
        return self.stub.GetSnapshot(self.pb.GetSnapshotRequest(snapshot_id=snapshot_id, secrets=SECRETS),
                                     timeout=60).snapshot

    def list(self, **request):
        return self.stub.ListSnapshots(self.pb.ListSnapshotsRequest(secrets=SECRETS, **request), timeout=60)

    def list_all(self, max_entries=0, **filters):
        """Every entry, page by page; checks each page's size and that paging ends."""
        entries, token = [], ""
        for _ in range(1000):
            page = self.list(max_entries=max_entries, starting_token=token, **filters)
            if max_entries:
                assert len(page.entries) <= max_entries, f"{len(page.entries)} entries for max_entries {max_entries}"
            entries += [entry.snapshot for entry in page.entries]
            if not page.next_token:
                return entries
            token = page.next_token
        pytest.fail("ListSnapshots keeps handing out next_token")

    def delete_snapshot(self, snapshot_id, secrets=SECRETS):
        self.stub.DeleteSnapshot(self.pb.DeleteSnapshotRequest(snapshot_id=snapshot_id, secrets=secrets), timeout=120)

    def delete_volume(self, volume_id):
        self.stub.DeleteVolume(self.pb.DeleteVolumeRequest(volume_id=volume_id, secrets=SECRETS), timeout=120)


@pytest.fixture
def mock(csi, heketi, start_driver):
    """A controller in front of the test server in mock mode."""
    controller = Controller(csi, start_driver(*controller_args(heketi)))
    controller.heketi = heketi
    return controller


# --- CreateSnapshot: what it makes and answers

def test_a_snapshot_is_a_named_clone_of_its_source_ready_at_once(csi, mock):
    heketi = mock.heketi
    source = mock.volume("pvc-snapped", gib=2)
    before = int(time.time())
    snapshot = mock.snapshot("snapshot-1", source.volume_id)
    after = int(time.time())

    [clone] = clones_named(heketi, "snapshot-1")
    assert snapshot.snapshot_id == f"s1:{clone['id']}:{heketi.url}"
    assert snapshot.source_volume_id == source.volume_id
    assert snapshot.ready_to_use
    assert snapshot.size_bytes == 2 * GIB == source.capacity_bytes
    assert before <= snapshot.creation_time.seconds <= after and snapshot.creation_time.nanos == 0
    # The name carries what Heketi does not store: the creation time and the source.
    source_heketi_id = source.volume_context["heketiVolumeID"]
    assert clone["name"] == f"{lookup_prefix('snapshot-1')}{snapshot.creation_time.seconds:09x}_{source_heketi_id}"
    assert clone["size"] == 2 and not clone["pending"]
    assert requests_to(heketi, CLONE) == 1
    assert mock.get(snapshot.snapshot_id) == snapshot
    assert list(mock.list(snapshot_id=snapshot.snapshot_id).entries) == [
        csi.pb.ListSnapshotsResponse.Entry(snapshot=snapshot)]


def test_a_snapshot_is_never_a_volume_and_a_volume_never_a_snapshot(csi, mock):
    pb, stub, heketi = csi.pb, mock.stub, mock.heketi
    source = mock.volume("pvc-kinds")
    snapshot = mock.snapshot("snapshot-kinds", source.volume_id)
    clone_id = snapshot.snapshot_id.split(":")[1]
    as_volume = f"v1:{clone_id}:{heketi.url}"
    as_snapshot = "s1:" + source.volume_id.removeprefix("v1:")

    # The controller knows no volume behind the clone.
    assert [e.volume.volume_id for e in stub.ListVolumes(pb.ListVolumesRequest(), timeout=60).entries] == [
        source.volume_id]
    for id_ in (as_volume, snapshot.snapshot_id):
        assert error_of(stub.ControllerGetVolume, pb.ControllerGetVolumeRequest(volume_id=id_)).code() == C.NOT_FOUND
        assert error_of(stub.ControllerExpandVolume, pb.ControllerExpandVolumeRequest(
            volume_id=id_, capacity_range=pb.CapacityRange(required_bytes=4 * GIB), secrets=SECRETS)).code() == \
            C.NOT_FOUND
        assert error_of(stub.ValidateVolumeCapabilities, pb.ValidateVolumeCapabilitiesRequest(
            volume_id=id_, volume_capabilities=[capability(csi)], secrets=SECRETS)).code() == C.NOT_FOUND
        # Nor the source of a snapshot (for a volume clone, see the test below).
        assert error_of(stub.CreateSnapshot, snapshot_request(csi, f"snapshot-of-{id_[:2]}", id_)).code() == \
            C.NOT_FOUND
    # DeleteVolume of the clone as a volume: nothing there to delete as a volume, and the snapshot stays.
    mock.delete_volume(as_volume)
    assert mock.get(snapshot.snapshot_id) == snapshot

    # The volume is no snapshot: not found, not listed, not deleted by DeleteSnapshot.
    for id_ in (source.volume_id, as_snapshot):
        assert error_of(stub.GetSnapshot, pb.GetSnapshotRequest(snapshot_id=id_, secrets=SECRETS)).code() == \
            C.NOT_FOUND
        assert list(mock.list(snapshot_id=id_).entries) == []
        mock.delete_snapshot(id_)
    # Nor is it restored (s1:<volume's Heketi ID>: see the test below).
    assert error_of(stub.CreateVolume, volume_request(csi, "pvc-restore-a-volume", snapshot_id=source.volume_id)
                    ).code() == C.NOT_FOUND
    clone_request = volume_request(csi, "pvc-from-a-snapshot-id")
    clone_request.volume_content_source.volume.volume_id = snapshot.snapshot_id
    assert error_of(stub.CreateVolume, clone_request).code() == C.NOT_FOUND
    assert heketi.volume(source.volume_context["heketiVolumeID"])["name"] == source.volume_context["glusterVolume"]
    assert {v["id"] for v in all_heketi_volumes(heketi)} == {clone_id, source.volume_context["heketiVolumeID"]}


@pytest.mark.parametrize("kind", ["volume source naming a snapshot", "snapshot source naming a volume"])
def test_a_content_source_of_the_other_kind_is_not_found(csi, mock, kind):
    source = mock.volume("pvc-source-kinds")
    snapshot = mock.snapshot("snapshot-source-kinds", source.volume_id)
    request = volume_request(csi, "pvc-from-the-other-kind")
    if kind == "volume source naming a snapshot":
        request.volume_content_source.volume.volume_id = "v1:" + snapshot.snapshot_id.removeprefix("s1:")
    else:
        request.volume_content_source.snapshot.snapshot_id = "s1:" + source.volume_id.removeprefix("v1:")
    assert error_of(mock.stub.CreateVolume, request).code() == C.NOT_FOUND
    assert len(all_heketi_volumes(mock.heketi)) == 2


def test_the_node_refuses_a_snapshot_id_as_a_volume(csi, heketi, start_driver, short_dir):
    driver = start_driver(*controller_args(heketi, "--mode", "all"))
    controller, node = Controller(csi, driver), csi.grpc.NodeStub(driver.channel())
    source = controller.volume("pvc-node-refusal")
    snapshot = controller.snapshot("snapshot-node-refusal", source.volume_id)
    staging, target = short_dir / "staging/snap", short_dir / "pods/snap/mount"
    calls = {
        "NodeStageVolume": (node.NodeStageVolume, csi.pb.NodeStageVolumeRequest(
            volume_id=snapshot.snapshot_id, staging_target_path=str(staging), volume_capability=capability(csi),
            volume_context=source.volume_context)),
        "NodePublishVolume": (node.NodePublishVolume, csi.pb.NodePublishVolumeRequest(
            volume_id=snapshot.snapshot_id, staging_target_path=str(staging), target_path=str(target),
            volume_capability=capability(csi), volume_context=source.volume_context)),
    }
    for method, (call, request) in calls.items():
        error = error_of(call, request)
        assert error.code() == C.INVALID_ARGUMENT, f"{method}: {error.code().name} {error.details()}"
        assert "is a snapshot ID, not a volume" in error.details(), f"{method}: {error.details()}"
    assert not staging.exists() and not target.exists()


# --- Idempotency and conflicts

def test_repeats_answer_the_same_snapshot_also_from_a_restarted_controller(csi, heketi, start_driver):
    first = Controller(csi, start_driver(*controller_args(heketi)))
    source = first.volume("pvc-repeat")
    snapshot = first.snapshot("snapshot-repeat", source.volume_id)
    # A second later: a snapshot taken again would carry another creation time.
    time.sleep(1.1)
    assert first.snapshot("snapshot-repeat", source.volume_id) == snapshot
    first.driver.terminate()

    second = Controller(csi, start_driver(*controller_args(heketi)))
    assert second.snapshot("snapshot-repeat", source.volume_id) == snapshot
    assert second.get(snapshot.snapshot_id) == snapshot
    assert second.list_all() == [snapshot]
    assert requests_to(heketi, CLONE) == 1
    assert len(clones_named(heketi, "snapshot-repeat")) == 1


def test_a_name_taken_by_a_snapshot_of_another_volume_already_exists(csi, mock):
    first, other = mock.volume("pvc-conflict-a"), mock.volume("pvc-conflict-b")
    snapshot = mock.snapshot("snapshot-conflict", first.volume_id)
    error = error_of(mock.stub.CreateSnapshot, snapshot_request(csi, "snapshot-conflict", other.volume_id))
    assert error.code() == C.ALREADY_EXISTS
    assert "snapshot-conflict" in error.details()
    assert requests_to(mock.heketi, CLONE) == 1
    assert mock.list_all() == [snapshot]


@pytest.mark.parametrize("what", ["no name", "no source", "a VolumeSnapshotClass parameter"])
def test_invalid_requests_clone_nothing(csi, mock, what):
    source = mock.volume("pvc-invalid")
    request = {
        "no name": snapshot_request(csi, "", source.volume_id),
        "no source": snapshot_request(csi, "snapshot-invalid", ""),
        "a VolumeSnapshotClass parameter": snapshot_request(csi, "snapshot-invalid", source.volume_id,
                                                            parameters={"snapFactor": "2"}),
    }[what]
    error = error_of(mock.stub.CreateSnapshot, request)
    assert error.code() == C.INVALID_ARGUMENT, error.details()
    if what == "a VolumeSnapshotClass parameter":
        assert "snapFactor" in error.details()
    assert requests_to(mock.heketi, CLONE) == 0


def test_the_sidecars_parameters_are_accepted(mock):
    source = mock.volume("pvc-sidecar-params")
    snapshot = mock.snapshot("snapshot-sidecar-params", source.volume_id, parameters={
        "csi.storage.k8s.io/volumesnapshot/name": "snap", "csi.storage.k8s.io/volumesnapshot/namespace": "ns",
        "csi.storage.k8s.io/volumesnapshotcontent/name": "snapcontent-1"})
    assert snapshot.ready_to_use


@pytest.mark.parametrize("source", ["garbage", "unknown v1 ID", "deleted volume"])
def test_a_source_that_does_not_exist_is_not_found(csi, mock, source):
    if source == "deleted volume":
        volume = mock.volume("pvc-gone")
        mock.delete_volume(volume.volume_id)
        source_id = volume.volume_id
    else:
        source_id = {"garbage": "no-such-volume", "unknown v1 ID": f"v1:{'0' * 32}:{mock.heketi.url}"}[source]
    assert error_of(mock.stub.CreateSnapshot, snapshot_request(csi, "snapshot-nosrc", source_id)).code() == \
        C.NOT_FOUND
    assert requests_to(mock.heketi, CLONE) == 0


def test_delete_snapshot_is_idempotent_and_deletes_only_the_clone(csi, mock):
    source = mock.volume("pvc-delete-snap")
    snapshot = mock.snapshot("snapshot-delete", source.volume_id)
    for _ in range(2):
        mock.delete_snapshot(snapshot.snapshot_id)
    assert [v["id"] for v in all_heketi_volumes(mock.heketi)] == [source.volume_context["heketiVolumeID"]]
    assert error_of(mock.stub.GetSnapshot, csi.pb.GetSnapshotRequest(snapshot_id=snapshot.snapshot_id)).code() == \
        C.NOT_FOUND
    assert mock.list_all() == []
    # IDs it never issued: nothing to do.
    for snapshot_id in ("reallyfakesnapshotid", f"s1:{'0' * 32}:{mock.heketi.url}"):
        mock.delete_snapshot(snapshot_id)
    # The name is free again: a new snapshot, a new clone.
    again = mock.snapshot("snapshot-delete", source.volume_id)
    assert again.snapshot_id != snapshot.snapshot_id


def test_secrets_come_from_the_request_or_the_controllers_key(csi, heketi, start_driver):
    keyed = Controller(csi, start_driver(*controller_args(heketi)))
    source = keyed.volume("pvc-secrets")
    # The controller's default key, when the request has none.
    snapshot = keyed.snapshot("snapshot-default-key", source.volume_id, secrets={})
    # A wrong key in the request: Heketi refuses it, and the key is not echoed.
    error = error_of(keyed.stub.CreateSnapshot, snapshot_request(csi, "snapshot-wrong-key", source.volume_id,
                                                                 secrets={"key": "not-the-key-1234"}))
    assert error.code() == C.UNAUTHENTICATED and "not-the-key-1234" not in error.details()
    # A controller with no key of its own works with the key in each request (once its first look
    # at Heketi, without a key, has failed: see the next test).
    bare = Controller(csi, start_driver("--mode", "controller", "--heketi-url", heketi.url, "--log-level", "trace"))
    wait_for_log(bare.driver, "cannot read Heketi's volumes yet")
    assert bare.snapshot("snapshot-default-key", source.volume_id) == snapshot
    assert bare.get(snapshot.snapshot_id) == snapshot
    assert bare.list_all(source_volume_id=source.volume_id) == [snapshot]
    bare.delete_snapshot(snapshot.snapshot_id)
    assert clones_named(heketi, "snapshot-default-key") == []
    assert heketi_testlib.ADMIN_KEY not in keyed.driver.log() + bare.driver.log()


def test_a_call_during_the_startup_read_of_heketi_uses_its_own_key(csi, heketi, start_driver):
    keyed = Controller(csi, start_driver(*controller_args(heketi)))
    source = keyed.volume("pvc-startup-key")
    heketi.faults(response_delay_ms=1000)  # the startup read lasts a while
    before = requests_to(heketi, "GET /operations")
    bare = Controller(csi, start_driver("--mode", "controller", "--heketi-url", heketi.url, "--log-level", "trace"))
    deadline = time.monotonic() + 30
    while requests_to(heketi, "GET /operations") == before:
        assert time.monotonic() < deadline, "the controller did not look at Heketi at startup"
        time.sleep(0.01)
    assert bare.snapshot("snapshot-startup-key", source.volume_id).ready_to_use


# --- A controller killed while Heketi clones

def test_a_controller_killed_mid_snapshot_never_leaves_two_clones(csi, heketi, start_driver, short_dir):
    heketi.faults(op_delay_ms=5000)
    socket = short_dir / "killed/csi.sock"
    first = Controller(csi, start_driver(*controller_args(heketi), socket=socket))
    source = first.volume("pvc-killed-snap")
    request = snapshot_request(csi, "snapshot-killed", source.volume_id)
    # A short deadline: the sidecar gives up, the clone goes on in Heketi.
    with pytest.raises(grpc.RpcError) as gave_up:
        first.stub.CreateSnapshot(request, timeout=1)
    assert gave_up.value.code() == C.DEADLINE_EXCEEDED
    assert requests_to(heketi, CLONE) == 1
    first.driver.process.send_signal(signal.SIGKILL)
    first.driver.process.wait()

    second = Controller(csi, start_driver(*controller_args(heketi), socket=socket))
    in_flight = bool(heketi.test_api("GET", "/_test/state").json()["in_flight"])
    refusals = []
    snapshot = retry_while_aborted(second.stub.CreateSnapshot, request, seen=refusals).snapshot
    [clone] = clones_named(heketi, "snapshot-killed")
    assert snapshot.snapshot_id == f"s1:{clone['id']}:{heketi.url}"
    assert requests_to(heketi, CLONE) == 1, "the restarted controller cloned again"
    if in_flight:
        # The clone was still running when the new controller answered: it said to retry.
        assert refusals and refusals[0][0] == C.ABORTED and "retry" in refusals[0][1], refusals
    assert "adopting existing snapshot clone" in second.driver.log()


def test_a_controller_killed_mid_restore_never_leaves_two_volumes(csi, heketi, start_driver, short_dir):
    socket = short_dir / "killed/csi.sock"
    first = Controller(csi, start_driver(*controller_args(heketi), socket=socket))
    source = first.volume("pvc-killed-restore-src")
    snapshot = first.snapshot("snapshot-killed-restore", source.volume_id)
    heketi.faults(op_delay_ms=5000)
    request = volume_request(csi, "pvc-killed-restore", snapshot_id=snapshot.snapshot_id)
    with pytest.raises(grpc.RpcError):
        first.stub.CreateVolume(request, timeout=1)
    assert requests_to(heketi, CLONE) == 2
    first.driver.process.send_signal(signal.SIGKILL)
    first.driver.process.wait()

    second = Controller(csi, start_driver(*controller_args(heketi), socket=socket))
    restored = retry_while_aborted(second.stub.CreateVolume, request).volume
    assert requests_to(heketi, CLONE) == 2, "the restarted controller cloned again"
    names = sorted(v["name"] for v in all_heketi_volumes(heketi))
    assert len(names) == 3 and restored.volume_context["glusterVolume"] in names
    assert restored.content_source.snapshot.snapshot_id == snapshot.snapshot_id


# --- ListSnapshots

def test_list_snapshots_pages_filters_and_forgets(csi, mock):
    """50 snapshots of 5 volumes (and 2 volumes without snapshots): every listing, paged or not,
    holds each wanted snapshot exactly once."""
    sources = [mock.volume(f"pvc-list-{index}", gib=index + 1) for index in range(5)]
    for index in range(2):
        mock.volume(f"pvc-list-plain-{index}")
    made = {}
    for index in range(50):
        snapshot = mock.snapshot(f"snapshot-list-{index}", sources[index % 5].volume_id)
        made[snapshot.snapshot_id] = snapshot
    assert len(made) == 50

    everything = mock.list_all()
    assert sorted(s.snapshot_id for s in everything) == sorted(made)
    assert all(snapshot == made[snapshot.snapshot_id] for snapshot in everything), "listed as CreateSnapshot said"
    for max_entries in (1, 7, 49, 50, 51):
        assert mock.list_all(max_entries=max_entries) == everything, f"max_entries {max_entries}"
    first = mock.list(max_entries=7)
    assert len(first.entries) == 7 and first.next_token
    assert not mock.list(max_entries=50).next_token

    for source in sources:
        wanted = sorted(i for i, s in made.items() if s.source_volume_id == source.volume_id)
        assert len(wanted) == 10
        for max_entries in (0, 3):
            listed = mock.list_all(max_entries=max_entries, source_volume_id=source.volume_id)
            assert sorted(s.snapshot_id for s in listed) == wanted
    target = everything[17]
    assert mock.list_all(snapshot_id=target.snapshot_id) == [target]
    assert mock.list_all(snapshot_id=target.snapshot_id, source_volume_id=target.source_volume_id) == [target]
    other = next(s.volume_id for s in sources if s.volume_id != target.source_volume_id)
    assert mock.list_all(snapshot_id=target.snapshot_id, source_volume_id=other) == []

    # Filters that name nothing of this driver's: an empty list, not an error.
    for filters in ({"snapshot_id": "none-exist-id"}, {"snapshot_id": f"s1:{'0' * 32}:{mock.heketi.url}"},
                    {"snapshot_id": sources[0].volume_id}, {"source_volume_id": "fake-vol-id"},
                    {"source_volume_id": f"v1:{'0' * 32}:{mock.heketi.url}"},
                    {"source_volume_id": target.snapshot_id}):
        assert list(mock.list(**filters).entries) == [], filters
    # Tokens it did not issue: ABORTED, as the spec says; a negative page size is invalid.
    for token in ("x", "-1", "99"):
        assert error_of(mock.stub.ListSnapshots, csi.pb.ListSnapshotsRequest(starting_token=token)).code() == \
            C.ABORTED, token
    assert error_of(mock.stub.ListSnapshots, csi.pb.ListSnapshotsRequest(max_entries=-1)).code() == \
        C.INVALID_ARGUMENT
    # Snapshots are not volumes.
    volumes = mock.stub.ListVolumes(csi.pb.ListVolumesRequest(), timeout=60).entries
    assert len(volumes) == 7 and not {v.volume.volume_id for v in volumes} & set(made)

    # A deleted snapshot is gone from the next listing; a token issued before it still works.
    token = mock.list(max_entries=10).next_token
    mock.delete_snapshot(target.snapshot_id)
    assert mock.list_all() == [s for s in everything if s.snapshot_id != target.snapshot_id]
    mock.list(max_entries=10, starting_token=token)


def test_listing_every_snapshot_needs_the_default_heketi(csi, heketi, start_driver):
    keyed = Controller(csi, start_driver(*controller_args(heketi)))
    source = keyed.volume("pvc-list-bare")
    snapshot = keyed.snapshot("snapshot-list-bare", source.volume_id)
    bare = Controller(csi, start_driver("--mode", "controller"))
    error = error_of(bare.stub.ListSnapshots, csi.pb.ListSnapshotsRequest(secrets=SECRETS))
    assert error.code() == C.FAILED_PRECONDITION and "--heketi-url" in error.details()
    # Filters name the Heketi through the IDs.
    assert bare.list_all(source_volume_id=source.volume_id) == [snapshot]
    assert bare.list_all(snapshot_id=snapshot.snapshot_id) == [snapshot]


# --- Real GlusterFS: the data

problem = heketi_testlib.glusterd_problem()
needs_gluster = pytest.mark.skipif(problem is not None, reason=problem or "")


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as table:
        return [line.split()[4] for line in table if line.split()[4].startswith(str(path))]


@pytest.fixture
def gluster(csi, start_heketi, start_driver, short_dir):
    """Heketi test server in gluster mode + the driver in all mode; `mount(volume)` stages and
    publishes a volume and returns its target. Everything mounted is unmounted at the end."""
    heketi = start_heketi("--mode", "gluster", "--brick-root", str(short_dir / "bricks"))
    driver = start_driver(*controller_args(heketi, "--mode", "all", "--mount-log-dir", str(short_dir / "logs")))
    controller = Controller(csi, driver)
    controller.heketi = heketi
    node = csi.grpc.NodeStub(driver.channel())
    mounted = []

    def mount(volume, pod: str) -> Path:
        staging, target = short_dir / f"staging/{pod}", short_dir / f"pods/{pod}/mount"
        node.NodeStageVolume(csi.pb.NodeStageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(staging), volume_capability=capability(csi),
            volume_context=volume.volume_context), timeout=120)
        mounted.append((volume.volume_id, staging, target))
        node.NodePublishVolume(csi.pb.NodePublishVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(staging), target_path=str(target),
            volume_capability=capability(csi), volume_context=volume.volume_context), timeout=60)
        return target

    def unmount_all():
        while mounted:
            volume_id, staging, target = mounted.pop()
            node.NodeUnpublishVolume(csi.pb.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=str(target)),
                                     timeout=60)
            node.NodeUnstageVolume(csi.pb.NodeUnstageVolumeRequest(volume_id=volume_id,
                                                                   staging_target_path=str(staging)), timeout=60)

    controller.mount, controller.unmount_all = mount, unmount_all
    yield controller
    try:
        unmount_all()
    finally:
        for point in sorted(mounts_under(short_dir), reverse=True):
            subprocess.run(["umount", "-l", point], check=False)


@needs_gluster
def test_a_restore_holds_the_data_of_the_moment_of_the_snapshot(csi, gluster):
    source = gluster.volume("pvc-data", parameters={"volumetype": "replicate:3"})
    live = gluster.mount(source, "source")
    (live / "a.txt").write_text("A before the snapshot\n")
    (live / "dir").mkdir()
    (live / "dir/nested.txt").write_text("nested\n")
    snapshot = gluster.snapshot("snapshot-data", source.volume_id)
    (live / "a.txt").write_text("A after the snapshot\n")
    (live / "b.txt").write_text("B after the snapshot\n")

    same = gluster.volume("pvc-restored", snapshot_id=snapshot.snapshot_id)
    larger = gluster.volume("pvc-restored-larger", gib=3, snapshot_id=snapshot.snapshot_id)
    for restored, gib in ((same, 1), (larger, 3)):
        assert restored.capacity_bytes == gib * GIB
        assert restored.content_source.snapshot.snapshot_id == snapshot.snapshot_id
        assert gluster.heketi.volume(restored.volume_context["heketiVolumeID"])["size"] == gib
        assert restored.volume_id not in (source.volume_id, f"v1:{snapshot.snapshot_id[3:]}")
    assert gluster.volume("pvc-restored-larger", gib=3, snapshot_id=snapshot.snapshot_id) == larger, \
        "a repeated restore is the same volume"

    for restored in (same, larger):
        view = gluster.mount(restored, restored.volume_context["glusterVolume"])
        assert (view / "a.txt").read_text() == "A before the snapshot\n"
        assert (view / "dir/nested.txt").read_text() == "nested\n"
        assert not (view / "b.txt").exists()
        (view / "c.txt").write_text("written into a restore\n")
    assert (live / "a.txt").read_text() == "A after the snapshot\n"
    assert (live / "b.txt").read_text() == "B after the snapshot\n"
    assert not (live / "c.txt").exists()

    gluster.unmount_all()
    assert mounts_under(live.parents[2]) == []
    for volume in (same, larger, source):
        gluster.delete_volume(volume.volume_id)
    clone = gluster.heketi.volume(snapshot.snapshot_id.split(":")[1])
    assert heketi_testlib.gluster_volume_exists(clone["name"]), "the snapshot outlives its source"
    gluster.delete_snapshot(snapshot.snapshot_id)
    assert not heketi_testlib.gluster_volume_exists(clone["name"])
    assert all_heketi_volumes(gluster.heketi) == []


@needs_gluster
def test_a_snapshot_of_a_deleted_volume_still_restores(csi, gluster):
    source = gluster.volume("pvc-doomed")
    (gluster.mount(source, "doomed") / "kept.txt").write_text("outlives its volume\n")
    gluster.unmount_all()
    snapshot = gluster.snapshot("snapshot-doomed", source.volume_id)
    gluster.delete_volume(source.volume_id)
    assert not heketi_testlib.gluster_volume_exists(source.volume_context["glusterVolume"])

    # The snapshot still says where it came from, and restores.
    assert gluster.get(snapshot.snapshot_id) == snapshot
    assert gluster.list_all(source_volume_id=source.volume_id) == [snapshot]
    restored = gluster.volume("pvc-after-the-source", gib=2, snapshot_id=snapshot.snapshot_id)
    assert (gluster.mount(restored, "after") / "kept.txt").read_text() == "outlives its volume\n"
    # A repeat of the snapshot of the deleted volume answers it still; a new name cannot be made.
    assert gluster.snapshot("snapshot-doomed", source.volume_id) == snapshot
    assert error_of(gluster.stub.CreateSnapshot, snapshot_request(csi, "snapshot-doomed-2", source.volume_id)).code() \
        == C.NOT_FOUND

    gluster.unmount_all()
    gluster.delete_snapshot(snapshot.snapshot_id)
    gluster.delete_volume(restored.volume_id)
    assert all_heketi_volumes(gluster.heketi) == []
