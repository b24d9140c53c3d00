"""What the restart harness reads of the running system, and how it runs commands. TEST SUPPORT ONLY.

Processes and mounts as /proc shows them (to this process's PID and mount namespaces, or through
another mountinfo), commands with a deadline, polling with a deadline, and the command lines that
run this harness's own entry points (`restart_harness.py SUBCOMMAND ...`). Standard library only:
the worker processes import it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

# Every process the harness starts from Python (join-cgroup, machine-init, the I/O workers) runs
# this file's sibling with -S: no site packages, a fast start.
HARNESS_SCRIPT = Path(__file__).resolve().with_name("restart_harness.py")

COMMAND_TIMEOUT = 60  # seconds per command (gluster, mount, systemctl)


def harness_argv(subcommand: str, *args: str) -> list[str]:
    """The command line of one of restart_harness.py's entry points."""
    return [sys.executable, "-S", str(HARNESS_SCRIPT), subcommand, *args]


def run(*argv: str, timeout: float = COMMAND_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {(result.stderr or result.stdout).strip()}")
    return result


def wait_until(predicate, timeout: float, interval: float = 0.02, what: str = "condition"):
    """Polls `predicate` until it returns something truthy; returns it, or raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f} s")
        time.sleep(interval)


def send_signal(pid: int, signum: int):
    """os.kill, where a process that is already gone is not an error."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------------------------------
# Processes


def read_argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0")[:-1]]


def process_stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, comm) of a process as this process's PID namespace sees it, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), comm


def namespace_pid(pid: int) -> int | None:
    """The PID `pid` has in its own (innermost) PID namespace."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except OSError:
        pass
    return None


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def zombies_of(parents: set[int]) -> list[dict]:
    """Zombie processes whose parent is one of `parents`."""
    found = []
    for pid in all_pids():
        stat = process_stat(pid)
        if stat and stat[0] == "Z" and stat[1] in parents:
            found.append({"pid": pid, "ppid": stat[1], "comm": stat[2]})
    return found


def glusterfs_clients(volume: str) -> dict[int, list[str]]:
    """pid → argv of every glusterfs FUSE client (not brick) of Gluster volume `volume`."""
    wanted = (f"--volfile-id={volume}", f"--volfile-id=/{volume}")
    found = {}
    for pid in all_pids():
        argv = read_argv(pid)
        if argv and argv[0].endswith("glusterfs") and any(arg in wanted for arg in argv):
            found[pid] = argv
    return found


def clients_of_mount(volume: str, mountpoint: str) -> set[int]:
    """The glusterfs processes serving `mountpoint` (auto_unmount makes two with the same argv)."""
    return {pid for pid, argv in glusterfs_clients(volume).items() if argv[-1] == mountpoint}


def process_cgroups(pid: int | str) -> dict[str, str]:
    """Hierarchy key ("pids", "name=systemd", "" for v2) → cgroup path, as this process sees it
    (`pid` "self": this process)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for key in controllers.split(",") if controllers else [""]:
            out[key] = path
    return out


# ---------------------------------------------------------------------------------------------
# Mounts


def unescape_mount_path(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def mount_table(mountinfo: str | Path = "/proc/self/mountinfo") -> list[dict]:
    entries = []
    for line in Path(mountinfo).read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        entries.append({"device": fields[2], "root": unescape_mount_path(fields[3]),
                        "point": unescape_mount_path(fields[4]), "fstype": tail[0], "source": tail[1],
                        "options": tail[2] if len(tail) > 2 else ""})
    return entries


def mounts_under(path: Path | str, mountinfo: str | Path = "/proc/self/mountinfo") -> list[str]:
    prefix = str(path).rstrip("/")
    return [m["point"] for m in mount_table(mountinfo)
            if m["point"] == prefix or m["point"].startswith(prefix + "/")]


def fuse_connection(mountpoint: str, mountinfo: str | Path) -> Path | None:
    """/sys/fs/fuse/connections/<minor> of the FUSE mount at `mountpoint` (to abort a hung one)."""
    for entry in mount_table(mountinfo):
        if entry["point"] == mountpoint and "fuse" in entry["fstype"]:
            return Path(f"/sys/fs/fuse/connections/{entry['device'].split(':')[1]}")
    return None
