"""The glusterfs-csi binary: what its --help says, and running it with a manifest's arguments."""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .common import REPO, CheckFailed, run
from .podspec import socket_path

if TYPE_CHECKING:
    from .manifests import DriverContainer


# What the binary says about itself


@dataclass
class BinaryFacts:
    path: Path
    version: str
    options: dict[str, str | None]  # long flag name -> default text (None: no default shown)
    takes_value: set[str]
    variables: set[str]
    descriptions: dict[str, str] = field(default_factory=dict)  # long flag name -> its help text

    @staticmethod
    def read(path: Path) -> "BinaryFacts":
        help_result = run([str(path), "--help"])
        if help_result.returncode != 0:
            raise CheckFailed([f"{path} --help failed: {help_result.stderr.strip()}"])
        text = help_result.stdout
        version = run([str(path), "--version"]).stdout.strip()
        head, _, options_text = text.partition("OPTIONS:")
        # Subcommands (migrate) have flags of their own, not the driver's.
        options_text = options_text.partition("\nSUBCOMMANDS:")[0]
        options: dict[str, str | None] = {}
        takes_value: set[str] = set()
        current = None
        chunks: dict[str, str] = {}
        for line in options_text.splitlines():
            match = re.match(r"^\s{2}(?:-\w, )?--([a-z][a-z0-9-]*)(\s+<[^>]+>)?", line)
            if match:
                current = match.group(1)
                chunks[current] = line[match.end():]
                if match.group(2):
                    takes_value.add(current)
            elif current:
                chunks[current] += " " + line.strip()
        descriptions: dict[str, str] = {}
        for name, chunk in chunks.items():
            normalized = " ".join(chunk.split())
            descriptions[name] = normalized
            default = re.search(r"\(default: ([^)]*)\)", normalized)
            # "(default: none)" and "(default: the host name)" describe an absent value.
            value = default.group(1) if default else None
            options[name] = None if value in (None, "none") or value.startswith("the ") else value
        variables = set(re.findall(r"\bGLUSTERFS_CSI_[A-Z_]+\b", head))
        if not options or not variables:
            raise CheckFailed([f"cannot read the options or variables from {path} --help"])
        return BinaryFacts(path, version, options, takes_value, variables, descriptions)

    @staticmethod
    def variable(flag: str) -> str:
        return "GLUSTERFS_CSI_" + flag.upper().replace("-", "_")


class Stubs:
    _module = None

    @classmethod
    def load(cls):
        if cls._module is None:
            try:
                importlib.import_module("grpc")
                from grpc_tools import protoc
                import grpc_tools
            except ImportError:
                raise CheckFailed(["grpcio and grpcio-tools are missing: pip install grpcio grpcio-tools"])
            out = Path(tempfile.mkdtemp(prefix="check-deploy-stubs-"))
            include = Path(grpc_tools.__file__).parent / "_proto"
            status = protoc.main(["protoc", f"-I{REPO / 'proto'}", f"-I{include}", f"--python_out={out}",
                                  f"--grpc_python_out={out}", str(REPO / "proto/csi.proto")])
            if status != 0:
                raise CheckFailed(["protoc failed on proto/csi.proto"])
            sys.path.insert(0, str(out))
            import csi_pb2
            import csi_pb2_grpc
            cls._module = (csi_pb2, csi_pb2_grpc)
        return cls._module


def relocate(value: str, temp: Path) -> str:
    if value.startswith("unix://"):
        return "unix://" + str(temp) + socket_path(value)
    if value.startswith("/"):
        return str(temp) + value
    return value


class RunningDriver:
    """glusterfs-csi started with a manifest's flags and variables, paths moved under a temp dir."""

    # Moved under the temp dir. For cgroup-root and systemd-socket that also means they name
    # nothing: the check must never make scopes in the systemd or cgroups in the cgroup tree of the
    # machine it runs on, so the node it starts falls back to placement none. kubelet-dir is made
    # there for a node (which does not start without it), and the examples' staging paths go below.
    PATH_FLAGS = {"endpoint", "heketi-key-file", "heketi-ca-file", "mount-log-dir", "cgroup-root", "systemd-socket",
                  "kubelet-dir"}

    def __init__(self, binary: Path, driver: DriverContainer, temp: Path):
        self.driver = driver
        self.temp = temp
        temp.mkdir(parents=True, exist_ok=True)
        args = []
        for name, value in driver.args.items():
            if name in self.PATH_FLAGS:
                value = relocate(value, temp)
            args.append(f"--{name}={value}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GLUSTERFS_CSI_")}
        for name, value in driver.env.items():
            flag = name[len("GLUSTERFS_CSI_"):].lower().replace("_", "-") if name.startswith("GLUSTERFS_CSI_") else ""
            env[name] = relocate(value, temp) if flag in self.PATH_FLAGS else value
        # The flags the manifests leave at their defaults, relocated the same way.
        for name in self.PATH_FLAGS:
            if name not in driver.args and BinaryFacts.variable(name) not in driver.env and name in driver.effective:
                args.append(f"--{name}={relocate(driver.effective[name], temp)}")
        key_file = driver.effective.get("heketi-key-file")
        if key_file:
            target = Path(relocate(key_file, temp))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("check-deploy-key\n")
        # The relocated kubelet directory (None for a binary without --kubelet-dir). Only a node
        # needs it to exist: a controller must start without it, as its pod mounts none.
        kubelet_dir = driver.effective.get("kubelet-dir")
        self.kubelet_dir = Path(relocate(kubelet_dir, temp)) if kubelet_dir else None
        if self.kubelet_dir is not None and driver.mode in ("node", "all"):
            self.kubelet_dir.mkdir(parents=True, exist_ok=True)
        self.socket = Path(socket_path(relocate(driver.effective.get("endpoint", ""), temp)))
        self.log_path = temp / f"{driver.mode}.log"
        self.command = [str(binary), *args]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=self._log, env=env)
        self.channel = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 15.0) -> None:
        import grpc

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CheckFailed([f"{self.driver.where}: glusterfs-csi exited with {self.process.returncode} when "
                                   f"started with the manifest's arguments ({shlex.join(self.command)}):",
                                   *self.log().strip().splitlines()[-10:]])
            if self.socket.exists():
                self.channel = grpc.insecure_channel(f"unix://{self.socket}")
                try:
                    grpc.channel_ready_future(self.channel).result(timeout=0.5)
                    return
                except grpc.FutureTimeoutError:
                    pass
            time.sleep(0.05)
        raise CheckFailed([f"{self.driver.where}: glusterfs-csi did not serve {self.socket} within {timeout}s",
                           *self.log().strip().splitlines()[-10:]])

    def stop(self) -> int:
        if self.channel is not None:
            self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def serving_line(self) -> dict[str, str]:
        for line in self.log().splitlines():
            try:
                record = json.loads(line)
                if record.get("message") == "serving":
                    return {k: str(v) for k, v in record.items()}
            except ValueError:
                if re.search(r"\binfo serving\b", line):
                    return dict(re.findall(r"(\w+)=(\S+)", line))
        return {}

    def records(self) -> list[dict[str, str]]:
        """Every log line as level, message and metadata (text or JSON format)."""
        found = []
        for line in self.log().splitlines():
            try:
                record = json.loads(line)
                if isinstance(record, dict):
                    found.append({k: str(v) for k, v in record.items()})
                continue
            except ValueError:
                pass
            # <time> <level> <message words> key=value key="quoted value" ...
            match = re.match(r"^\S+ (\w+) (.*?)((?: [\w.]+=(?:\"(?:[^\"\\]|\\.)*\"|\S*))*)$", line)
            if match:
                record = {"level": match.group(1), "message": match.group(2)}
                for key, quoted, plain in re.findall(r'([\w.]+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))', match.group(3)):
                    record[key] = quoted or plain
                found.append(record)
        return found


def call(stub_method, request, timeout: float = 20.0):
    """(response, None) or (None, grpc error)."""
    import grpc

    try:
        return stub_method(request, timeout=timeout), None
    except grpc.RpcError as error:
        return None, error
