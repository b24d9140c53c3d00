"""cgroups for the restart harness, and the fake container. TEST SUPPORT ONLY: it runs as root.

- The cgroup hierarchies mounted under /sys/fs/cgroup (v1, hybrid or v2), and where a runtime
  would put a container on this host (`container_parents`).
- `FakeContainer`: a cgroup in every hierarchy, as runc makes for a container (the one cgroup on a
  v2 host). Processes join it before they exec (`join_argv`: the `join-cgroup` entry point of
  restart_harness.py, so no preexec_fn runs in a threaded pytest, and no user string goes through
  a shell). `kill()` does what runc does to stop a container: freeze it, SIGKILL every pid listed
  in the `cgroup.procs` of pids, devices (runc's list on v1) and the v2 cgroup (unified on a hybrid
  host: runc >= 1.2 uses its cgroup.kill), thaw, and repeat until none is left; then its cgroups
  are removed, as runc's destroy does: a process left in any of them (say freezer) keeps that
  cgroup busy.

Standard library only (`join-cgroup` starts every plugin container: it must start fast).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import time
from pathlib import Path

from restart_system import harness_argv, mount_table, process_cgroups, send_signal


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
        return process_cgroups("self").get(self.key, "/")

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
        return join_argv(list(self.paths.values()), argv)

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
                send_signal(pid, signal.SIGKILL)
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


def join_argv(cgroups: list[Path], argv: list[str]) -> list[str]:
    """argv run in each of `cgroups`: a small exec wrapper (join-cgroup) joins them first."""
    return harness_argv("join-cgroup", *(str(path / "cgroup.procs") for path in cgroups), "--", *argv)


def join_cgroup_main(argv: list[str]):
    """`join-cgroup PROCS... -- COMMAND...`: move this process into each cgroup, then exec."""
    split = argv.index("--")
    for procs in argv[:split]:
        with open(procs, "w") as f:
            f.write("0")
    command = argv[split + 1:]
    os.execvp(command[0], command)
