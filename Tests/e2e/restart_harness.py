"""Restarting the node plugin the way a container runtime does, with real GlusterFS and live I/O.

Used by Tests/e2e/test_restart_survival.py and bench/restart-stress. TEST SUPPORT ONLY: it runs as
root and creates cgroups, namespaces, Gluster volumes and mounts, and removes them again.

The pieces:

- `FakeContainer`: a cgroup in every hierarchy, as runc makes for a container (the one cgroup on a
  v2 host). Processes join it before they exec (the `join-cgroup` entry point of this file, so no
  preexec_fn runs in a threaded pytest, and no user string goes through a shell). `kill()` does
  what runc does to stop a container: freeze it, SIGKILL every pid listed in the `cgroup.procs` of
  pids, devices (runc's list on v1) and the v2 cgroup (unified on a hybrid host: runc >= 1.2 uses
  its cgroup.kill), thaw, and repeat until none is left; then its cgroups are removed, as runc's
  destroy does: a process left in any of them (say freezer) keeps that cgroup busy.
- `HostMachine` / `SystemdMachine`: where the plugin runs. The host as it is (no systemd here), or a
  real systemd as PID 1 of a new PID + mount + cgroup namespace, with private tmpfs on /tmp,
  /var/tmp and /run (mounted BEFORE systemd starts: its boot-time tmpfiles clean-up would empty the
  machine's real /tmp otherwise) and the cgroup hierarchies mounted again from a cgroup of its own
  (`gcsi-sd-<hex>` in every hierarchy), so everything that systemd creates stays below it and goes
  away with it. Its mounts live in its private mount namespace: this process reaches them through
  `/proc/<systemd pid>/root`.
- `NodePlugin`: the node plugin as a DaemonSet pod: one container at a time on one socket;
  `restart()` kills the container and starts a new one on the same socket (the old socket file is
  left behind, as after a crash). With `pid_namespace=True` the driver is PID 1 of a PID namespace
  of its own (`unshare --pid --fork`), as in a pod without hostPID.
- `Worker`: writer / reader / verify processes (this file run as a script). The writer appends
  64 KiB blocks (header: magic, sequence number, SHA-256 of the payload) to files in a directory,
  fsyncing each; the reader follows the files and checks every block; both record every error
  with its errno in a JSON state file. Separate processes, so a hung FUSE read cannot hang pytest;
  every wait on them has a deadline.
- Gluster volumes on directory bricks, and the leak checks: mounts, glusterfs client processes,
  cgroups and systemd scopes named after the volume, zombies whose parent is a driver process.

Worker entry points import only the standard library (they start fast); grpc is imported lazily.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()

# ---------------------------------------------------------------------------------------------
# Blocks written by the writer

BLOCK_SIZE = 64 * 1024
MAGIC = b"GCSIBLK1"
HEADER = struct.Struct("<8sQ32s")  # magic, sequence number, SHA-256 of the payload
PAYLOAD_SIZE = BLOCK_SIZE - HEADER.size
BLOCKS_PER_FILE = 32  # 2 MiB files: the writer keeps creating files, not only appending
STATE_INTERVAL = 0.1  # seconds between state file writes
MAX_RECORDED_ERRORS = 200

# What a client that died does to I/O through its mount (the driver's probe treats these as dead).
DEAD_MOUNT_ERRNOS = {errno.ENOTCONN, errno.ECONNABORTED, errno.EIO, errno.ESTALE, errno.EHOSTDOWN}

RPC_TIMEOUT = 60  # seconds per node RPC
COMMAND_TIMEOUT = 60  # seconds per command (gluster, mount, systemctl)


def unit_name(volume_id: str) -> str:
    """The scope / cgroup name the driver gives a volume's client (the placement contract)."""
    return "glusterfs-csi-" + hashlib.sha256(volume_id.encode()).hexdigest()[:16]


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


def process_cgroups(pid: int) -> dict[str, str]:
    """Hierarchy key ("pids", "name=systemd", "" for v2) → cgroup path, as this process sees it."""
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
        entries.append({"root": unescape_mount_path(fields[3]), "point": unescape_mount_path(fields[4]),
                        "fstype": tail[0], "source": tail[1], "options": tail[2] if len(tail) > 2 else ""})
    return entries


def mounts_under(path: Path | str, mountinfo: str | Path = "/proc/self/mountinfo") -> list[str]:
    prefix = str(path).rstrip("/")
    return [m["point"] for m in mount_table(mountinfo)
            if m["point"] == prefix or m["point"].startswith(prefix + "/")]


def fuse_connection(mountpoint: str, mountinfo: str | Path) -> Path | None:
    """/sys/fs/fuse/connections/<minor> of the FUSE mount at `mountpoint` (to abort a hung one)."""
    for line in Path(mountinfo).read_text().splitlines():
        fields = line.split()
        if unescape_mount_path(fields[4]) == mountpoint and "fuse" in line.partition(" - ")[2].split()[0]:
            minor = fields[2].split(":")[1]
            return Path(f"/sys/fs/fuse/connections/{minor}")
    return None


# ---------------------------------------------------------------------------------------------
# cgroups


class Hierarchy:
    """One mounted cgroup hierarchy under /sys/fs/cgroup."""

    def __init__(self, name: str, mountpoint: Path, fstype: str, options: str, key: str):
        self.name = name  # directory name under /sys/fs/cgroup ("" for a v2-only /sys/fs/cgroup)
        self.mountpoint = mountpoint
        self.fstype = fstype  # cgroup or cgroup2
        self.options = options  # to mount it again: "pids", "none,name=systemd", "" for v2
        self.key = key  # its key in /proc/<pid>/cgroup: "pids", "name=systemd", "" for v2

    def own(self) -> str:
        """This process's cgroup in this hierarchy."""
        return process_cgroups("self").get(self.key, "/")  # type: ignore[arg-type]

    def path(self, cgroup: str) -> Path:
        return self.mountpoint / cgroup.lstrip("/")

    def __repr__(self):
        return f"Hierarchy({self.name or '/'})"


_IGNORED_OPTIONS = {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "clone_children", "xattr",
                    "noprefix", "cpuset_v2_mode", "nsdelegate", "memory_recursiveprot", "memory_localevents",
                    "favordynmods"}


def hierarchies() -> list[Hierarchy]:
    """The cgroup hierarchies mounted at or directly under /sys/fs/cgroup."""
    found = []
    for entry in mount_table():
        point = Path(entry["point"])
        if entry["fstype"] not in ("cgroup", "cgroup2"):
            continue
        if point != Path("/sys/fs/cgroup") and point.parent != Path("/sys/fs/cgroup"):
            continue
        name = "" if point == Path("/sys/fs/cgroup") else point.name
        if entry["fstype"] == "cgroup2":
            found.append(Hierarchy(name, point, "cgroup2", "", ""))
            continue
        options = [o for o in entry["options"].split(",")
                   if o.startswith("name=") or (o not in _IGNORED_OPTIONS and "=" not in o)]
        named = [o for o in options if o.startswith("name=")]
        key = ",".join(options)
        mount_options = ",".join(["none", *named]) if named and len(options) == 1 else ",".join(options)
        found.append(Hierarchy(name, point, "cgroup", mount_options, named[0] if named else key))
    return found


def hierarchy(name: str) -> Hierarchy | None:
    return next((h for h in hierarchies() if h.name == name), None)


def container_parents() -> dict[str, Path]:
    """Where a runtime would put a container on this host: a cgroup in every hierarchy (runc joins
    them all), below the root, as kubepods is. Hierarchies where this process is not at the root
    (the sandbox's own memory cgroup here) are left out: a test has no business above them."""
    found = hierarchies()
    if any(h.name == "" for h in found):  # v2 only: below our own cgroup
        h = next(h for h in found if h.name == "")
        return {"": h.path(h.own())}
    return {h.name: h.mountpoint for h in found if h.own() == "/"}


# Which hierarchies a runtime reads to find what to kill: pids (the brief's), devices (runc's list
# on v1), the v2 cgroup (runc >= 1.2 writes cgroup.kill there, also the unified one of a hybrid host).
KILL_HIERARCHIES = ("pids", "devices", "unified", "")


def cgroup_problem() -> str | None:
    """Why a fake container cannot be made here, or None."""
    if os.geteuid() != 0:
        return "faking a container needs root (cgroups, namespaces, mounts)"
    parents = container_parents()
    if not any(name in parents for name in KILL_HIERARCHIES):
        return "no pids or devices cgroup v1 hierarchy and no cgroup v2 mounted under /sys/fs/cgroup"
    parent = next(parents[name] for name in KILL_HIERARCHIES if name in parents)
    probe = parent / f"gcsi-probe-{secrets.token_hex(4)}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as error:
        return f"cannot create a cgroup under {probe.parent}: {error}"
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is not installed"
    return None


def remove_cgroup_tree(directory: Path) -> list[str]:
    """rmdir `directory` and every cgroup below it, deepest first; what could not be removed."""
    if not directory.is_dir():
        return []
    failures = []
    for root, dirs, _ in os.walk(directory, topdown=False):
        for name in dirs:
            try:
                os.rmdir(Path(root) / name)
            except FileNotFoundError:
                pass
            except OSError as error:
                failures.append(f"{Path(root) / name}: {error.strerror}")
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass
    except OSError as error:
        failures.append(f"{directory}: {error.strerror}")
    return failures


def cgroup_procs(directory: Path, recursive: bool = True) -> set[int]:
    pids: set[int] = set()
    if not directory.is_dir():
        return pids
    walker = os.walk(directory) if recursive else [(str(directory), [], [])]
    for root, _, _ in walker:
        try:
            pids.update(int(line) for line in (Path(root) / "cgroup.procs").read_text().split())
        except OSError:
            pass
    return pids


def make_cgroup(h: Hierarchy, directory: Path):
    directory.mkdir(exist_ok=True)
    if h.name == "cpuset":  # a v1 cpuset cgroup takes no process before it has cpus and mems
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not (directory / name).read_text().strip():
                (directory / name).write_text((directory.parent / name).read_text())


def cgroups_named(names: set[str], roots: list[Path] | None = None, depth: int = 8) -> list[str]:
    """Every cgroup directory, in every hierarchy, whose name is one of `names`."""
    found = []
    for root in roots or [h.mountpoint for h in hierarchies()]:
        base = len(root.parts)
        for current, dirs, _ in os.walk(root):
            here = Path(current)
            if len(here.parts) - base >= depth:
                dirs.clear()
            for name in dirs:
                if name in names:
                    found.append(str(here / name))
    return found


# ---------------------------------------------------------------------------------------------
# Fake container


class FakeContainer:
    """A cgroup per hierarchy, like the one a runtime makes for a container, below `parents`."""

    def __init__(self, name: str, parents: dict[str, Path], freeze: bool = True):
        chosen = {h.name: h for h in hierarchies() if h.name in parents}
        self.name = name
        self.paths = {h_name: parents[h_name] / name for h_name in chosen}
        self.hierarchies = chosen
        self.kill_from = [n for n in KILL_HIERARCHIES if n in self.paths]
        self.freezer = self.paths.get("freezer") if freeze else None

    def create(self) -> "FakeContainer":
        for h_name, path in self.paths.items():
            make_cgroup(self.hierarchies[h_name], path)
        return self

    def join_argv(self, argv: list[str]) -> list[str]:
        """argv run inside the container: a small exec wrapper joins it first."""
        procs = [str(path / "cgroup.procs") for path in self.paths.values()]
        return [sys.executable, "-S", str(HERE), "join-cgroup", *procs, "--", *argv]

    def procs(self) -> set[int]:
        pids: set[int] = set()
        for name in self.kill_from:
            pids |= cgroup_procs(self.paths[name])
        return pids

    def holds(self, pid: int, kill_only: bool = False) -> list[str]:
        """The container's cgroups that `pid` is in (only those a kill reads, with `kill_only`)."""
        cgroups = process_cgroups(pid)
        inside = []
        for h_name, path in self.paths.items():
            if kill_only and h_name not in self.kill_from:
                continue
            h = self.hierarchies[h_name]
            relative = "/" + str(path.relative_to(h.mountpoint))
            current = cgroups.get(h.key)
            if current and (current == relative or current.startswith(relative + "/")):
                inside.append(f"{h_name or 'unified'}:{current}")
        return inside

    def _freeze(self, state: str, wait: float) -> bool:
        if not self.freezer or not self.freezer.is_dir():
            return False
        try:
            (self.freezer / "freezer.state").write_text(state)
        except OSError:
            return False
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if (self.freezer / "freezer.state").read_text().strip() == state:
                    return True
            except OSError:
                return False
            time.sleep(0.002)
        return False

    def kill(self, timeout: float = 15.0) -> dict:
        """What runc does to stop a container: freeze, SIGKILL every listed pid, thaw; until none is
        left. Returns the pids killed, the rounds and the seconds it took."""
        started = time.monotonic()
        killed: set[int] = set()
        rounds = 0
        while True:
            self._freeze("FROZEN", 1.0)  # runc goes on when freezing does not finish
            pids = self.procs()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._freeze("THAWED", 1.0)
            killed |= pids
            if not pids:
                break
            rounds += 1
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"container {self.name}: pids {sorted(self.procs())} survive SIGKILL")
            time.sleep(0.005)
        return {"killed": sorted(killed), "rounds": rounds, "seconds": time.monotonic() - started}

    def remove(self) -> list[str]:
        """Removes the container's cgroups (runc's destroy); returns those that could not be
        removed, with the processes still in them."""
        failures = []
        for h_name, path in self.paths.items():
            left = cgroup_procs(path)
            problems = remove_cgroup_tree(path)
            if problems:
                shown = ", ".join(map(str, sorted(left)[:4])) + (", …" if len(left) > 4 else "")
                relative = path.relative_to(self.hierarchies[h_name].mountpoint)
                failures.append(f"{h_name or 'cgroup2'}:/{relative} holds {len(left)} processes ({shown}): "
                                f"{problems[0].rsplit(': ', 1)[-1]}")
        return failures


def join_cgroup_main(argv: list[str]):
    """`join-cgroup PROCS... -- COMMAND...`: move this process into each cgroup, then exec."""
    split = argv.index("--")
    for procs in argv[:split]:
        with open(procs, "w") as f:
            f.write("0")
    command = argv[split + 1:]
    os.execvp(command[0], command)


# ---------------------------------------------------------------------------------------------
# Machines: where the plugin runs


class HostMachine:
    """This machine as it is: the plugin shares its PID and mount namespaces (hostPID)."""

    name = "host"
    mountinfo = Path("/proc/self/mountinfo")

    def wrap(self, argv: list[str]) -> list[str]:
        return argv

    def path(self, path: Path | str) -> Path:
        """How this process reaches `path` of the machine."""
        return Path(path)

    def container_parents(self) -> dict[str, Path]:
        return container_parents()

    def cgroup_roots(self) -> list[Path]:
        return [h.mountpoint for h in hierarchies()]

    def scopes(self, pattern: str) -> list[str]:
        return []

    def stop(self):
        pass


def systemd_problem() -> str | None:
    if not Path("/lib/systemd/systemd").exists():
        return "systemd is not installed (/lib/systemd/systemd)"
    problem = cgroup_problem()
    if problem:
        return problem
    if not hierarchy("systemd") and not any(h.name == "" for h in hierarchies()):
        return "no name=systemd cgroup hierarchy and no cgroup v2 at /sys/fs/cgroup"
    return None


class SystemdMachine:
    """A real systemd as PID 1 of a new PID + mount + cgroup namespace: a node whose systemd the
    driver can ask for scopes.

    Private tmpfs on /tmp, /var/tmp and /run are mounted before systemd execs (machine-init below
    checks they are mounts, or does not exec systemd): its boot-time tmpfiles clean-up empties
    /tmp otherwise, and the root file system is shared. The cgroup hierarchies are mounted again
    from a cgroup of its own (`gcsi-sd-<hex>` below this process's cgroup in every hierarchy), so
    what systemd creates stays below it; `stop()` removes that subtree and nothing else.
    Paths the driver uses must not be under /tmp, /var/tmp or /run (they are private inside)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.name = f"gcsi-sd-{secrets.token_hex(4)}"
        self.launcher: subprocess.Popen | None = None
        self.pid: int | None = None  # systemd, as this process sees it
        self.roots: dict[str, Path] = {}
        self.log_path = workdir / "systemd-machine.log"
        self._log = None

    # -- life cycle

    def start(self, timeout: float = 60.0) -> "SystemdMachine":
        found = hierarchies()
        for h in found:
            root = h.path(h.own()) / self.name
            try:
                make_cgroup(h, root)
            except OSError:
                continue  # a hierarchy we may not write: systemd sees it as the host has it
            self.roots[h.name] = root
        # Mounted again inside from the cgroups above: (name, fstype, options).
        mounts = [(h.name, h.fstype, h.options) for h in found if h.name in self.roots]
        procs = [str(root / "cgroup.procs") for root in self.roots.values()]
        own_mount_ns = os.readlink("/proc/self/ns/mnt")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        argv = [sys.executable, "-S", str(HERE), "join-cgroup", *procs, "--",
                "unshare", "--cgroup", "--pid", "--fork", "--mount", "--mount-proc", "--propagation", "private",
                sys.executable, "-S", str(HERE), "machine-init", own_mount_ns, json.dumps(mounts)]
        self.launcher = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                         start_new_session=True)
        try:
            self.pid = wait_until(self._systemd_pid, 20, what="systemd to start in its namespace")
            state = wait_until(self._booted, timeout, interval=0.1, what="systemd to finish booting")
        except TimeoutError as error:
            self.stop()
            raise RuntimeError(f"{error}:\n{self.log()[-3000:]}") from None
        if state not in ("running", "degraded"):
            self.stop()
            raise RuntimeError(f"systemd is {state}:\n{self.log()[-3000:]}")
        return self

    def _systemd_pid(self) -> int | None:
        if self.launcher.poll() is not None:
            raise RuntimeError(f"the namespace launcher exited with {self.launcher.returncode}:\n{self.log()}")
        for pid in all_pids():
            stat = process_stat(pid)
            if stat and stat[1] == self.launcher.pid and stat[2] == "systemd":
                return pid
        return None

    def _booted(self) -> str | None:
        result = subprocess.run(self.wrap(["systemctl", "is-system-running"]), capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
        state = result.stdout.strip()
        return state if state in ("running", "degraded", "maintenance", "stopping") else None

    def stop(self, timeout: float = 20.0) -> list[str]:
        """Powers systemd off (SIGRTMIN+4; SIGKILL if it takes longer than `timeout`), then removes its
        cgroup subtrees. Returns what could not be removed."""
        if self.launcher and self.launcher.poll() is None:
            if self.pid:
                try:
                    os.kill(self.pid, signal.SIGRTMIN + 4)
                except ProcessLookupError:
                    pass
            try:
                self.launcher.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                if self.pid:
                    try:
                        os.kill(self.pid, signal.SIGKILL)  # PID 1 of its namespace: takes the rest with it
                    except ProcessLookupError:
                        pass
                self.launcher.wait(timeout=timeout)
        failures: list[str] = []
        deadline = time.monotonic() + 10
        while self.roots:
            failures = []
            for name, root in list(self.roots.items()):
                problems = remove_cgroup_tree(root)
                if problems:
                    failures += problems
                else:
                    del self.roots[name]
            if not failures or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if self._log and not self._log.closed:
            self._log.close()
        return failures

    def log(self) -> str:
        if self._log and not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- use

    @property
    def mountinfo(self) -> Path:
        return Path(f"/proc/{self.pid}/mountinfo")

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run inside the machine (its PID, mount and cgroup namespaces)."""
        return ["nsenter", "-t", str(self.pid), "-m", "-p", "-C", "--", *argv]

    def path(self, path: Path | str) -> Path:
        return Path(f"/proc/{self.pid}/root") / Path(path).relative_to("/")

    def container_parents(self) -> dict[str, Path]:
        """Containers of this machine live below its cgroups, like kubepods below a host's root."""
        return {name: root for name, root in self.roots.items()}

    def cgroup_roots(self) -> list[Path]:
        return [h.mountpoint for h in hierarchies()]

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(*self.wrap(["systemctl", *args]), check=check)

    def scopes(self, pattern: str) -> list[str]:
        """Units matching `pattern`, loaded in any state."""
        result = self.systemctl("list-units", "--all", "--plain", "--no-legend", "--no-pager", pattern)
        return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def machine_init_main(argv: list[str]):
    """`machine-init HOST_MOUNT_NS MOUNTS_JSON`, run by unshare as PID 1 of the new namespaces:
    private /tmp, /var/tmp, /run and cgroup mounts, then exec systemd. Never execs systemd unless
    the tmpfs mounts are in place in a mount namespace of its own."""
    host_ns, mounts = argv[0], json.loads(argv[1])
    if os.readlink("/proc/self/ns/mnt") == host_ns:
        sys.exit("machine-init: not in a mount namespace of its own; not starting systemd")

    def mount(*args: str):
        subprocess.run(["mount", *args], check=True, stdin=subprocess.DEVNULL)

    # /var/log/journal too: its journald would otherwise keep a persistent journal on the
    # machine's disk (tmpfiles creates the directory at boot).
    os.makedirs("/var/log/journal", exist_ok=True)
    for point, mode in (("/tmp", "1777"), ("/var/tmp", "1777"), ("/run", "755"), ("/var/log/journal", "2755")):
        mount("-t", "tmpfs", "-o", f"mode={mode},nosuid,nodev", "tmpfs", point)
        table = {m["point"]: m["fstype"] for m in mount_table()}
        if table.get(point) != "tmpfs":
            sys.exit(f"machine-init: {point} is not a private tmpfs; not starting systemd")
    v2_only = [m for m in mounts if m[0] == ""]
    if v2_only:
        mount("-t", "cgroup2", "cgroup2", "/sys/fs/cgroup")
    else:
        mount("-t", "tmpfs", "-o", "mode=755,nosuid,nodev,noexec", "tmpfs", "/sys/fs/cgroup")
        for name, fstype, options in mounts:
            point = f"/sys/fs/cgroup/{name}"
            os.mkdir(point)
            mount("-t", fstype, *(["-o", options] if options else []), fstype, point)
    env = {"container": "gcsi-e2e", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    os.execve("/lib/systemd/systemd", ["/lib/systemd/systemd", "--system", "--unit=basic.target"], env)


# ---------------------------------------------------------------------------------------------
# The node plugin as a DaemonSet pod


_HELP_CACHE: dict[str, str] = {}


def binary_help(binary: Path) -> str:
    if str(binary) not in _HELP_CACHE:
        _HELP_CACHE[str(binary)] = run(str(binary), "--help", check=False).stdout
    return _HELP_CACHE[str(binary)]


def supports_placement(binary: Path) -> bool:
    return "--mount-placement" in binary_help(binary)


class NodePlugin:
    """The node plugin in a fake container on `machine`, restarted like a runtime restarts a pod's
    container: SIGKILL of every process in its cgroup, then a new container on the same socket."""

    def __init__(self, csi, *, binary: Path, machine, workdir: Path, placement: str | None,
                 pid_namespace: bool = False, log_level: str = "debug", node_id: str = "gcsi-restart-node",
                 freeze: bool = True):
        self.csi = csi
        self.binary = Path(binary).resolve()  # nsenter -m starts at the namespace's root
        self.machine = machine
        self.workdir = workdir
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
        self.restarts: list[dict] = []
        self.leftover_container_cgroups: list[str] = []
        self.busy_containers: list[FakeContainer] = []  # killed, but their cgroups still held a process

    def argv(self) -> list[str]:
        args = [str(self.binary), "--mode", "node", "--endpoint", f"unix://{self.socket}", "--node-id",
                self.node_id, "--mount-log-dir", str(self.workdir / "logs"), "--log-level", self.log_level]
        if self.placement and (self.placement != "none" or supports_placement(self.binary)):
            args += ["--mount-placement", self.placement]
        if self.pid_namespace:
            args = ["unshare", "--pid", "--fork", "--kill-child", "--", *args]
        return self.machine.wrap(args)

    def start(self, timeout: float = 30.0) -> "NodePlugin":
        import grpc

        self.generation += 1
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
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
        self.restarts.append(report)
        return report

    def stop(self):
        """SIGTERM to the driver (a graceful stop), then whatever is left as a runtime does."""
        self._close_channel()
        if self.container is None:
            return
        for pid in self.driver_pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
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

    def stage(self, volume: "StagedVolume"):
        return self.node.NodeStageVolume(self.csi.pb.NodeStageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(volume.staging), volume_capability=self.capability(),
            volume_context=volume.context), timeout=RPC_TIMEOUT)

    def publish(self, volume: "StagedVolume"):
        return self.node.NodePublishVolume(self.csi.pb.NodePublishVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(volume.staging), target_path=str(volume.target),
            volume_capability=self.capability(), volume_context=volume.context), timeout=RPC_TIMEOUT)

    def unpublish(self, volume: "StagedVolume"):
        return self.node.NodeUnpublishVolume(self.csi.pb.NodeUnpublishVolumeRequest(
            volume_id=volume.volume_id, target_path=str(volume.target)), timeout=RPC_TIMEOUT)

    def unstage(self, volume: "StagedVolume"):
        return self.node.NodeUnstageVolume(self.csi.pb.NodeUnstageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(volume.staging)), timeout=RPC_TIMEOUT)

    def stats(self, volume: "StagedVolume"):
        return self.node.NodeGetVolumeStats(self.csi.pb.NodeGetVolumeStatsRequest(
            volume_id=volume.volume_id, volume_path=str(volume.target)), timeout=RPC_TIMEOUT)


# ---------------------------------------------------------------------------------------------
# Gluster volumes


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
        import socket
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
        self.unit = unit_name(self.volume_id)
        self.context = {"glusterHosts": "127.0.0.1", "glusterVolume": gluster_volume}
        self.staging = workdir / f"staging/v{index}"
        self.target = workdir / f"pods/p{index}/mount"


# ---------------------------------------------------------------------------------------------
# Leak checks


def leaks(plugin: NodePlugin, volumes: list[StagedVolume], wait: float = 10.0) -> dict:
    """What the volumes left behind after unpublish and unstage, after waiting up to `wait` s for
    clients to exit and zombies to be reaped: mounts under the workdir, glusterfs clients, cgroups
    and scopes named after the volumes, zombies whose parent is a driver process."""
    machine = plugin.machine
    units = {v.unit for v in volumes}
    names = units | {u + ".scope" for u in units}

    def collect():
        found = {
            "mounts": mounts_under(plugin.workdir, machine.mountinfo),
            "clients": {pid: " ".join(argv) for v in volumes
                        for pid, argv in glusterfs_clients(v.gluster_volume).items()},
            "cgroups": cgroups_named(names, roots=machine.cgroup_roots()),
            "scopes": [s for s in machine.scopes("glusterfs-csi-*") if s.split(".")[0] in units],
            "zombies": zombies_of(plugin.pids()),
        }
        return found

    deadline = time.monotonic() + wait
    while True:
        found = collect()
        if not any(found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# I/O workers


class Worker:
    """A writer, reader or verify process (this file run as a script) and its JSON state file."""

    def __init__(self, role: str, directory: Path, state: Path, *args: str):
        self.role = role
        self.directory = directory
        self.state_path = state
        state.unlink(missing_ok=True)
        with open(str(state) + ".stderr", "ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-S", str(HERE), role, str(directory), str(state), *args], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=stderr, cwd="/", start_new_session=True)

    def state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}

    def stderr(self) -> str:
        try:
            return Path(str(self.state_path) + ".stderr").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0, unstick=None) -> dict:
        """SIGTERM (the worker finishes its block and writes its final state); SIGKILL after `timeout`.
        `unstick()` is called when it does not exit even then (a hung FUSE request): it should abort
        the mount's FUSE connection. Returns the final state, with "hung": True if it had to be
        killed."""
        hung = False
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                hung = True
                self.process.kill()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    if unstick:
                        unstick()
                    self.process.wait(timeout=30)
        state = self.state()
        if hung:
            state["hung"] = True
        return state


def start_writer(directory: Path, state: Path, prefix: str = "w", interval: float = 0.005) -> Worker:
    return Worker("writer", directory, state, prefix, str(interval))


def start_reader(directory: Path, state: Path) -> Worker:
    return Worker("reader", directory, state)


def verify(directory: Path, writer_states: list[Path], result: Path, timeout: float = 120.0) -> dict:
    """Reads every file the writers wrote and checks every block they acknowledged (fsync returned)
    is there, in order and intact. Runs as a process of its own, bounded by `timeout`."""
    worker = Worker("verify", directory, result, *map(str, writer_states))
    try:
        worker.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        worker.process.kill()
        worker.process.wait(timeout=30)
        return {"hung": True, "errors": [{"op": "verify", "detail": f"did not finish within {timeout:.0f} s"}]}
    state = worker.state()
    if not state.get("done"):
        return {"errors": [{"op": "verify", "detail": f"exited {worker.process.returncode}: {worker.stderr()}"}]}
    return state


class _State:
    """A worker's state, written atomically to its JSON file at most every STATE_INTERVAL."""

    def __init__(self, path: Path, role: str):
        self.path = path
        self.data = {"role": role, "pid": os.getpid(), "started": time.time(), "errors": [], "error_count": 0,
                     "done": False}
        self.written = 0.0

    def error(self, op: str, error: OSError | None, where: str = "", detail: str = ""):
        self.data["error_count"] += 1
        if len(self.data["errors"]) < MAX_RECORDED_ERRORS:
            record = {"t": time.time(), "op": op, "where": where}
            if error is not None:
                record.update(errno=error.errno, name=errno.errorcode.get(error.errno or 0, str(error.errno)),
                              message=error.strerror)
            if detail:
                record["detail"] = detail
            self.data["errors"].append(record)
        if self.data["error_count"] == 1:
            self.flush(force=True)

    def flush(self, force: bool = False):
        now = time.monotonic()
        if not force and now - self.written < STATE_INTERVAL:
            return
        self.written = now
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(self.data))
        os.replace(temporary, self.path)


def _stop_flag() -> list[bool]:
    flag = [False]

    def handler(signum, frame):
        flag[0] = True
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return flag


def make_block(sequence: int) -> bytes:
    payload = os.urandom(PAYLOAD_SIZE)
    return HEADER.pack(MAGIC, sequence, hashlib.sha256(payload).digest()) + payload


def check_block(data: bytes) -> int | str:
    """The block's sequence number, or what is wrong with it."""
    if len(data) != BLOCK_SIZE:
        return f"short block ({len(data)} bytes)"
    magic, sequence, digest = HEADER.unpack_from(data)
    if magic != MAGIC:
        return f"bad magic {magic!r}"
    if hashlib.sha256(data[HEADER.size:]).digest() != digest:
        return f"checksum mismatch (sequence {sequence})"
    return sequence


def writer_main(argv: list[str]):
    """`writer DIR STATE PREFIX INTERVAL`: appends checksummed blocks to DIR/PREFIX-NNNNN.blk, fsync
    after each. A file gets BLOCKS_PER_FILE blocks; after an error the writer records it, drops the
    file and goes on in a new one, so the files stay readable."""
    directory, state_path, prefix, interval = Path(argv[0]), Path(argv[1]), argv[2], float(argv[3])
    stop = _stop_flag()
    state = _State(state_path, "writer")
    files: dict[str, dict] = {}
    state.data.update(files=files, acked=0, last_ok=None, max_gap=0.0)
    sequence, index, fd, name = 0, 0, None, None
    last_ok = time.monotonic()
    while not stop[0]:
        op = "open"
        try:
            if fd is None:
                name = f"{prefix}-{index:05d}.blk"
                fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                files[name] = {"first": sequence, "acked": 0}
            op = "write"
            block = make_block(sequence)
            written = os.write(fd, block)
            if written != len(block):
                raise OSError(errno.EIO, f"short write: {written} of {len(block)} bytes")
            op = "fsync"
            os.fsync(fd)
            now = time.monotonic()
            state.data["max_gap"] = max(state.data["max_gap"], now - last_ok)
            last_ok = now
            files[name]["acked"] += 1
            state.data["acked"] += 1
            state.data["last_ok"] = time.time()
            sequence += 1
            if files[name]["acked"] >= BLOCKS_PER_FILE:
                op = "close"
                os.close(fd)
                fd, index = None, index + 1
        except OSError as error:
            state.error(op, error, name or "")
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
            fd, index = None, index + 1
            time.sleep(0.05)
        state.flush()
        if interval:
            time.sleep(interval)
    if fd is not None:
        try:
            os.close(fd)
        except OSError as error:
            state.error("close", error, name or "")
    state.data["done"] = True
    state.flush(force=True)


def _blk_names(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".blk"))


def reader_main(argv: list[str]):
    """`reader DIR STATE`: follows every .blk file in DIR and checks each complete block (the last
    block of each writer's newest file only once the writer has moved on). Page cache is dropped
    before reading, so reads reach the glusterfs client."""
    directory, state_path = Path(argv[0]), Path(argv[1])
    stop = _stop_flag()
    state = _State(state_path, "reader")
    state.data.update(verified=0, passes=0, bad=[])
    offsets: dict[str, int] = {}
    while not stop[0]:
        try:
            names = _blk_names(directory)
        except OSError as error:
            state.error("listdir", error, str(directory))
            state.flush()
            time.sleep(0.05)
            continue
        newest = {}
        for name in names:
            newest[name.rsplit("-", 1)[0]] = name
        for name in names:
            if stop[0]:
                break
            op = "open"
            try:
                fd = os.open(directory / name, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    op = "fstat"
                    size = os.fstat(fd).st_size
                    limit = size - (BLOCK_SIZE if newest.get(name.rsplit("-", 1)[0]) == name else 0)
                    offset = offsets.get(name, 0)
                    if offset + BLOCK_SIZE <= limit:
                        os.posix_fadvise(fd, offset, limit - offset, os.POSIX_FADV_DONTNEED)
                    while offset + BLOCK_SIZE <= limit and not stop[0]:
                        op = "read"
                        data = os.pread(fd, BLOCK_SIZE, offset)
                        if len(data) < BLOCK_SIZE:
                            break
                        checked = check_block(data)
                        if isinstance(checked, str) and len(state.data["bad"]) < MAX_RECORDED_ERRORS:
                            state.data["bad"].append({"t": time.time(), "file": name, "block": offset // BLOCK_SIZE,
                                                      "problem": checked})
                        offset += BLOCK_SIZE
                        state.data["verified"] += 1
                    offsets[name] = offset
                finally:
                    os.close(fd)
            except OSError as error:
                state.error(op, error, name)
        state.data["passes"] += 1
        state.flush()
        time.sleep(0.02)
    state.data["done"] = True
    state.flush(force=True)


def verify_main(argv: list[str]):
    """`verify DIR RESULT WRITER_STATE...`: every acknowledged block of every writer, in order and
    intact; bytes after the acknowledged blocks of a file are reported as its tail."""
    directory, result_path, writer_states = Path(argv[0]), Path(argv[1]), [Path(p) for p in argv[2:]]
    state = _State(result_path, "verify")
    state.data.update(files=0, blocks_ok=0, missing=[], corrupt=[], tails={})
    for writer_state in writer_states:
        files = json.loads(writer_state.read_text())["files"]
        for name, info in sorted(files.items()):
            state.data["files"] += 1
            op = "open"
            try:
                fd = os.open(directory / name, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    size = os.fstat(fd).st_size
                    os.posix_fadvise(fd, 0, size, os.POSIX_FADV_DONTNEED)
                    for block in range(info["acked"]):
                        op = "read"
                        data = os.pread(fd, BLOCK_SIZE, block * BLOCK_SIZE)
                        checked = check_block(data)
                        expected = info["first"] + block
                        if checked == expected:
                            state.data["blocks_ok"] += 1
                        elif len(data) < BLOCK_SIZE:
                            state.data["missing"].append({"file": name, "block": block, "got": len(data)})
                        else:
                            state.data["corrupt"].append({"file": name, "block": block, "expected": expected,
                                                          "problem": checked})
                    tail = size - info["acked"] * BLOCK_SIZE
                    if tail:
                        state.data["tails"][name] = tail
                finally:
                    os.close(fd)
            except OSError as error:
                state.error(op, error, name)
    state.data["done"] = True
    state.flush(force=True)


class IOLoad:
    """A writer and a reader per directory (each a process), and the verification afterwards."""

    def __init__(self, directories: list[Path], state_dir: Path, interval: float = 0.005):
        self.directories = directories
        self.state_dir = state_dir
        self.interval = interval
        self.writers: list[Worker] = []
        self.readers: list[Worker] = []
        self.final: dict[str, dict] = {}

    def start(self) -> "IOLoad":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for index, directory in enumerate(self.directories):
            directory.mkdir(parents=True, exist_ok=True)
            self.writers.append(start_writer(directory, self.state_dir / f"writer-{index}.json",
                                             interval=self.interval))
            self.readers.append(start_reader(directory, self.state_dir / f"reader-{index}.json"))
        return self

    def workers(self) -> list[Worker]:
        return [*self.writers, *self.readers]

    def wait_for_progress(self, blocks: int, timeout: float = 30.0, since: dict | None = None,
                          until_error: bool = False) -> bool:
        """Until every writer acknowledged and every reader checked `blocks` more blocks than in
        `since` (per worker): True. With `until_error`, False as soon as any worker records an error
        after `since`; otherwise TimeoutError (with the errors seen) after `timeout`."""
        since = since or self.mark()

        def progressed():
            for worker in self.workers():
                if worker.process.poll() is not None:
                    raise RuntimeError(f"{worker.role} exited with {worker.process.returncode}: {worker.stderr()}")
            now = self.mark()
            if until_error and now["errors"] > since["errors"]:
                return "errors"
            return all(a - b >= blocks for a, b in zip(now["w"], since["w"])) and \
                all(a - b >= blocks for a, b in zip(now["r"], since["r"]))
        try:
            outcome = wait_until(progressed, timeout, interval=0.05, what=f"{blocks} more blocks written and read")
        except TimeoutError as error:
            raise TimeoutError(f"{error}; errors so far: {describe_errors(self.states())}") from None
        return outcome is True

    def mark(self) -> dict:
        """Per-worker counters now, for wait_for_progress(since=...)."""
        writers = [w.state() for w in self.writers]
        readers = [r.state() for r in self.readers]
        return {"w": [s.get("acked", 0) for s in writers], "r": [s.get("verified", 0) for s in readers],
                "errors": sum(s.get("error_count", 0) for s in writers + readers)}

    def states(self) -> dict[str, dict]:
        if self.final:
            return self.final
        out = {}
        for index, (writer, reader) in enumerate(zip(self.writers, self.readers)):
            out[f"writer-{index}"] = writer.state()
            out[f"reader-{index}"] = reader.state()
        return out

    def stop(self, timeout: float = 20.0, unstick=None) -> dict[str, dict]:
        """Stops every worker (writers first); returns their final states by name."""
        for index, worker in enumerate(self.writers):
            self.final[f"writer-{index}"] = worker.stop(timeout, unstick)
        for index, worker in enumerate(self.readers):
            self.final[f"reader-{index}"] = worker.stop(timeout, unstick)
        return self.final

    def verify(self, timeout: float = 120.0) -> list[dict]:
        return [verify(directory, [writer.state_path], self.state_dir / f"verify-{index}.json", timeout)
                for index, (directory, writer) in enumerate(zip(self.directories, self.writers))]


def verification_problems(results: list[dict], tails_allowed: bool = False) -> list[str]:
    problems = []
    for index, result in enumerate(results):
        for key in ("missing", "corrupt", "errors"):
            if result.get(key):
                problems.append(f"volume {index}: {key}: {result[key][:5]}")
        if result.get("tails") and not tails_allowed:
            problems.append(f"volume {index}: bytes after the acknowledged blocks: {result['tails']}")
        if result.get("hung"):
            problems.append(f"volume {index}: verification hung")
    return problems


class Scenario:
    """Everything a restart test or benchmark creates — work directory, machine, node plugins,
    Gluster volumes, I/O workers — and `close()`, which removes it all in order, also after a
    failure: workers, plugins, leftover mounts, leftover clients of our volumes, the machine, the
    volumes, the directory."""

    def __init__(self, csi, binary: Path, systemd: bool = False):
        self.csi = csi
        self.binary = binary
        # Inside a systemd machine /tmp, /var/tmp and /run are private tmpfs: the driver's paths
        # must be elsewhere. Socket paths stay short either way.
        base = "/var/lib" if systemd else "/tmp"
        self.workdir = Path(tempfile.mkdtemp(prefix="gcsi-e2e-", dir=base))
        self.machine = SystemdMachine(self.workdir) if systemd else HostMachine()
        self.gluster = GlusterVolumes(self.workdir / "bricks")
        self.plugins: list[NodePlugin] = []
        self.loads: list[IOLoad] = []
        self.volumes: list[StagedVolume] = []
        self.cleanup_problems: list[str] = []

    def start(self) -> "Scenario":
        if isinstance(self.machine, SystemdMachine):
            self.machine.start()
        return self

    def plugin(self, placement: str | None, pid_namespace: bool = False, **options) -> NodePlugin:
        plugin = NodePlugin(self.csi, binary=self.binary, machine=self.machine, workdir=self.workdir,
                            placement=placement, pid_namespace=pid_namespace, **options)
        self.plugins.append(plugin)
        return plugin.start()

    def volume(self) -> StagedVolume:
        volume = StagedVolume(self.gluster.create(), self.workdir, len(self.volumes))
        self.volumes.append(volume)
        return volume

    def io(self, volumes: list[StagedVolume], interval: float = 0.005) -> IOLoad:
        """Writer and reader through each volume's target, as this process reaches it."""
        load = IOLoad([self.machine.path(v.target) / "io" for v in volumes], self.workdir / f"io-{len(self.loads)}",
                      interval)
        self.loads.append(load)
        return load.start()

    def abort_fuse_mounts(self):
        """Aborts the FUSE connection of every mount under the workdir (unsticks hung workers)."""
        if isinstance(self.machine, SystemdMachine) and not self.machine.pid:
            return
        mountinfo = self.machine.mountinfo
        for point in mounts_under(self.workdir, mountinfo):
            connection = fuse_connection(point, mountinfo)
            if connection and (connection / "abort").exists():
                try:
                    (connection / "abort").write_text("1")
                except OSError:
                    pass

    def close(self) -> list[str]:
        problems = self.cleanup_problems
        for load in self.loads:
            try:
                load.stop(timeout=5, unstick=self.abort_fuse_mounts)
            except Exception as error:  # noqa: BLE001 (cleanup goes on)
                problems.append(f"stopping I/O workers: {error!r}")
        for plugin in self.plugins:
            try:
                plugin.stop()
            except Exception as error:  # noqa: BLE001
                problems.append(f"stopping the plugin: {error!r}")
        if isinstance(self.machine, HostMachine):
            for point in sorted(mounts_under(self.workdir), reverse=True):
                if run("umount", point, check=False).returncode != 0:
                    run("umount", "-l", point, check=False)
        for volume in self.gluster.names:
            for pid in glusterfs_clients(volume):  # clients of our volumes only: ours
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            wait_until(lambda: not any(glusterfs_clients(v) for v in self.gluster.names), 10,
                       what="the clients of our volumes to exit")
        except TimeoutError as error:
            problems.append(str(error))
        for plugin in self.plugins:
            problems += plugin.remove_busy_containers()
        problems += self.machine.stop() or []
        self.gluster.delete_all()
        if not mounts_under(self.workdir):
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            problems.append(f"{self.workdir} kept: still mounted {mounts_under(self.workdir)}")
        return problems


def errors_after(state: dict, moment: float) -> list[dict]:
    return [e for e in state.get("errors", []) if e.get("t", 0) >= moment]


def describe_errors(states: dict[str, dict], per_worker: bool = True) -> str:
    """One entry per kind of error recorded (the first MAX_RECORDED_ERRORS of each worker): worker
    (or only its role), operation, errno name, count."""
    counts: dict[tuple, int] = {}
    for role, state in states.items():
        for error in state.get("errors", []):
            who = role if per_worker else role.split("-")[0]
            key = (who, error.get("op"), error.get("name", error.get("detail", "")))
            counts[key] = counts.get(key, 0) + 1
    return "; ".join(f"{role} {op} {name} ×{n}" for (role, op, name), n in sorted(counts.items())) or "none"


if __name__ == "__main__":
    roles = {"join-cgroup": join_cgroup_main, "machine-init": machine_init_main, "writer": writer_main,
             "reader": reader_main, "verify": verify_main}
    if len(sys.argv) < 2 or sys.argv[1] not in roles:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(roles)}}} ARGS...")
    roles[sys.argv[1]](sys.argv[2:])
