"""The node plugin as a DaemonSet pod, for the restart harness. TEST SUPPORT ONLY: it runs as root.

`NodePlugin`: one container at a time on one socket, on a machine of restart_machines.py;
`restart()` kills the container the way a runtime does (SIGKILL of every process in its cgroups)
and starts a new one on the same socket (the old socket file is left behind, as after a crash).
With `pid_namespace=True` the driver is PID 1 of a PID namespace of its own (`unshare --pid
--fork`), as in a pod without hostPID. Its CSI calls take a StagedVolume (restart_volumes.py).

grpc is imported when a plugin starts, not before: the worker entry points of restart_harness.py
import this module and must start fast.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

from restart_cgroups import FakeContainer
from restart_system import read_argv, run, send_signal
from restart_volumes import StagedVolume

RPC_TIMEOUT = 60  # seconds per node RPC


@functools.cache
def binary_help(binary: Path) -> str:
    return run(str(binary), "--help", check=False).stdout


def supports_placement(binary: Path) -> bool:
    return "--mount-placement" in binary_help(binary)


def supports_kubelet_dir(binary: Path) -> bool:
    return "--kubelet-dir" in binary_help(binary)


class NodePlugin:
    """The node plugin in a fake container on `machine`, restarted like a runtime restarts a pod's
    container: SIGKILL of every process in its cgroup, then a new container on the same socket.

    Its --kubelet-dir is `kubelet_dir`, by default `workdir`, where the StagedVolumes of a
    Scenario put their staging and target paths (on a SystemdMachine under /var/lib, which the
    namespace shares). A binary from before that flag gets none."""

    def __init__(self, csi, *, binary: Path, machine, workdir: Path, placement: str | None,
                 pid_namespace: bool = False, log_level: str = "debug", node_id: str = "gcsi-restart-node",
                 freeze: bool = True, kubelet_dir: Path | None = None):
        self.csi = csi
        self.binary = Path(binary).resolve()  # nsenter -m starts at the namespace's root
        self.machine = machine
        self.workdir = workdir
        self.kubelet_dir = kubelet_dir or workdir
        self.socket = workdir / "plugin/csi.sock"
        if len(str(self.socket)) >= 108:
            raise ValueError(f"socket path {self.socket} is too long for a Unix socket")
        self.placement = placement
        self.pid_namespace = pid_namespace
        self.log_level = log_level
        self.node_id = node_id
        self.freeze = freeze
        self.tag = secrets.token_hex(3)
        self.generation = -1
        self.container: FakeContainer | None = None
        self.process: subprocess.Popen | None = None
        self.channel = None
        self.node = None
        self.log_path: Path | None = None
        self._log = None
        self.leftover_container_cgroups: list[str] = []
        self.busy_containers: list[FakeContainer] = []  # killed, but their cgroups still held a process

    def argv(self) -> list[str]:
        args = [str(self.binary), "--mode", "node", "--endpoint", f"unix://{self.socket}", "--node-id",
                self.node_id, "--mount-log-dir", str(self.workdir / "logs"), "--log-level", self.log_level]
        if self.placement and (self.placement != "none" or supports_placement(self.binary)):
            args += ["--mount-placement", self.placement]
        if supports_kubelet_dir(self.binary):
            args += ["--kubelet-dir", str(self.kubelet_dir)]
        if self.pid_namespace:
            args = ["unshare", "--pid", "--fork", "--kill-child", "--", *args]
        return self.machine.wrap(args)

    def start(self, timeout: float = 30.0) -> "NodePlugin":
        import grpc

        self.generation += 1
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.kubelet_dir.mkdir(parents=True, exist_ok=True)  # the driver does not start without it
        self.container = FakeContainer(f"gcsi-ctr-{self.tag}-{self.generation}", self.machine.container_parents(),
                                       freeze=self.freeze).create()
        self.log_path = self.workdir / f"plugin-{self.generation}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in _reap)
        self.process = subprocess.Popen(self.container.join_argv(self.argv()), stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=self._log, start_new_session=True)
        options = [("grpc.use_local_subchannel_pool", 1)]  # no reconnect back-off shared between channels
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the node plugin exited with {self.process.returncode}:\n{self.log()}")
            # A fresh channel per try: a failed connection puts a channel into back-off (1 s and
            # more), and the old instance's socket file is there until the new one replaces it.
            channel = grpc.insecure_channel(f"unix://{self.socket}", options=options)
            try:
                self.csi.grpc.IdentityStub(channel).Probe(self.csi.pb.ProbeRequest(), timeout=0.5)
                break
            except grpc.RpcError:
                channel.close()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the node plugin did not answer Probe within {timeout:.0f} s:\n"
                                       f"{self.log()}") from None
                time.sleep(0.01)
        self.channel = channel
        self.node = self.csi.grpc.NodeStub(channel)
        return self

    def log(self) -> str:
        if self._log and not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def placement_line(self) -> str | None:
        """The start-up log line that names the placement chosen, if the binary writes one."""
        return next((line for line in self.log().splitlines() if "mount placement chosen" in line), None)

    def pids(self) -> set[int]:
        return self.container.procs() if self.container else set()

    def driver_pids(self) -> set[int]:
        """Processes of the container running the driver binary itself (not unshare/nsenter)."""
        out = set()
        for pid in self.pids():
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                exe = ""
            argv = read_argv(pid)
            if exe == str(self.binary) or (argv and argv[0] == str(self.binary)):
                out.add(pid)
        return out

    def _close_channel(self):
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def _reap(self):
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log and not self._log.closed:
            self._log.close()

    def kill(self) -> dict:
        """The runtime's stop: SIGKILL every process of the container, reap, remove its cgroups."""
        self._close_channel()
        report = self.container.kill()
        self._reap()
        report["cgroups_left"] = self.container.remove()
        if report["cgroups_left"]:
            self.leftover_container_cgroups += report["cgroups_left"]
            self.busy_containers.append(self.container)
        return report

    def remove_busy_containers(self) -> list[str]:
        """Tries again to remove the cgroups of killed containers (once what held them is gone)."""
        failures = []
        for container in self.busy_containers:
            failures += container.remove()
        self.busy_containers.clear()
        return failures

    def restart(self) -> dict:
        """Kill the container, start a new one on the same socket; timings in the returned dict."""
        started, report_started = time.monotonic(), time.time()
        report = self.kill()
        report["started_at"] = report_started
        ready = time.monotonic()
        self.start()
        report["ready_seconds"] = time.monotonic() - ready
        report["total_seconds"] = time.monotonic() - started
        return report

    def stop(self):
        """SIGTERM to the driver (a graceful stop), then whatever is left as a runtime does."""
        self._close_channel()
        if self.container is None:
            return
        for pid in self.driver_pids():
            send_signal(pid, signal.SIGTERM)
        try:
            if self.process is not None:
                self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        self.container = None

    # -- CSI calls

    def capability(self):
        pb = self.csi.pb
        return pb.VolumeCapability(mount=pb.VolumeCapability.MountVolume(), access_mode=pb.VolumeCapability.AccessMode(
            mode=pb.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER))

    def stage(self, volume: StagedVolume):
        return self.node.NodeStageVolume(self.csi.pb.NodeStageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(volume.staging), volume_capability=self.capability(),
            volume_context=volume.context), timeout=RPC_TIMEOUT)

    def publish(self, volume: StagedVolume):
        return self.node.NodePublishVolume(self.csi.pb.NodePublishVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(volume.staging), target_path=str(volume.target),
            volume_capability=self.capability(), volume_context=volume.context), timeout=RPC_TIMEOUT)

    def unpublish(self, volume: StagedVolume):
        return self.node.NodeUnpublishVolume(self.csi.pb.NodeUnpublishVolumeRequest(
            volume_id=volume.volume_id, target_path=str(volume.target)), timeout=RPC_TIMEOUT)

    def unstage(self, volume: StagedVolume):
        return self.node.NodeUnstageVolume(self.csi.pb.NodeUnstageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(volume.staging)), timeout=RPC_TIMEOUT)

    def stats(self, volume: StagedVolume):
        return self.node.NodeGetVolumeStats(self.csi.pb.NodeGetVolumeStatsRequest(
            volume_id=volume.volume_id, volume_path=str(volume.target)), timeout=RPC_TIMEOUT)
