"""Gluster volumes for the restart harness, and the CSI volumes made of them. TEST SUPPORT ONLY:
it creates and deletes Gluster volumes (single-brick, on directories) through the gluster CLI."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from restart_system import run


def unit_name(volume_id: str, staging: Path | str) -> str:
    """The scope / cgroup name the driver gives the client of `volume_id` staged at `staging`:
    `glusterfs-csi-` and the 64-bit FNV-1a hash of the ID, a NUL and the path (ClientUnit)."""
    value = 0xcbf29ce484222325
    for byte in f"{volume_id}\0{staging}".encode():
        value = ((value ^ byte) * 0x100000001b3) % (1 << 64)
    return f"glusterfs-csi-{value:016x}"


def gluster(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The gluster CLI; retried while another transaction holds glusterd's cluster lock."""
    for _ in range(50):
        result = run("gluster", "--mode=script", *args, check=False, timeout=120)
        text = (result.stderr or result.stdout)
        if result.returncode == 0 or "nother transaction" not in text and "locking failed" not in text.lower():
            break
        time.sleep(0.2)
    if check and result.returncode != 0:
        raise RuntimeError(f"gluster {' '.join(args)}: {(result.stderr or result.stdout).strip()}")
    return result


class GlusterVolumes:
    """Single-brick distribute volumes on directories under `brick_root` (`force`: the bricks are on
    the root file system), named `<prefix>_<hex>`; `delete_all()` stops and deletes them."""

    def __init__(self, brick_root: Path, prefix: str = "gcsirs"):
        self.brick_root = brick_root
        self.prefix = prefix
        self.names: list[str] = []
        self.host = socket.gethostname()  # gluster refuses 127.0.0.1 as a brick host

    def create(self) -> str:
        name = f"{self.prefix}_{secrets.token_hex(4)}"
        brick = self.brick_root / name
        brick.mkdir(parents=True)
        gluster("volume", "create", name, f"{self.host}:{brick}", "force")
        self.names.append(name)
        gluster("volume", "start", name)
        return name

    def delete_all(self):
        for name in self.names:
            gluster("volume", "stop", name, "force", check=False)
            gluster("volume", "delete", name, check=False)
            shutil.rmtree(self.brick_root / name, ignore_errors=True)
        self.names.clear()


class StagedVolume:
    """One CSI volume of a node test: a Gluster volume, a staging path and one pod's target path."""

    def __init__(self, gluster_volume: str, workdir: Path, index: int = 0):
        self.gluster_volume = gluster_volume
        self.volume_id = f"restart-{gluster_volume}"
        self.context = {"glusterHosts": "127.0.0.1", "glusterVolume": gluster_volume}
        self.staging = workdir / f"staging/v{index}"
        self.unit = unit_name(self.volume_id, self.staging)
        self.target = workdir / f"pods/p{index}/mount"
