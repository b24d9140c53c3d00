"""Restarting the node plugin the way a container runtime does, with real GlusterFS and live I/O.

Used by Tests/e2e/test_restart_survival.py, Tests/e2e/test_systemd_bus.py and bench/restart-stress.
TEST SUPPORT ONLY: it runs as root and creates cgroups, namespaces, Gluster volumes and mounts, and
removes them again.

This module is the entry point: `Scenario` (everything a restart test or benchmark creates, and
its clean-up), `leaks` (what the volumes left behind), every name of the modules below (import
this one), and, run as a script, the subcommands of the processes the harness starts.

- restart_system.py: processes and mounts as /proc shows them, commands and polling with deadlines;
- restart_cgroups.py: the cgroup hierarchies, and `FakeContainer`, killed the way runc kills one;
- restart_machines.py: where the plugin runs: `HostMachine`, or `SystemdMachine`, a real systemd as
  PID 1 of a PID + mount + cgroup namespace;
- restart_volumes.py: Gluster volumes on directory bricks, and `StagedVolume`;
- restart_plugin.py: `NodePlugin`, the node plugin as a DaemonSet pod, restarted like one;
- restart_io.py and restart_io_workers.py: a writer and a reader of checksummed, fsynced blocks
  through each mount, every block verified afterwards.

    python3 -S restart_harness.py join-cgroup PROCS... -- COMMAND...
    python3 -S restart_harness.py machine-init HOST_MOUNT_NS MOUNTS_JSON
    python3 -S restart_harness.py writer|reader|verify ARGS...

The script entry points import only the standard library (they start fast); grpc is imported
when a plugin starts.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from restart_cgroups import KILL_HIERARCHIES, FakeContainer, Hierarchy, cgroup_problem, cgroup_procs, \
    cgroups_named, container_parents, hierarchies, hierarchy, join_argv, join_cgroup_main, make_cgroup, \
    remove_cgroup_tree
from restart_io import DEAD_MOUNT_ERRNOS, IOLoad, Worker, describe_errors, errors_after, start_reader, \
    start_writer, verification_problems, verify
from restart_io_workers import BLOCK_SIZE, BLOCKS_PER_FILE, HEADER, MAGIC, MAX_RECORDED_ERRORS, PAYLOAD_SIZE, \
    STATE_INTERVAL, check_block, make_block, reader_main, verify_main, writer_main
from restart_machines import HostMachine, SystemdMachine, machine_init_main, systemd_problem
from restart_plugin import RPC_TIMEOUT, NodePlugin, binary_help, supports_kubelet_dir, supports_placement
from restart_system import COMMAND_TIMEOUT, HARNESS_SCRIPT, all_pids, clients_of_mount, fuse_connection, \
    glusterfs_clients, harness_argv, mount_table, mounts_under, namespace_pid, process_cgroups, process_stat, \
    read_argv, run, send_signal, unescape_mount_path, wait_until, zombies_of
from restart_volumes import GlusterVolumes, StagedVolume, gluster, unit_name

__all__ = [
    # restart_system
    "COMMAND_TIMEOUT", "HARNESS_SCRIPT", "all_pids", "clients_of_mount", "fuse_connection", "glusterfs_clients",
    "harness_argv", "mount_table", "mounts_under", "namespace_pid", "process_cgroups", "process_stat", "read_argv",
    "run", "send_signal", "unescape_mount_path", "wait_until", "zombies_of",
    # restart_cgroups
    "KILL_HIERARCHIES", "FakeContainer", "Hierarchy", "cgroup_problem", "cgroup_procs", "cgroups_named",
    "container_parents", "hierarchies", "hierarchy", "join_argv", "join_cgroup_main", "make_cgroup",
    "remove_cgroup_tree",
    # restart_machines
    "HostMachine", "SystemdMachine", "machine_init_main", "systemd_problem",
    # restart_volumes
    "GlusterVolumes", "StagedVolume", "gluster", "unit_name",
    # restart_plugin
    "RPC_TIMEOUT", "NodePlugin", "binary_help", "supports_kubelet_dir", "supports_placement",
    # restart_io, restart_io_workers
    "DEAD_MOUNT_ERRNOS", "IOLoad", "Worker", "describe_errors", "errors_after", "start_reader", "start_writer",
    "verification_problems", "verify", "BLOCK_SIZE", "BLOCKS_PER_FILE", "HEADER", "MAGIC", "MAX_RECORDED_ERRORS",
    "PAYLOAD_SIZE", "STATE_INTERVAL", "check_block", "make_block", "reader_main", "verify_main", "writer_main",
    # this module
    "Scenario", "leaks",
]


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
                send_signal(pid, signal.SIGKILL)
        try:
            wait_until(lambda: not any(glusterfs_clients(v) for v in self.gluster.names), 10,
                       what="the clients of our volumes to exit")
        except TimeoutError as error:
            problems.append(str(error))
        for plugin in self.plugins:
            problems += plugin.remove_busy_containers()
        problems += self.machine.stop()
        self.gluster.delete_all()
        if not mounts_under(self.workdir):
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            problems.append(f"{self.workdir} kept: still mounted {mounts_under(self.workdir)}")
        return problems


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
            "cgroups": cgroups_named(names),
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


if __name__ == "__main__":
    roles = {"join-cgroup": join_cgroup_main, "machine-init": machine_init_main, "writer": writer_main,
             "reader": reader_main, "verify": verify_main}
    if len(sys.argv) < 2 or sys.argv[1] not in roles:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(roles)}}} ARGS...")
    roles[sys.argv[1]](sys.argv[2:])
