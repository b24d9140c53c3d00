"""Machines the node plugin runs on, for the restart harness. TEST SUPPORT ONLY: it runs as root.

- `HostMachine`: this machine as it is (no systemd here); the plugin shares its PID and mount
  namespaces (hostPID).
- `SystemdMachine`: a real systemd as PID 1 of a new PID + mount + cgroup namespace, started by
  the `machine-init` entry point of restart_harness.py, everything it creates kept below a cgroup
  of its own. Its mounts live in its private mount namespace: this process reaches them through
  `/proc/<systemd pid>/root`.

Both answer the same questions: how to run a command on it (`wrap`), how this process reaches one
of its paths (`path`, `mountinfo`), where its containers' cgroups go (`container_parents`), which
systemd units it has (`scopes`).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from restart_cgroups import cgroup_problem, container_parents, hierarchies, hierarchy, join_argv, make_cgroup, \
    remove_cgroup_tree
from restart_system import all_pids, harness_argv, mount_table, process_stat, run, send_signal, wait_until


class HostMachine:
    """This machine as it is: the plugin shares its PID and mount namespaces (hostPID)."""

    name = "host"
    mountinfo = Path("/proc/self/mountinfo")

    def start(self) -> "HostMachine":
        return self

    def wrap(self, argv: list[str]) -> list[str]:
        return argv

    def path(self, path: Path | str) -> Path:
        """How this process reaches `path` of the machine."""
        return Path(path)

    def container_parents(self) -> dict[str, Path]:
        return container_parents()

    def scopes(self, pattern: str) -> list[str]:
        return []

    def stop(self) -> list[str]:
        return []


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
        own_mount_ns = os.readlink("/proc/self/ns/mnt")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        argv = join_argv(list(self.roots.values()), [
            "unshare", "--cgroup", "--pid", "--fork", "--mount", "--mount-proc", "--propagation", "private",
            *harness_argv("machine-init", own_mount_ns, json.dumps(mounts))])
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
        state = self.systemctl("is-system-running", check=False).stdout.strip()
        return state if state in ("running", "degraded", "maintenance", "stopping") else None

    def stop(self, timeout: float = 20.0) -> list[str]:
        """Powers systemd off (SIGRTMIN+4; SIGKILL if it takes longer than `timeout`), then removes its
        cgroup subtrees. Returns what could not be removed."""
        if self.launcher and self.launcher.poll() is None:
            if self.pid:
                send_signal(self.pid, signal.SIGRTMIN + 4)
            try:
                self.launcher.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                if self.pid:
                    send_signal(self.pid, signal.SIGKILL)  # PID 1 of its namespace: takes the rest with it
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
        return dict(self.roots)

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
