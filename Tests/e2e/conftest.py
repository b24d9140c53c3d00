"""Fixtures for end-to-end tests: the real glusterfs-csi binary on a real Unix socket, called with
Python grpcio and stubs generated from proto/csi.proto at test time (an independent client)."""

import functools
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import pytest

REPO = Path(__file__).resolve().parents[2]


def driver_binary() -> Path:
    path = Path(os.environ.get("GLUSTERFS_CSI_BIN", REPO / ".build/debug/glusterfs-csi"))
    if not path.exists():
        pytest.exit(f"{path} does not exist: run 'swift build' first or set GLUSTERFS_CSI_BIN", returncode=2)
    return path


@functools.cache
def _help_text(binary: str) -> str:
    result = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    return result.stdout + result.stderr


def driver_knows(flag: str) -> bool:
    """Whether the binary under test has `flag` (its --help lists it). GLUSTERFS_CSI_BIN may name
    a build from before the flag."""
    return flag in _help_text(str(driver_binary()))


def kubelet_dir_args(directory: Path) -> list[str]:
    """`--kubelet-dir DIRECTORY` for a node or all-mode driver: the node refuses staging, target and
    volume paths outside it, and does not start when it does not exist (the default,
    /var/lib/kubelet, exists on a Kubernetes node, not on a test machine). Nothing for a binary
    without the flag."""
    return ["--kubelet-dir", str(directory)] if driver_knows("--kubelet-dir") else []


def serves_node(args: list[str], env: dict[str, str] | None = None) -> bool:
    """Whether a driver started with `args` (and `env` on top of ours) serves the Node service:
    --mode node or all, the binary's default being all."""
    mode = {**os.environ, **(env or {})}.get("GLUSTERFS_CSI_MODE", "all")
    for index, arg in enumerate(args):
        if arg == "--mode" and index + 1 < len(args):
            mode = args[index + 1]
        elif arg.startswith("--mode="):
            mode = arg.split("=", 1)[1]
    return mode in ("node", "all")


def names_kubelet_dir(args: list[str], env: dict[str, str] | None = None) -> bool:
    return any(a == "--kubelet-dir" or a.startswith("--kubelet-dir=") for a in args) or \
        "GLUSTERFS_CSI_KUBELET_DIR" in (env or {})


@pytest.fixture(scope="session")
def csi():
    """The csi_pb2 / csi_pb2_grpc modules, generated from proto/csi.proto into a temp dir."""
    from grpc_tools import protoc
    import grpc_tools

    out = Path(tempfile.mkdtemp(prefix="csi-stubs-"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    status = protoc.main([
        "protoc", f"-I{REPO / 'proto'}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
        str(REPO / "proto/csi.proto"),
    ])
    assert status == 0, "protoc failed on proto/csi.proto"
    sys.path.insert(0, str(out))
    import csi_pb2
    import csi_pb2_grpc

    class Stubs:
        pb = csi_pb2
        grpc = csi_pb2_grpc

    return Stubs


class Driver:
    """One running glusterfs-csi process. `prefix` goes before the binary (e.g. `unshare -m ...`,
    which execs it: `process` is then the driver itself)."""

    def __init__(self, socket: Path, log: Path, args: list[str], env: dict[str, str] | None = None,
                 prefix: list[str] | None = None):
        self.socket = socket
        self.log_path = log
        self.args = args
        self._log_file = open(log, "ab")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.process = subprocess.Popen(
            [*(prefix or []), str(driver_binary()), "--endpoint", f"unix://{socket}", *args],
            stdout=self._log_file, stderr=self._log_file, env=full_env,
        )
        self._channels = []

    def wait_ready(self, timeout: float = 10.0) -> "Driver":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"driver exited with {self.process.returncode}:\n{self.log()}")
            if self.socket.exists():
                try:
                    grpc.channel_ready_future(self.channel()).result(timeout=0.5)
                    return self
                except grpc.FutureTimeoutError:
                    pass
            time.sleep(0.01)
        raise AssertionError(f"driver did not serve {self.socket} within {timeout}s:\n{self.log()}")

    def channel(self, **options) -> grpc.Channel:
        channel = grpc.insecure_channel(
            f"unix://{self.socket}",
            options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)],
        )
        self._channels.append(channel)
        return channel

    def log(self) -> str:
        self._log_file.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.close()

    def close(self):
        for channel in self._channels:
            channel.close()
        self._channels.clear()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


@pytest.fixture
def short_dir():
    """A directory with a short path: a Unix socket path must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="gcsi-", dir="/tmp"))
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


@pytest.fixture
def start_driver(short_dir):
    """Starts drivers on sockets under short_dir; kills whatever is left at the end of the test.
    A driver serving the Node service gets `--kubelet-dir short_dir` (where the tests' staging and
    target paths are) unless its arguments or `env` name one."""
    started: list[Driver] = []
    tmp_path = short_dir

    def start(*args: str, socket: Path | None = None, env: dict[str, str] | None = None, ready: bool = True,
              prefix: list[str] | None = None):
        index = len(started)
        args = list(args)
        if serves_node(args, env) and not names_kubelet_dir(args, env):
            args += kubelet_dir_args(tmp_path)
        driver = Driver(socket or tmp_path / f"run{index}/csi.sock", tmp_path / f"driver{index}.log", args, env,
                        prefix)
        started.append(driver)
        return driver.wait_ready() if ready else driver

    yield start
    for driver in started:
        driver.close()


@pytest.fixture
def driver(start_driver):
    """A driver in all mode with test hooks and trace logging."""
    return start_driver("--mode", "all", "--log-level", "trace", "--enable-test-hooks")


# --- Heketi-compatible test server (Tests/heketi-server), shared with its own test suite.

sys.path.insert(0, str(REPO / "Tests/heketi-server"))
import heketi_testlib  # noqa: E402


@pytest.fixture
def start_heketi(short_dir):
    """Starts Heketi test servers; each is reset (volumes deleted) and stopped at the end."""
    servers = []

    def start(*args: str):
        server = heketi_testlib.HeketiServer(short_dir, *args)
        servers.append(server)
        server.start()
        server.url = f"http://127.0.0.1:{server.port}"
        server.key_file = short_dir / f"heketi-key-{len(servers)}"
        server.key_file.write_text(heketi_testlib.ADMIN_KEY + "\n")
        return server

    yield start
    for server in servers:
        if server.proc and server.proc.poll() is None:
            try:
                server.test_api("POST", "/_test/reset", {"volumes": True})
            except OSError:
                pass
        server.stop()


@pytest.fixture
def heketi(start_heketi):
    return start_heketi()


def controller_args(server, *extra: str) -> list[str]:
    return ["--mode", "controller", "--heketi-url", server.url, "--heketi-key-file", str(server.key_file),
            "--log-level", "trace", *extra]
