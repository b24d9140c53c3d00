"""Shared parts of bench/controller-heketi, bench/node-mount and bench/identity-probe: the binary,
the C floors, the CSI stubs, the driver process, statistics, and the table and machine-load lines
they print.

Benchmarks measure and print; nothing in here asserts anything about time.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRATCH = ".build-bench2"
DEFAULT_BINARY = REPO / SCRATCH / "release/glusterfs-csi"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# Setup: binary and stubs


def build_binary() -> Path:
    print(f"building the release binary (scratch path {SCRATCH}) ...", file=sys.stderr, flush=True)
    # SwiftPM does not relink when only a linker script or the symbol order changed: always relink.
    DEFAULT_BINARY.unlink(missing_ok=True)
    # The configuration the image ships (Dockerfile): static Swift runtime, static gRPC core.
    subprocess.run(
        ["swift", "build", "-c", "release", "--static-swift-stdlib", "--scratch-path", SCRATCH, "--product",
         "glusterfs-csi"],
        cwd=REPO, check=True, stdout=sys.stderr, env={**os.environ, "GLUSTERFS_CSI_STATIC_GRPC": "1"},
    )
    return DEFAULT_BINARY


def build_floor(main_source: Path, out: Path, libraries: tuple[str, ...] = ()) -> Path | None:
    """A C-only server over the driver's gRPC shim (`main_source` plus Sources/CGRPCShim), built -O2
    and linked like the image's binary: gRPC core without TLS and libstdc++ static, lld, packed
    relocations. `libraries` are extra `-l` names. The benches' floors: what the same work costs
    with no Swift at all. None, after a note on stderr, when it cannot be built."""
    shim = REPO / "Sources/CGRPCShim"
    lld = shutil.which("ld.lld") or next((str(p) for p in Path("/opt/swift/usr/bin").glob("ld.lld")), None)
    command = ["gcc", "-O2", f"-I{shim / 'include'}", f"-I{shim}", "-o", str(out), str(main_source),
               *map(str, sorted(shim.glob("*.c"))), f"-L{shim / 'static-link'}", "-lcgrpcshim_grpc", "-lstdc++",
               "-lm", "-lpthread", *(f"-l{name}" for name in libraries)]
    if lld:
        command[1:1] = ["-fuse-ld=lld", f"-B{Path(lld).parent}", "-Wl,-z,pack-relative-relocs"]
    else:
        print("note: no ld.lld found; the floor is linked with the default linker, not like the image",
              file=sys.stderr)
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except OSError as error:  # no gcc
        print(f"note: the C floor {main_source.name} was not built ({error}), no floor measured", file=sys.stderr)
        return None
    if result.returncode != 0:
        print(f"note: the C floor {main_source.name} did not build, no floor measured:\n{result.stderr[-1500:]}",
              file=sys.stderr)
        return None
    return out


def resolve_binary(path: Path | None) -> Path:
    binary = path or build_binary()
    if not binary.exists():
        sys.exit(f"{binary} does not exist")
    return binary


@functools.cache
def binary_help(binary: Path) -> str:
    result = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr


def kubelet_dir_args(binary: Path, directory: Path) -> list[str]:
    """`--kubelet-dir DIRECTORY` (made if missing) for a driver in node or all mode: the node refuses
    staging and target paths outside it, and does not start when it does not exist (the default,
    /var/lib/kubelet, exists on a Kubernetes node only). Nothing for a binary from before the flag
    (an A/B run against older code)."""
    if "--kubelet-dir" not in binary_help(binary):
        return []
    directory.mkdir(parents=True, exist_ok=True)
    return ["--kubelet-dir", str(directory)]


def generate_stubs():
    """csi_pb2 / csi_pb2_grpc generated from proto/csi.proto into a temp dir (as Tests/e2e does)."""
    import grpc_tools
    from grpc_tools import protoc

    out = Path(tempfile.mkdtemp(prefix="csi-bench-stubs-"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    status = protoc.main([
        "protoc", f"-I{REPO / 'proto'}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
        str(REPO / "proto/csi.proto"),
    ])
    if status != 0:
        sys.exit("protoc failed on proto/csi.proto")
    sys.path.insert(0, str(out))
    import csi_pb2
    import csi_pb2_grpc

    return csi_pb2, csi_pb2_grpc


# ---------------------------------------------------------------------------------------------
# Processes


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of all threads of a live process (fields 14 and 15 of /proc/<pid>/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # skip "pid (comm) "; fields[0] is field 3
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Driver:
    """One glusterfs-csi process on a socket in `workdir`, stdout and stderr into `workdir/<name>.log`."""

    def __init__(self, binary: Path, workdir: Path, args: list[str], name: str = "driver"):
        self.socket = workdir / f"{name}.sock"
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [str(binary), "--endpoint", f"unix://{self.socket}", *args],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
        )
        self.pid = self.process.pid

    def wait_ready(self, grpc, pb, stubs, timeout: float = 20.0) -> "Driver":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"the driver exited with {self.process.returncode}:\n{self.log()}")
            if self.socket.exists():
                channel = grpc.insecure_channel(f"unix://{self.socket}")
                try:
                    stubs.IdentityStub(channel).Probe(pb.ProbeRequest(), timeout=1, wait_for_ready=True)
                    return self
                except grpc.RpcError:
                    pass
                finally:
                    channel.close()
            time.sleep(0.01)
        sys.exit(f"the driver did not answer Probe within {timeout}s:\n{self.log()}")

    def channel(self, grpc):
        """A channel with its own connection (grpcio shares one between channels otherwise)."""
        return grpc.insecure_channel(f"unix://{self.socket}", options=[("grpc.use_local_subchannel_pool", 1)])

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_log_line(self, needle: str, timeout: float) -> str:
        """The first line of the log containing `needle`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if needle in line:
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        sys.exit(f"the driver never logged '{needle}':\n{self.log()[-3000:]}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code (None if it was never started)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if not self._log.closed:
            self._log.close()
        return self.process.returncode


# ---------------------------------------------------------------------------------------------
# Statistics


def percentile(values, p: float) -> float:
    """Nearest-rank percentile of an unsorted sequence."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def describe(values_ms) -> dict:
    return {
        "n": len(values_ms),
        "p50": percentile(values_ms, 50),
        "p99": percentile(values_ms, 99),
        "mean": statistics.fmean(values_ms),
    }


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "MISSED"


# ---------------------------------------------------------------------------------------------
# Output


def print_table(headers, rows, title: str | None = None):
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    if title:
        print()
        print(title)
    print(line)
    print("  ".join(str(cell).ljust(w) for cell, w in zip(headers, widths)).rstrip())
    print(line)
    for row in rows:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(line)


class MachineLoad:
    """The load average at the start and end, and the CPU time processes other than this one and
    its reaped children used meanwhile (from /proc/stat), in cores. Call `other_cores` after every
    child was reaped, or their time counts as 'other'."""

    def __init__(self):
        self.load_start = os.getloadavg()
        self.busy, self.ours, self.wall = self._busy(), self._ours(), time.monotonic()

    @staticmethod
    def _busy() -> float:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return (sum(fields[:8]) - idle) / CLOCK_TICKS

    @staticmethod
    def _ours() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def other_cores(self) -> float:
        busy, ours, wall = self._busy() - self.busy, self._ours() - self.ours, time.monotonic() - self.wall
        return max(0.0, busy - ours) / wall

    def summary(self, other_label: str = "other processes") -> str:
        end = os.getloadavg()
        other = self.other_cores()
        text = (f"load average (1/5/15 min) at start {self.load_start[0]:.2f}/{self.load_start[1]:.2f}/"
                f"{self.load_start[2]:.2f}, at end {end[0]:.2f}/{end[1]:.2f}/{end[2]:.2f}; "
                f"{other_label} used {other:.2f} of {os.cpu_count()} cores on average")
        return text
