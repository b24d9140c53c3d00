"""The controller of the real binary against the Heketi-compatible test server (mock mode)."""

import signal
import threading
import time

import grpc
import pytest

import heketi_testlib
from conftest import controller_args

GIB = 1 << 30
SECRETS = {"key": heketi_testlib.ADMIN_KEY}


def create_request(csi, name, gib=1, parameters=None, secrets=SECRETS):
    capability = csi.pb.VolumeCapability(
        mount=csi.pb.VolumeCapability.MountVolume(),
        access_mode=csi.pb.VolumeCapability.AccessMode(mode=csi.pb.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER),
    )
    return csi.pb.CreateVolumeRequest(
        name=name, capacity_range=csi.pb.CapacityRange(required_bytes=gib * GIB), volume_capabilities=[capability],
        parameters=parameters or {}, secrets=secrets,
    )


def heketi_volumes(server):
    return [server.volume(vid) for vid in server.request("GET", "/volumes").json()["volumes"]]


def requests_to(server, key):
    return server.test_api("GET", "/_test/requests").json()["counts"].get(key, 0)


def create_until_done(stub, request, timeout=60):
    """Retries CreateVolume the way the external-provisioner does, until it stops answering ABORTED."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return stub.CreateVolume(request, timeout=30)
        except grpc.RpcError as error:
            retryable = error.code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE,
                                         grpc.StatusCode.DEADLINE_EXCEEDED)
            if not retryable or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_full_volume_lifecycle(csi, heketi, start_driver):
    driver = start_driver(*controller_args(heketi))
    stub = csi.grpc.ControllerStub(driver.channel())
    parameters = {"resturl": heketi.url, "restuser": "admin", "volumetype": "replicate:3", "gidMin": "40000",
                  "gidMax": "50000"}
    created = stub.CreateVolume(create_request(csi, "pvc-life", 10, parameters)).volume
    assert created.capacity_bytes == 10 * GIB
    [volume] = heketi_volumes(heketi)
    assert created.volume_id == f"v1:{volume['id']}:{heketi.url}"
    assert volume["size"] == 10 and volume["gid"] == 40000
    assert volume["durability"]["replicate"]["replica"] == 3
    assert created.volume_context["glusterVolume"] == volume["name"]
    assert created.volume_context["glusterHosts"] == ",".join(volume["mount"]["glusterfs"]["hosts"])

    validated = stub.ValidateVolumeCapabilities(csi.pb.ValidateVolumeCapabilitiesRequest(
        volume_id=created.volume_id, volume_capabilities=create_request(csi, "x").volume_capabilities, secrets=SECRETS))
    assert validated.HasField("confirmed")

    expanded = stub.ControllerExpandVolume(csi.pb.ControllerExpandVolumeRequest(
        volume_id=created.volume_id, capacity_range=csi.pb.CapacityRange(required_bytes=15 * GIB), secrets=SECRETS))
    assert expanded.capacity_bytes == 15 * GIB and not expanded.node_expansion_required
    assert heketi.volume(volume["id"])["size"] == 15

    listed = stub.ListVolumes(csi.pb.ListVolumesRequest())
    assert [entry.volume.capacity_bytes for entry in listed.entries] == [15 * GIB]

    stub.DeleteVolume(csi.pb.DeleteVolumeRequest(volume_id=created.volume_id, secrets=SECRETS))
    assert heketi_volumes(heketi) == []
    stub.DeleteVolume(csi.pb.DeleteVolumeRequest(volume_id=created.volume_id, secrets=SECRETS))


def test_fifty_concurrent_creates_of_one_name_make_one_volume(csi, heketi, start_driver):
    heketi.faults(op_delay_ms=300)
    driver = start_driver(*controller_args(heketi))
    ids, errors = [], []

    def provisioner():
        stub = csi.grpc.ControllerStub(driver.channel())
        try:
            ids.append(create_until_done(stub, create_request(csi, "pvc-same")).volume.volume_id)
        except grpc.RpcError as error:
            errors.append(error)

    threads = [threading.Thread(target=provisioner) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(ids)) == 1 and len(ids) == 50
    assert len(heketi_volumes(heketi)) == 1
    assert requests_to(heketi, "POST /volumes") == 1


def test_fifty_names_at_once_under_heketis_limit_all_succeed(csi, start_heketi, start_driver):
    heketi = start_heketi("--max-inflight", "8")
    heketi.faults(op_delay_ms=200)
    driver = start_driver(*controller_args(heketi))
    results, errors = [], []

    def provisioner(index):
        stub = csi.grpc.ControllerStub(driver.channel())
        try:
            results.append(create_until_done(stub, create_request(csi, f"pvc-bulk-{index}")).volume.volume_id)
        except grpc.RpcError as error:
            errors.append((error.code(), error.details()))

    threads = [threading.Thread(target=provisioner, args=(index,)) for index in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(results)) == 50
    assert len(heketi_volumes(heketi)) == 50


def test_driver_killed_mid_create_then_restarted_adopts_the_volume(csi, heketi, start_driver, short_dir):
    heketi.faults(op_delay_ms=2000)
    sock = short_dir / "kill/csi.sock"
    first = start_driver(*controller_args(heketi), socket=sock)
    future = csi.grpc.ControllerStub(first.channel()).CreateVolume.future(create_request(csi, "pvc-killed"))
    deadline = time.monotonic() + 10
    while requests_to(heketi, "POST /volumes") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()
    with pytest.raises(grpc.RpcError):
        future.result(timeout=10)

    second = start_driver(*controller_args(heketi), socket=sock)
    response = create_until_done(csi.grpc.ControllerStub(second.channel()), create_request(csi, "pvc-killed"))
    [volume] = heketi_volumes(heketi)
    assert response.volume.volume_id == f"v1:{volume['id']}:{heketi.url}"
    assert "adopting" in second.log()


def test_heketi_restarted_mid_create_still_ends_with_one_volume(csi, heketi, start_driver):
    heketi.faults(op_delay_ms=1500)
    driver = start_driver(*controller_args(heketi))
    stub = csi.grpc.ControllerStub(driver.channel())
    future = stub.CreateVolume.future(create_request(csi, "pvc-heketi-restart"))
    deadline = time.monotonic() + 10
    while requests_to(heketi, "POST /volumes") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    heketi.test_api("POST", "/_test/restart")  # the queue is lost; the create becomes stale
    heketi.faults(op_delay_ms=0)
    with pytest.raises(grpc.RpcError) as first_error:
        future.result(timeout=30)
    assert first_error.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED)

    cleaned = False
    deadline = time.monotonic() + 60
    while True:
        try:
            response = stub.CreateVolume(create_request(csi, "pvc-heketi-restart"), timeout=30)
            break
        except grpc.RpcError as error:
            assert time.monotonic() < deadline, error.details()
            if "operations/pending/cleanup" in (error.details() or "") and not cleaned:
                # What the message tells an admin to do.
                assert heketi.request("POST", "/operations/pending/cleanup", {}).status == 202
                cleaned = True
            time.sleep(0.2)
    volumes = heketi_volumes(heketi)
    assert len(volumes) == 1
    assert response.volume.volume_id.startswith(f"v1:{volumes[0]['id']}:")


def test_delete_after_the_storage_class_is_gone_needs_only_id_and_secrets(csi, heketi, start_driver):
    driver = start_driver(*controller_args(heketi))
    created = csi.grpc.ControllerStub(driver.channel()).CreateVolume(
        create_request(csi, "pvc-orphan", parameters={"resturl": heketi.url})).volume
    driver.terminate()
    # A new controller without any default Heketi or key: the ID names the Heketi, the Secret has the key.
    bare = start_driver("--mode", "controller")
    csi.grpc.ControllerStub(bare.channel()).DeleteVolume(
        csi.pb.DeleteVolumeRequest(volume_id=created.volume_id, secrets=SECRETS))
    assert heketi_volumes(heketi) == []


def test_a_deadline_decades_away_is_honoured_like_any_other(csi, heketi, start_driver):
    """A timeout of 31 years (grpcio cannot send more than ~292 years; the shim treats anything
    beyond that as no deadline) reaches the driver's timers without overflowing them."""
    driver = start_driver(*controller_args(heketi))
    stub = csi.grpc.ControllerStub(driver.channel())
    created = stub.CreateVolume(create_request(csi, "pvc-far-deadline"), timeout=10**9).volume
    assert [v["name"] for v in heketi_volumes(heketi)] == [created.volume_context["glusterVolume"]]
    stub.DeleteVolume(csi.pb.DeleteVolumeRequest(volume_id=created.volume_id, secrets=SECRETS), timeout=10**9)
    assert heketi_volumes(heketi) == []


def test_a_wrong_key_says_what_to_fix(csi, heketi, start_driver):
    driver = start_driver("--mode", "controller", "--heketi-url", heketi.url)
    with pytest.raises(grpc.RpcError) as error:
        csi.grpc.ControllerStub(driver.channel()).CreateVolume(
            create_request(csi, "pvc-badkey", secrets={"key": "wrong"}))
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "key" in error.value.details()
    assert "wrong" not in error.value.details()


def test_bad_parameters_name_the_key(csi, heketi, start_driver):
    driver = start_driver(*controller_args(heketi))
    with pytest.raises(grpc.RpcError) as error:
        csi.grpc.ControllerStub(driver.channel()).CreateVolume(
            create_request(csi, "pvc-bad", parameters={"volumetype": "raid5"}))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "volumetype" in error.value.details() and "raid5" in error.value.details()
    assert heketi_volumes(heketi) == []


def test_clone_and_capacity(csi, heketi, start_driver):
    driver = start_driver(*controller_args(heketi))
    stub = csi.grpc.ControllerStub(driver.channel())
    source = stub.CreateVolume(create_request(csi, "pvc-src", 2)).volume
    request = create_request(csi, "pvc-clone", 4)
    request.volume_content_source.volume.volume_id = source.volume_id
    clone = stub.CreateVolume(request).volume
    assert clone.capacity_bytes == 4 * GIB
    assert clone.content_source.volume.volume_id == source.volume_id
    stub.CreateVolume(request)
    assert len(heketi_volumes(heketi)) == 2, "a repeated clone must not clone twice"

    capacity = stub.GetCapacity(csi.pb.GetCapacityRequest(parameters={"volumetype": "none"}))
    assert capacity.available_capacity == heketi.free_kib() * 1024
    replicated = stub.GetCapacity(csi.pb.GetCapacityRequest(parameters={"volumetype": "replicate:3"}))
    assert abs(replicated.available_capacity - heketi.free_kib() * 1024 // 3) < 1024


def test_the_heketi_key_never_reaches_the_log(csi, heketi, start_driver):
    driver = start_driver(*controller_args(heketi))
    stub = csi.grpc.ControllerStub(driver.channel())
    created = stub.CreateVolume(create_request(csi, "pvc-secret")).volume
    stub.ControllerExpandVolume(csi.pb.ControllerExpandVolumeRequest(
        volume_id=created.volume_id, capacity_range=csi.pb.CapacityRange(required_bytes=2 * GIB), secrets=SECRETS))
    stub.DeleteVolume(csi.pb.DeleteVolumeRequest(volume_id=created.volume_id, secrets=SECRETS))
    log = driver.log()
    assert "rpc.method=/csi.v1.Controller/CreateVolume" in log
    assert "<redacted>" in log  # request bodies were logged, with the secret blanked
    assert heketi_testlib.ADMIN_KEY not in log
