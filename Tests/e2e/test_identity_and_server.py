"""The real binary over its Unix socket: Identity values, dispatch errors, limits, concurrency."""

import threading
import time

import grpc
import pytest
from google.protobuf import duration_pb2


def identity(csi, driver):
    return csi.grpc.IdentityStub(driver.channel())


def test_plugin_info_reports_name_and_version(csi, driver):
    info = identity(csi, driver).GetPluginInfo(csi.pb.GetPluginInfoRequest())
    assert info.name == "glusterfs.csi.heketi.io"
    assert info.vendor_version == "0.1.0"


def test_capabilities_in_all_mode_advertise_controller_and_online_expansion(csi, driver):
    caps = identity(csi, driver).GetPluginCapabilities(csi.pb.GetPluginCapabilitiesRequest()).capabilities
    services = [c.service.type for c in caps if c.HasField("service")]
    expansions = [c.volume_expansion.type for c in caps if c.HasField("volume_expansion")]
    assert services == [csi.pb.PluginCapability.Service.CONTROLLER_SERVICE]
    assert expansions == [csi.pb.PluginCapability.VolumeExpansion.ONLINE]


def test_node_mode_advertises_no_controller(csi, start_driver):
    driver = start_driver("--mode", "node")
    caps = identity(csi, driver).GetPluginCapabilities(csi.pb.GetPluginCapabilitiesRequest()).capabilities
    assert list(caps) == []


def test_probe_is_ready(csi, driver):
    response = identity(csi, driver).Probe(csi.pb.ProbeRequest())
    assert response.HasField("ready") and response.ready.value is True


def test_driver_name_from_flag_and_environment(csi, start_driver):
    by_flag = start_driver("--driver-name", "gluster.example.com")
    assert identity(csi, by_flag).GetPluginInfo(csi.pb.GetPluginInfoRequest()).name == "gluster.example.com"
    by_env = start_driver(env={"GLUSTERFS_CSI_DRIVER_NAME": "env.example.com"})
    assert identity(csi, by_env).GetPluginInfo(csi.pb.GetPluginInfoRequest()).name == "env.example.com"


def test_unknown_method_is_unimplemented(driver):
    call = driver.channel().unary_unary("/csi.v1.Nothing/Here")
    with pytest.raises(grpc.RpcError) as error:
        call(b"")
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "/csi.v1.Nothing/Here" in error.value.details()


def test_garbage_request_is_invalid_argument(driver):
    call = driver.channel().unary_unary("/csi.v1.Identity/GetPluginInfo")
    with pytest.raises(grpc.RpcError) as error:
        call(b"\xff\xff\xff\xff")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "GetPluginInfoRequest" in error.value.details()


def test_message_over_the_limit_is_resource_exhausted(csi, start_driver):
    driver = start_driver("--max-message-size", "65536")
    call = driver.channel().unary_unary("/csi.v1.Identity/GetPluginInfo")
    with pytest.raises(grpc.RpcError) as error:
        call(b"x" * 70000)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # A request under the limit still works afterwards.
    assert identity(csi, driver).Probe(csi.pb.ProbeRequest()).ready.value is True


def test_default_limit_is_four_mebibytes(driver):
    call = driver.channel().unary_unary("/csi.v1.Identity/GetPluginInfo")
    with pytest.raises(grpc.RpcError) as error:
        call(b"x" * ((4 << 20) + 1))
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_eight_concurrent_clients(csi, driver):
    failures = []

    def client():
        stub = identity(csi, driver)
        for _ in range(200):
            try:
                assert stub.Probe(csi.pb.ProbeRequest(), timeout=10).ready.value
                assert stub.GetPluginInfo(csi.pb.GetPluginInfoRequest(), timeout=10).name
            except Exception as error:  # collected and asserted below
                failures.append(error)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def sleep_call(driver):
    return driver.channel().unary_unary(
        "/glusterfs.csi.test.v1.TestHooks/Sleep", request_serializer=duration_pb2.Duration.SerializeToString
    )


def test_deadline_shorter_than_handler_cancels_the_handler(driver):
    with pytest.raises(grpc.RpcError) as error:
        sleep_call(driver)(duration_pb2.Duration(seconds=5), timeout=0.3)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The handler saw the cancellation (rather than sleeping on for five seconds).
    wait_for_log(driver, "test hook sleep cancelled", timeout=2)
    assert "test hook sleep finished" not in driver.log()


def test_client_cancellation_reaches_the_handler(driver):
    future = sleep_call(driver).future(duration_pb2.Duration(seconds=5))
    wait_for_log(driver, "rpc started rpc.method=/glusterfs.csi.test.v1.TestHooks/Sleep", timeout=2)
    future.cancel()
    wait_for_log(driver, "test hook sleep cancelled", timeout=2)


def wait_for_log(driver, text, timeout, count=1):
    """Waits until `text` appears in the driver's log `count` times."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.log().count(text) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{text!r} not logged {count} time(s) within {timeout}s:\n{driver.log()}")
