"""Fixtures of the conformance suite: the real glusterfs-csi binary, already serving in `all` mode on
a Unix socket in front of the Heketi-compatible test server in gluster mode, set up by
csi-sanity/run, which passes it in through CSI_SANITY_* variables. Calls go through an independent
Python gRPC client (stubs generated from proto/csi.proto at test time).

Each test names its volumes and snapshots `sanity-<run>-<what>` and registers everything it creates,
snapshots, stages or publishes with the `res` fixture, which undoes it in reverse order at the end of the test even when
the test failed, and fails the test's teardown when an undo does not work.
"""

from __future__ import annotations

import json
import os
import re
import secrets as secrets_module
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import csitools  # noqa: E402

GIB = 1 << 30
TIMEOUT = 180  # seconds per RPC: gluster volume operations take seconds, never minutes
RUN = secrets_module.token_hex(3)

REQUIRED_ENV = {
    "CSI_SANITY_SOCKET": "Unix socket of the driver in all mode",
    "CSI_SANITY_NODE_ID": "--node-id that driver was given",
    "CSI_SANITY_WORK_DIR": "a directory for extra node plugins (their sockets, logs, staging and target paths)",
    "CSI_SANITY_KUBELET_DIR": "--kubelet-dir that driver was given (our staging and target paths go under it)",
    "CSI_SANITY_HEKETI_URL": "URL of the Heketi (test server) the driver uses",
    "CSI_SANITY_HEKETI_KEY_FILE": "file with the Heketi admin key",
    "CSI_SANITY_BRICK_ROOT": "--brick-root of the Heketi test server",
    "GLUSTERFS_CSI_BIN": "the glusterfs-csi binary (for extra node and controller processes)",
}


class Env:
    def __init__(self):
        missing = [f"{name} ({what})" for name, what in REQUIRED_ENV.items() if not os.environ.get(name)]
        if missing:
            pytest.exit("the conformance suite runs against an environment set up by csi-sanity/run; "
                        "start it with csi-sanity/run. Missing: " + "; ".join(missing), returncode=2)
        self.socket = Path(os.environ["CSI_SANITY_SOCKET"])
        self.node_id = os.environ["CSI_SANITY_NODE_ID"]
        self.work = Path(os.environ["CSI_SANITY_WORK_DIR"])
        self.kubelet_dir = Path(os.environ["CSI_SANITY_KUBELET_DIR"])
        self.heketi_url = os.environ["CSI_SANITY_HEKETI_URL"]
        self.key_file = Path(os.environ["CSI_SANITY_HEKETI_KEY_FILE"])
        self.key = self.key_file.read_text().strip()
        self.brick_root = Path(os.environ["CSI_SANITY_BRICK_ROOT"])
        self.binary = Path(os.environ["GLUSTERFS_CSI_BIN"])


@pytest.fixture(scope="session")
def env() -> Env:
    return Env()


@pytest.fixture(scope="session")
def pb():
    return csitools.stubs()[0]


@pytest.fixture(scope="session")
def rpc():
    return csitools.stubs()[1]


@pytest.fixture(scope="session")
def main_channel(env):
    channel = csitools.channel(env.socket)
    yield channel
    channel.close()


@pytest.fixture(scope="session")
def identity(rpc, main_channel):
    return rpc.IdentityStub(main_channel)


@pytest.fixture(scope="session")
def controller(rpc, main_channel):
    return rpc.ControllerStub(main_channel)


@pytest.fixture(scope="session")
def node(rpc, main_channel):
    return rpc.NodeStub(main_channel)


@pytest.fixture(scope="session")
def heketi(env) -> csitools.Heketi:
    return csitools.Heketi(env.heketi_url, env.key)


@pytest.fixture(scope="session")
def secrets(env) -> dict[str, str]:
    """The provisioner / controller-expand Secret of the in-tree layout: the Heketi key under `key`."""
    return {"key": env.key}


@pytest.fixture(scope="session")
def params():
    """StorageClass-like parameters. No resturl: the controller's --heketi-url is used (a documented,
    supported configuration). volumetype none (one brick) keeps gluster operations fast; tests about
    replication ask for replicate:3."""

    def make(**overrides) -> dict[str, str]:
        base = {"restuser": "admin", "volumetype": "none", "gidMin": "40000", "gidMax": "50000"}
        base.update(overrides)
        return {key: value for key, value in base.items() if value is not None}

    return make


def unique(what: str) -> str:
    return f"sanity-{RUN}-{what}"


# ------------------------------------------------------------------------------------ request helpers


@pytest.fixture(scope="session")
def cap(pb):
    """A mount VolumeCapability with the given access mode name (e.g. "MULTI_NODE_MULTI_WRITER")."""

    def make(mode: str = "MULTI_NODE_MULTI_WRITER", fs_type: str = "", flags=(), block: bool = False):
        capability = pb.VolumeCapability(
            access_mode=pb.VolumeCapability.AccessMode(mode=pb.VolumeCapability.AccessMode.Mode.Value(mode)))
        if block:
            capability.block.CopyFrom(pb.VolumeCapability.BlockVolume())
        else:
            capability.mount.CopyFrom(pb.VolumeCapability.MountVolume(fs_type=fs_type, mount_flags=list(flags)))
        return capability

    return make


def rpc_error(call, request, timeout: float = TIMEOUT) -> grpc.RpcError:
    """Calls and returns the error; fails the test when the call succeeds."""
    try:
        response = call(request, timeout=timeout)
    except grpc.RpcError as error:
        return error
    pytest.fail(f"expected an error, got success: {response}")


def expect_code(code: grpc.StatusCode, call, request, timeout: float = TIMEOUT) -> grpc.RpcError:
    error = rpc_error(call, request, timeout)
    assert error.code() == code, f"expected {code.name}, got {error.code().name}: {error.details()}"
    assert error.details(), "the spec requires a human-readable status message"
    return error


# ------------------------------------------------------------------------------ nodes and resources


class NodeHandle:
    """One node plugin (a driver process serving the Node service) and where its paths go."""

    def __init__(self, name: str, stub, node_id: str, base: Path):
        self.name, self.stub, self.node_id, self.base = name, stub, node_id, base

    def staging(self, test: str, what: str = "vol") -> Path:
        return self.base / test / "staging" / what

    def target(self, test: str, pod: str) -> Path:
        return self.base / test / "pods" / pod / "mount"


@pytest.fixture(scope="session")
def main_node(env, node) -> NodeHandle:
    return NodeHandle("main", node, env.node_id, env.kubelet_dir / "suite")


class Resources:
    """What a test made; undone in reverse order at teardown (idempotent undos, so a test may undo
    things itself first)."""

    def __init__(self, pb, controller, secrets, params, cap, test: str):
        self.pb, self.controller, self.secrets, self.test = pb, controller, secrets, test
        self.params, self.cap = params, cap
        self.undo: list[tuple[str, object]] = []

    def create(self, name: str, capacity: int | None = GIB, parameters=None, capabilities=None, source=None,
               limit: int = 0):
        """CreateVolume with the suite's StorageClass parameters and an RWX mount capability unless
        told otherwise; the volume is deleted at teardown."""
        parameters = self.params() if parameters is None else parameters
        capabilities = [self.cap()] if capabilities is None else capabilities
        request = self.pb.CreateVolumeRequest(
            name=name, volume_capabilities=capabilities, parameters=parameters, secrets=self.secrets)
        if capacity is not None or limit:
            request.capacity_range.CopyFrom(self.pb.CapacityRange(required_bytes=capacity or 0, limit_bytes=limit))
        if source is not None:
            request.volume_content_source.CopyFrom(source)
        volume = self.controller.CreateVolume(request, timeout=TIMEOUT).volume
        self.track_volume(volume.volume_id)
        return volume

    def track_volume(self, volume_id: str):
        request = self.pb.DeleteVolumeRequest(volume_id=volume_id, secrets=self.secrets)
        self.undo.append((f"DeleteVolume {volume_id}", lambda: self.controller.DeleteVolume(request, timeout=TIMEOUT)))

    def snapshot(self, name: str, source_volume_id: str, parameters=None):
        """CreateSnapshot with the suite's Secret (the snapshotter's); deleted at teardown, before
        the volumes made earlier (its source) and after those made later (restores)."""
        request = self.pb.CreateSnapshotRequest(name=name, source_volume_id=source_volume_id,
                                                parameters=parameters or {}, secrets=self.secrets)
        snapshot = self.controller.CreateSnapshot(request, timeout=TIMEOUT).snapshot
        self.track_snapshot(snapshot.snapshot_id)
        return snapshot

    def track_snapshot(self, snapshot_id: str):
        request = self.pb.DeleteSnapshotRequest(snapshot_id=snapshot_id, secrets=self.secrets)
        self.undo.append((f"DeleteSnapshot {snapshot_id}",
                          lambda: self.controller.DeleteSnapshot(request, timeout=TIMEOUT)))

    def stage(self, node: NodeHandle, volume, capability, staging: Path | None = None):
        staging = staging or node.staging(self.test)
        request = self.pb.NodeStageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(staging), volume_capability=capability,
            volume_context=volume.volume_context)
        unstage = self.pb.NodeUnstageVolumeRequest(volume_id=volume.volume_id, staging_target_path=str(staging))
        self.undo.append((f"NodeUnstageVolume {staging}",
                          lambda: node.stub.NodeUnstageVolume(unstage, timeout=TIMEOUT)))
        node.stub.NodeStageVolume(request, timeout=TIMEOUT)
        return staging

    def publish(self, node: NodeHandle, volume, capability, staging: Path, pod: str, readonly: bool = False):
        target = node.target(self.test, pod)
        request = self.pb.NodePublishVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(staging), target_path=str(target),
            volume_capability=capability, readonly=readonly, volume_context=volume.volume_context)
        unpublish = self.pb.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=str(target))
        self.undo.append((f"NodeUnpublishVolume {target}",
                          lambda: node.stub.NodeUnpublishVolume(unpublish, timeout=TIMEOUT)))
        node.stub.NodePublishVolume(request, timeout=TIMEOUT)
        return target

    def unpublish(self, node: NodeHandle, volume, target: Path):
        node.stub.NodeUnpublishVolume(self.pb.NodeUnpublishVolumeRequest(
            volume_id=volume.volume_id, target_path=str(target)), timeout=TIMEOUT)

    def unstage(self, node: NodeHandle, volume, staging: Path):
        node.stub.NodeUnstageVolume(self.pb.NodeUnstageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(staging)), timeout=TIMEOUT)

    def cleanup(self) -> list[str]:
        failures = []
        while self.undo:
            what, action = self.undo.pop()
            try:
                action()
            except grpc.RpcError as error:
                failures.append(f"{what}: {error.code().name} {error.details()}")
        return failures


@pytest.fixture
def res(request, pb, controller, secrets, params, cap):
    test = re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name)[:60]
    resources = Resources(pb, controller, secrets, params, cap, test)
    yield resources
    failures = resources.cleanup()
    assert not failures, "cleanup failed:\n" + "\n".join(failures)


# -------------------------------------------------------------------------------- extra processes


class ExtraDriver:
    def __init__(self, env: Env, name: str, args: list[str]):
        self.dir = env.work / "extra" / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "csi.sock"
        self.log_path = self.dir / "driver.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(env.binary), "--endpoint", f"unix://{self.socket}", "--log-level", "debug", *args],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            csitools.wait_ready(self.socket, 30, self.process)
        except RuntimeError as error:
            self.stop()
            raise RuntimeError(f"{error}; log:\n{self.log_path.read_text(errors='replace')}") from None
        self.channel = csitools.channel(self.socket)

    def stop(self):
        if getattr(self, "channel", None) is not None:
            self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def start_extra(env):
    """Starts more driver processes (other modes, other node IDs); all stopped at the end of the session.
    A node plugin gets `kubelet_dir` (made here) as its --kubelet-dir: its own, as on a node of its own."""
    started: list[ExtraDriver] = []

    def start(name: str, *args: str, kubelet_dir: Path | None = None) -> ExtraDriver:
        if kubelet_dir is not None:
            kubelet_dir.mkdir(parents=True, exist_ok=True)
            args = (*args, "--kubelet-dir", str(kubelet_dir))
        driver = ExtraDriver(env, name, list(args))
        started.append(driver)
        return driver

    yield start
    for driver in started:
        driver.stop()


@pytest.fixture(scope="session")
def node_only(env, start_extra):
    return start_extra("node-only", "--mode", "node", "--node-id", "sanity-node-only",
                       "--mount-log-dir", str(env.work / "extra/node-only/logs"), kubelet_dir=env.work / "node-only")


@pytest.fixture(scope="session")
def controller_only(env, start_extra):
    """A controller with no default Heketi (no --heketi-url): it cannot list volumes."""
    return start_extra("controller-only", "--mode", "controller")


@pytest.fixture(scope="session")
def two_nodes(env, rpc, start_extra) -> list[NodeHandle]:
    """Two more node plugins, as on two Kubernetes nodes: own node IDs, sockets and staging dirs."""
    handles = []
    for name in ("node-b", "node-c"):
        driver = start_extra(name, "--mode", "node", "--node-id", f"sanity-{name}",
                             "--mount-log-dir", str(env.work / "extra" / name / "logs"), kubelet_dir=env.work / name)
        handles.append(NodeHandle(name, rpc.NodeStub(driver.channel), f"sanity-{name}", env.work / name))
    return handles


# ------------------------------------------------------------------------------------------ helpers


def heketi_id(volume) -> str:
    return volume.volume_context["heketiVolumeID"]


def statvfs_usage(path: Path) -> tuple[int, int]:
    stat = os.statvfs(path)
    return stat.f_blocks * stat.f_frsize, stat.f_files


@pytest.fixture(scope="module")
def shared_volume(pb, controller, secrets, params, cap):
    """One 1 GiB volume for the tests of a module that only look at a volume; deleted afterwards."""
    request = pb.CreateVolumeRequest(
        name=unique(f"shared-{secrets_module.token_hex(2)}"), capacity_range=pb.CapacityRange(required_bytes=GIB),
        volume_capabilities=[cap()], parameters=params(), secrets=secrets)
    volume = controller.CreateVolume(request, timeout=TIMEOUT).volume
    yield volume
    controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=volume.volume_id, secrets=secrets), timeout=TIMEOUT)


def heketi_requests(heketi, route: str) -> int:
    """How many requests the Heketi test server got for a route template, e.g. "POST /volumes"."""
    status, body = heketi.request("GET", "/_test/requests", auth=False)
    assert status == 200, body
    return json.loads(body)["counts"].get(route, 0)


def unknown_volume_id() -> str:
    """A volume ID in this driver's format for a Heketi volume that does not exist."""
    return "v1:" + secrets_module.token_hex(16) + ":"


def unknown_snapshot_id() -> str:
    """A snapshot ID in this driver's format for a Heketi clone that does not exist."""
    return "s1:" + secrets_module.token_hex(16) + ":"
