"""A node plugin restart, done the way a container runtime does it, must not take a pod's GlusterFS
away (issue 12). The plugin runs in a fake container (restart_harness.py): a restart is SIGKILL of
every process in the container's cgroup, then a new container on the same socket. Meanwhile a
writer appends checksummed, fsynced blocks through the published target and a reader checks them.

- `none` (the driver as PID 1 of its own PID namespace, as without hostPID) must lose the mount:
  the proof that this harness catches a lost mount. The driver's dead-mount recovery then heals it
  at the next NodeStage/NodePublish.
- `cgroup` (hostPID, clients in cgroups of their own) and `systemd` (a real systemd 252 as PID 1 of
  a PID + mount + cgroup namespace; clients in transient scopes) must keep it: no I/O error, every
  block intact, the same client adopted by the new instance, nothing left after unstage.
- The driver as PID 1 of its namespace reaps the clients that end up as its orphans: no zombie
  after 20 stage/unstage cycles.
"""

import errno

import pytest

import heketi_testlib
import restart_harness as rh
from conftest import driver_binary

problem = heketi_testlib.glusterd_problem() or rh.cgroup_problem()
pytestmark = pytest.mark.skipif(problem is not None, reason=problem or "")

WARM_UP_BLOCKS = 20  # per writer and reader before the kill
AFTER_BLOCKS = 20  # per writer and reader after the new instance answers


@pytest.fixture
def scenario(csi):
    """A Scenario on this host; torn down (volumes, mounts, cgroups, processes) even on failure."""
    made = []

    def make(systemd: bool = False) -> rh.Scenario:
        if systemd:
            reason = rh.systemd_problem()
            if reason:
                pytest.skip(reason)
        scenario = rh.Scenario(csi, driver_binary(), systemd=systemd)
        made.append(scenario)
        if systemd:
            try:
                scenario.start()
            except RuntimeError as error:
                pytest.skip(f"systemd does not start in a namespace here: {error}")
        return scenario

    yield make
    problems = []
    for scenario in made:
        problems += scenario.close()
    assert not problems, f"clean-up left things behind: {problems}"


def placement_chosen(plugin: rh.NodePlugin, placement: str):
    line = plugin.placement_line()
    assert line and f"placement={placement}" in line, \
        f"the plugin did not choose placement={placement}: {line!r}\n{plugin.log()[-3000:]}"


def assert_no_leaks(plugin: rh.NodePlugin, volumes: list[rh.StagedVolume]):
    found = rh.leaks(plugin, volumes)
    assert not any(found.values()), f"left behind after unpublish + unstage: {found}"


def survive_restart(scenario: rh.Scenario, placement: str):
    """Stage + publish, I/O across a runtime-style restart, adoption, stats, clean-up: the contract."""
    if not rh.supports_placement(scenario.binary):
        pytest.fail(f"{scenario.binary} does not know --mount-placement (issue 12 is not in this build)")
    plugin = scenario.plugin(placement)
    placement_chosen(plugin, placement)
    volume = scenario.volume()
    plugin.stage(volume)
    plugin.publish(volume)
    clients = rh.clients_of_mount(volume.gluster_volume, str(volume.staging))
    assert clients, "no glusterfs client serves the staging path"
    for pid in clients:
        # In the volume's own unit: the name the leak checks below look for is the real one.
        assert any(path.rstrip("/").split("/")[-1] in (volume.unit, volume.unit + ".scope")
                   for path in rh.process_cgroups(pid).values()), \
            f"the glusterfs client {pid} is not in unit {volume.unit}: {rh.process_cgroups(pid)}"
        assert not plugin.container.holds(pid, kill_only=True), \
            f"the glusterfs client {pid} is in the plugin container's cgroups " \
            f"{plugin.container.holds(pid, kill_only=True)}: a restart kills it"

    io = scenario.io([volume])
    io.wait_for_progress(WARM_UP_BLOCKS)
    report = plugin.restart()
    # The pod's I/O goes on before anything calls the new instance (kubelet does not).
    progressed = io.wait_for_progress(AFTER_BLOCKS, since=io.mark(), until_error=True)
    assert progressed and io.mark()["errors"] == 0, \
        f"I/O errors across the restart ({report['seconds']:.3f} s kill, {report['ready_seconds']:.3f} s to " \
        f"ready): {rh.describe_errors(io.states())}"

    # The new instance adopts the staged volume: OK, no new client, healthy.
    plugin.stage(volume)
    plugin.publish(volume)
    assert rh.clients_of_mount(volume.gluster_volume, str(volume.staging)) == clients, \
        "the new plugin instance started another glusterfs client instead of adopting the running one"
    stats = plugin.stats(volume)
    assert not stats.volume_condition.abnormal, stats.volume_condition.message
    assert any(usage.total > 0 for usage in stats.usage)

    states = io.stop()
    assert not any(s.get("hung") for s in states.values()), f"an I/O worker hung: {states}"
    errors = rh.describe_errors(states)
    assert all(s.get("error_count", 0) == 0 for s in states.values()), \
        f"I/O errors across the restart ({report['seconds']:.3f} s kill, {report['ready_seconds']:.3f} s to " \
        f"ready): {errors}"
    bad = [b for s in states.values() for b in s.get("bad", [])]
    assert not bad, f"the reader saw corrupt blocks: {bad[:5]}"
    results = io.verify()
    assert not rh.verification_problems(results), rh.verification_problems(results)
    writer = states["writer-0"]
    assert results[0]["blocks_ok"] == writer["acked"] > WARM_UP_BLOCKS + AFTER_BLOCKS

    plugin.unpublish(volume)
    plugin.unstage(volume)
    assert_no_leaks(plugin, [volume])
    # runc removes a stopped container's cgroups. A client left in one of them (freezer, cpuset: v1
    # hierarchies systemd does not manage) keeps it busy: each restart leaves a cgroup behind, and
    # runc freezes the client with the container it stops.
    assert not report["cgroups_left"], \
        f"the glusterfs client stayed in the old container's cgroups, which cannot be removed: " \
        f"{report['cgroups_left']}"
    print(f"\n{placement}: killed {len(report['killed'])} processes in {report['seconds'] * 1000:.0f} ms, new "
          f"instance ready in {report['ready_seconds'] * 1000:.0f} ms; {writer['acked']} blocks written and "
          f"verified, longest gap between two fsyncs {writer['max_gap'] * 1000:.0f} ms")


def test_without_placement_a_restart_loses_the_mount_and_the_next_stage_heals_it(scenario):
    s = scenario()
    plugin = s.plugin("none", pid_namespace=True)
    assert [rh.namespace_pid(pid) for pid in plugin.driver_pids()] == [1], "the driver should be PID 1 of its namespace"
    volume = s.volume()
    plugin.stage(volume)
    plugin.publish(volume)
    old_clients = rh.clients_of_mount(volume.gluster_volume, str(volume.staging))
    assert old_clients and all(plugin.container.holds(pid) for pid in old_clients), \
        "without placement the client should run in the plugin's container"

    io = s.io([volume])
    io.wait_for_progress(WARM_UP_BLOCKS)
    report = plugin.restart()
    killed_at = report["started_at"]

    # The harness sees what a pod sees: its mount is gone.
    def lost():
        states = io.states()
        return all(rh.errors_after(state, killed_at) for state in states.values())
    rh.wait_until(lost, 15, what="the writer and the reader to see the lost mount")
    assert not (rh.clients_of_mount(volume.gluster_volume, str(volume.staging)) & old_clients)
    seen = {e.get("errno") for state in io.states().values() for e in rh.errors_after(state, killed_at)}
    assert seen & {errno.ENOTCONN, errno.ECONNABORTED}, f"expected ENOTCONN/ECONNABORTED, saw {seen}"
    assert seen <= rh.DEAD_MOUNT_ERRNOS | {errno.ENOENT}, f"unexpected errors: {rh.describe_errors(io.states())}"

    # The next NodeStage/NodePublish (what kubelet would call for a new pod) heals it.
    plugin.stage(volume)
    plugin.publish(volume)
    new_clients = rh.clients_of_mount(volume.gluster_volume, str(volume.staging))
    assert new_clients and not new_clients & old_clients
    stats = plugin.stats(volume)
    assert not stats.volume_condition.abnormal, stats.volume_condition.message
    io.wait_for_progress(5, since=io.mark())  # both write and read through the healed mount
    states = io.stop()
    print(f"\nnone: killed {len(report['killed'])} processes in {report['seconds'] * 1000:.0f} ms; I/O errors "
          f"after the kill: {rh.describe_errors(states)}")

    # Every block acknowledged before the kill (and after the heal) is there, intact.
    results = io.verify()
    assert not rh.verification_problems(results, tails_allowed=True), rh.verification_problems(results, True)
    assert results[0]["blocks_ok"] == states["writer-0"]["acked"]

    plugin.unpublish(volume)
    plugin.unstage(volume)
    found = rh.leaks(plugin, [volume])
    found.pop("zombies")  # the zombie test below covers them
    assert not any(found.values()), f"left behind after unpublish + unstage: {found}"


def test_the_driver_as_pid_1_reaps_the_clients_of_20_stage_unstage_cycles(scenario):
    s = scenario()
    plugin = s.plugin("none", pid_namespace=True)
    volume = s.volume()
    for _ in range(20):
        plugin.stage(volume)
        plugin.unstage(volume)
    rh.wait_until(lambda: not rh.glusterfs_clients(volume.gluster_volume), 10, what="clients to exit")
    drivers = plugin.pids()
    try:
        rh.wait_until(lambda: not rh.zombies_of(drivers), 3, what="zombies reaped")
    except TimeoutError:
        pass
    zombies = rh.zombies_of(drivers)
    assert not zombies, f"{len(zombies)} zombies whose parent is a driver process after 20 cycles: {zombies[:4]}"


def test_with_cgroup_placement_mounts_survive_a_restart_under_io(scenario):
    survive_restart(scenario(), "cgroup")


def test_with_systemd_placement_mounts_survive_a_restart_under_io(scenario):
    survive_restart(scenario(systemd=True), "systemd")


def test_unstage_after_the_client_died_leaves_nothing_behind(scenario):
    """A client that died (killed here; an OOM kill on a node) leaves its unit behind until
    unstage: unpublish and unstage of the dead mount remove it."""
    s = scenario()
    plugin = s.plugin("cgroup")
    placement_chosen(plugin, "cgroup")
    volume = s.volume()
    plugin.stage(volume)
    plugin.publish(volume)
    clients = rh.clients_of_mount(volume.gluster_volume, str(volume.staging))
    assert clients
    for pid in clients:
        rh.send_signal(pid, 9)
    rh.wait_until(lambda: not rh.clients_of_mount(volume.gluster_volume, str(volume.staging)), 10,
                  what="the killed client to be gone")
    assert rh.cgroups_named({volume.unit}), "the dead client's unit should still be there before unstage"
    plugin.unpublish(volume)
    plugin.unstage(volume)
    assert_no_leaks(plugin, [volume])
