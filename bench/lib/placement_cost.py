"""Part (c) of bench/node-mount: what each --mount-placement costs NodeStage and NodeUnstage.

One driver per placement, each its own process in its own fake container on its own socket:
`none` and `cgroup` on this host (hostPID), `systemd` and a `none` control ("none in ns") in a
namespace whose PID 1 is a real systemd (Tests/e2e/restart_harness.py's SystemdMachine; left out
with the reason when it cannot start, or on request). Per iteration, in an order that rotates, each
driver gets a NodeStage then a NodeUnstage of a static-PV volume of the same Gluster volume, both
timed. Outside the timing it checks that each driver's start-up line names the placement asked
for, that after each NodeStage the glusterfs client is where that placement puts it (in the unit
`restart_harness.unit_name(volume ID, staging path)`), and that after each NodeUnstage the mount,
the client and the unit are gone; it fails loudly otherwise.

Benchmarks measure and print; nothing in here asserts anything about time.
"""

from __future__ import annotations

import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import csibench as cb

sys.path.insert(0, str(cb.REPO / "Tests/e2e"))

import restart_harness as rh  # noqa: E402

GOAL = 1.20  # NodeStage p50, placement ÷ none
GONE_TIMEOUT = 15.0  # seconds from NodeUnstage's answer until mount, client and unit are gone
UNIT = re.compile(r"glusterfs-csi-[0-9a-f]{16}")


def start_fields(line: str) -> dict[str, str]:
    """key=value fields of a driver's start-up line `mount placement chosen ...`."""
    return dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line.split(" mount placement chosen", 1)[-1]))


def placement_summary(line: str) -> str:
    """placement, requested, location and reason from the start-up line (not its long advice)."""
    fields = start_fields(line)
    return " ".join(f"{key}={fields[key]}" for key in ("placement", "requested", "location", "reason") if key in fields)


class PlacementSide:
    """One driver of (c): a placement, the machine it runs on, its own socket, volume ID and
    staging path (a volume for NodePlugin.stage/unstage), and what it measured."""

    def __init__(self, label: str, placement: str, machine, workdir: Path, token: str, context: dict):
        self.label = label
        self.placement = placement
        self.machine = machine
        self.workdir = workdir
        self.volume_id = f"bench-placement-{label.replace(' ', '-')}-{token}"
        self.staging = workdir / "staging"
        self.context = context
        self.unit = rh.unit_name(self.volume_id, self.staging)
        self.plugin: rh.NodePlugin | None = None
        self.driver_pid: int | None = None
        self.chosen_line = ""
        self.stage: list[float] = []
        self.unstage: list[float] = []
        self.gone: list[float] = []  # ms from NodeUnstage's answer until its client had exited
        self.driver_cpu = 0.0
        self.helper_cpu = 0.0
        self.where = ""  # where the client was found, for the report
        self.checks = 0

    def clients(self) -> set[int]:
        """The glusterfs FUSE client processes serving the staging path (auto_unmount makes two)."""
        return rh.clients_of_mount(self.context["volume"], str(self.staging))


def elsewhere(paths: dict[str, str], placed: set[str]) -> str:
    """'; <hierarchies> at <path>' for the hierarchies where the client is not in its unit."""
    rest: dict[str, list[str]] = {}
    for key, path in paths.items():
        if key not in placed:
            rest.setdefault(path, []).append(key)
    return "".join(f"; {', '.join(sorted(keys))} at {path}" for path, keys in sorted(rest.items()))


def check_client_place(side: PlacementSide) -> None:
    """Raises unless every glusterfs client of the side's staged volume is where its placement
    puts it: cgroup → `/glusterfs-csi/<unit>` (in every hierarchy the driver placed it in),
    systemd → `<unit>.scope`, none → in no unit."""
    pids = side.clients()
    if not pids:
        raise RuntimeError(f"(c) {side.label}: NodeStage answered OK but no glusterfs client serves {side.staging}")
    for pid in sorted(pids):
        paths = {key or "unified": path for key, path in rh.process_cgroups(pid).items()}
        if not paths:
            raise RuntimeError(f"(c) {side.label}: the client {pid} went away while staged")
        in_cgroup = {key for key, path in paths.items() if path.endswith(f"/glusterfs-csi/{side.unit}")}
        in_scope = {key for key, path in paths.items() if f"/{side.unit}.scope/" in path + "/"}
        shown = "; ".join(f"{key}:{path}" for key, path in paths.items())
        named = "; unit name = FNV-1a of the volume ID + staging path"
        if side.placement == "cgroup":
            ok, expected = bool(in_cgroup) and not in_scope, f"/glusterfs-csi/{side.unit}"
            side.where = (f"in /glusterfs-csi/<unit> in {len(in_cgroup)} of {len(paths)} hierarchies"
                          + elsewhere(paths, in_cgroup) + named)
        elif side.placement == "systemd":
            ok, expected = bool(in_scope), f"{side.unit}.scope"
            side.where = (f"in <unit>.scope in {len(in_scope)} of {len(paths)} hierarchies "
                          f"({', '.join(sorted(in_scope))})" + elsewhere(paths, in_scope) + named)
        else:
            ok, expected = not UNIT.search(shown), "no unit"
            same = rh.process_cgroups(side.driver_pid) == rh.process_cgroups(pid)
            side.where = ("in the driver's own cgroups (its fake container)" if same else
                          f"in no unit, not in the driver's cgroups: {shown}")
        if not ok:
            raise RuntimeError(f"(c) {side.label}: glusterfs client {pid} is not where --mount-placement "
                               f"{side.placement} puts it ({expected}): {shown}")
    side.checks += 1


def wait_unstaged(side: PlacementSide) -> float:
    """After NodeUnstage: no mount at the staging path (as the driver's mount namespace sees it),
    no client of it, and (with a placement) no unit of the volume left. Returns how long after the
    answer that took, in ms (the client's exit, which `none` does not wait for)."""
    started = time.perf_counter_ns()

    def clean():
        if rh.mounts_under(side.staging, side.machine.mountinfo) or side.clients():
            return False
        if side.placement == "cgroup":
            return not any((h.mountpoint / "glusterfs-csi" / side.unit).exists() for h in rh.hierarchies())
        if side.placement == "systemd":
            return not rh.cgroups_named({side.unit + ".scope"}, roots=list(side.machine.roots.values()))
        return True

    try:
        rh.wait_until(clean, GONE_TIMEOUT, interval=0.01, what=f"(c) {side.label}: mount, client and unit gone")
    except TimeoutError as error:
        raise RuntimeError(f"{error}: mounts {rh.mounts_under(side.staging, side.machine.mountinfo)}, clients "
                           f"{sorted(side.clients())}") from None
    return (time.perf_counter_ns() - started) / 1e6


class PlacementCost:
    """Part (c): a driver per placement (none and cgroup on this host, systemd — and a `none`
    control — in a systemd namespace), each its own process in its own fake container on its own
    socket; NodeStage then NodeUnstage of the same static-PV volume on each, in rotating order.

    `children_cpu(pid)` is bench/node-mount's: the CPU seconds of a live process's reaped children."""

    def __init__(self, csi, binary: Path, workdir: Path, volume: str, servers: list[str], log_level: str,
                 systemd: bool, children_cpu):
        pb, stubs, _ = csi
        self.csi = SimpleNamespace(pb=pb, grpc=stubs)  # the shape restart_harness takes
        self.binary = binary
        self.workdir = workdir / "placement"
        self.context = {"server": ",".join(servers), "volume": volume}
        self.log_level = log_level
        self.want_systemd = systemd
        self.children_cpu = children_cpu
        self.sides: list[PlacementSide] = []
        self.machine: rh.SystemdMachine | None = None
        self.machine_workdir: Path | None = None
        self.skipped = "" if systemd else "--no-systemd was given"
        self.cleanup_problems: list[str] = []
        self.exit_codes: dict[str, int | None] = {}
        self.token = secrets.token_hex(3)

    def side(self, label: str, placement: str, machine, workdir: Path) -> PlacementSide:
        return PlacementSide(label, placement, machine, workdir, self.token, self.context)

    def start(self):
        problem = rh.cgroup_problem()
        if problem:
            raise RuntimeError(f"(c) needs fake containers (cgroups): {problem}")
        host = rh.HostMachine()
        self.sides = [self.side("none", "none", host, self.workdir / "none"),
                      self.side("cgroup", "cgroup", host, self.workdir / "cgroup")]
        if self.want_systemd:
            self.skipped = rh.systemd_problem() or ""
        if self.want_systemd and not self.skipped:
            # Inside the namespace /tmp, /var/tmp and /run are private tmpfs: its drivers' paths
            # (socket, logs, staging) must be elsewhere.
            self.machine_workdir = Path(tempfile.mkdtemp(prefix="gnm-", dir="/var/lib"))
            machine = rh.SystemdMachine(self.machine_workdir)
            print("(c) starting systemd in a namespace ...", file=sys.stderr, flush=True)
            try:
                self.machine = machine.start()
            except (RuntimeError, OSError) as error:
                self.cleanup_problems += machine.stop() or []
                self.skipped = f"systemd did not start in a namespace: {str(error).splitlines()[0]}"
            if self.machine is not None:
                self.sides += [self.side("systemd", "systemd", self.machine, self.machine_workdir / "systemd"),
                               self.side("none in ns", "none", self.machine, self.machine_workdir / "none-ns")]
        for side in self.sides:
            side.workdir.mkdir(parents=True, exist_ok=True)
            side.plugin = rh.NodePlugin(self.csi, binary=self.binary, machine=side.machine, workdir=side.workdir,
                                        placement=side.placement, log_level=self.log_level,
                                        node_id=f"bench-node-{side.placement}")
            side.plugin.start()
            drivers = side.plugin.driver_pids()
            if len(drivers) != 1:
                raise RuntimeError(f"(c) {side.label}: expected one driver process in its container, found {drivers}")
            side.driver_pid = drivers.pop()
        for side in self.sides:
            side.chosen_line = side.plugin.placement_line() or ""
            chosen = start_fields(side.chosen_line).get("placement")
            if chosen != side.placement:
                raise RuntimeError(f"(c) the driver started with --mount-placement {side.placement} got "
                                   f"{chosen or 'no placement line'}:\n"
                                   f"{side.chosen_line or side.plugin.log()[-2000:]}")
        return self

    def cycle(self, side: PlacementSide, timed: bool = True):
        clock = time.perf_counter_ns
        cpu, helpers = cb.process_cpu_seconds(side.driver_pid), self.children_cpu(side.driver_pid)
        started = clock()
        side.plugin.stage(side)
        staged = clock()
        check_client_place(side)  # untimed
        unstarted = clock()
        side.plugin.unstage(side)
        finished = clock()
        if timed:
            side.stage.append((staged - started) / 1e6)
            side.unstage.append((finished - unstarted) / 1e6)
            side.driver_cpu += cb.process_cpu_seconds(side.driver_pid) - cpu
            side.helper_cpu += self.children_cpu(side.driver_pid) - helpers
        gone = wait_unstaged(side)
        if timed:
            side.gone.append(gone)

    def run(self, iterations: int):
        print("(c) warming up: one NodeStage + NodeUnstage per placement ...", file=sys.stderr, flush=True)
        for side in self.sides:
            self.cycle(side, timed=False)
        for i in range(iterations):
            order = self.sides[i % len(self.sides):] + self.sides[:i % len(self.sides)]
            print(f"  (c) iteration {i + 1}/{iterations}: {', '.join(s.label for s in order)} ...",
                  file=sys.stderr, flush=True)
            for side in order:
                self.cycle(side)

    def stop(self) -> list[str]:
        """Every driver (SIGTERM to the driver itself, then its container as a runtime does),
        leftover mounts, clients and units of our volume IDs, the systemd namespace. Returns what
        could not be removed."""
        problems = self.cleanup_problems
        for side in self.sides:
            if side.plugin is None:
                continue
            try:
                process = side.plugin.process
                side.plugin.stop()
                self.exit_codes[side.label] = process.returncode if process is not None else None
            except Exception as error:  # noqa: BLE001 (clean-up goes on)
                problems.append(f"stopping the {side.label} driver: {error!r}")
        for side in self.sides:
            try:
                for point in sorted(rh.mounts_under(side.workdir, side.machine.mountinfo), reverse=True):
                    for argv in (["umount", point], ["umount", "-l", point]):
                        if rh.run(*side.machine.wrap(argv), check=False).returncode == 0:
                            break
            except (OSError, subprocess.SubprocessError) as error:  # a namespace already gone, a hung umount
                problems.append(f"unmounting what the {side.label} driver left: {error!r}")
            for pid in side.clients():
                rh.send_signal(pid, signal.SIGKILL)
        host_units = {side.unit for side in self.sides if side.machine is not self.machine}
        for path in rh.cgroups_named(host_units, depth=3):  # <hierarchy>/glusterfs-csi/<unit>
            for pid in rh.cgroup_procs(Path(path)):
                rh.send_signal(pid, signal.SIGKILL)
            try:
                rh.wait_until(lambda p=path: not rh.cgroup_procs(Path(p)), 5, what=f"{path} to empty")
            except TimeoutError as error:
                problems.append(str(error))
            problems += rh.remove_cgroup_tree(Path(path))
        if self.machine is not None:
            problems += self.machine.stop() or []
        if self.machine_workdir is not None:
            if rh.mounts_under(self.machine_workdir):
                problems.append(f"{self.machine_workdir} kept: still mounted")
            else:
                shutil.rmtree(self.machine_workdir, ignore_errors=True)
        return problems


def measure(csi, binary: Path, workdir: Path, volume: str, servers: list[str], log_level: str, iterations: int,
            systemd: bool, children_cpu) -> PlacementCost:
    """Runs (c) and removes everything it made, also on failure (what could not be removed is in
    `cleanup_problems`, and on stderr). Raises when a driver did not exit 0 after SIGTERM."""
    placement = PlacementCost(csi, binary, workdir, volume, servers, log_level, systemd, children_cpu)
    try:
        placement.start()
        placement.run(iterations)
    finally:
        for problem in placement.stop():
            print(f"(c) clean-up: {problem}", file=sys.stderr, flush=True)
    bad_exits = {label: code for label, code in placement.exit_codes.items() if code != 0}
    if bad_exits:
        raise RuntimeError(f"(c) drivers did not exit with 0 after SIGTERM: {bad_exits}")
    return placement


def placement_rows(sides: list[PlacementSide], ms):
    """The (c) table (`ms` formats milliseconds): each placement against `none` on this host, and
    systemd against the `none` driver in the same namespace."""
    base = next(side for side in sides if side.label == "none")
    control = next((side for side in sides if side.label == "none in ns"), None)
    rows = []
    for side in sides:
        st, un = cb.describe(side.stage), cb.describe(side.unstage)
        bs, bu = cb.describe(base.stage), cb.describe(base.unstage)
        p50, mean = cb.ratio(st["p50"], bs["p50"]), cb.ratio(st["mean"], bs["mean"])
        paired = [a - b for a, b in zip(side.stage, base.stage)]
        is_base = side is base
        rows.append((
            side.label, f"{ms(st['p50'])} / {ms(st['mean'])} ms", f"{p50:.2f} / {mean:.2f}",
            "" if is_base or side is control else f"≤ {GOAL:.2f} {cb.verdict(p50, GOAL)}",
            "" if is_base else f"{cb.percentile(paired, 50):+.1f} ms ({cb.percentile(paired, 25):+.1f} … "
                               f"{cb.percentile(paired, 75):+.1f})",
            f"{ms(un['p50'])} / {ms(un['mean'])} ms",
            f"{cb.ratio(un['p50'], bu['p50']):.2f} / {cb.ratio(un['mean'], bu['mean']):.2f}",
            f"{ms(cb.percentile(side.gone, 50))} / {ms(max(side.gone))} ms",
            f"{side.driver_cpu / len(side.stage) * 1e3:.1f} / {side.helper_cpu / len(side.stage) * 1e3:.1f} ms",
        ))
    extra = []
    systemd = next((side for side in sides if side.placement == "systemd"), None)
    if systemd and control:
        st, cs = cb.describe(systemd.stage), cb.describe(control.stage)
        paired = [a - b for a, b in zip(systemd.stage, control.stage)]
        extra.append(f"systemd against `none` in the same namespace: NodeStage p50 "
                     f"{cb.ratio(st['p50'], cs['p50']):.2f}, mean {cb.ratio(st['mean'], cs['mean']):.2f}, "
                     f"median of pairs {cb.percentile(paired, 50):+.1f} ms")
    return rows, extra


EXPLANATION = """\
(c): one driver per --mount-placement, each in a fake container (its own cgroups) on its own
socket; none and cgroup on this host, systemd (and `none in ns`, its control) in a namespace whose
PID 1 is systemd 252. Each iteration runs NodeStage then NodeUnstage of one static-PV volume of
the same Gluster volume on every driver, in an order that rotates, so drift hits every side.
ratio = placement ÷ none (p50 / mean); the goal (≤ 1.20) is judged on the NodeStage p50 — the
mean moves with the FUSE mount's occasional 1–3 s outliers on either side. stage − none = the
median (and IQR) of the differences within one iteration. NodeUnstage with a placement includes
waiting for the client to exit (up to 5 s before SIGTERM) and removing its unit; with none the
client exits after the answer: "client gone after" is how long after the answer the mount, the
client and the unit were all gone (polled every 10 ms, not part of the RPC's time). CPU/pair =
the driver's own CPU and its reaped helpers' per stage+unstage (clock ticks of 10 ms)."""
