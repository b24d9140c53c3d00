"""The Swift SystemdBus integration tests (Tests/SystemdBusTests/SystemdIntegrationTests.swift), run
against a real systemd: a systemd 252 as PID 1 of a PID + mount + cgroup namespace of its own
(restart_harness.SystemdMachine), the already built test bundle run inside it.

`swift test` cannot run inside the namespace, so the bundle runs directly, with
`--testing-library swift-testing` (without it the bundle runs only its XCTest tests: none here).
Each run must pass AND have run the tests it should: a suite that skips everything passes too (the
tests that need a connection skip themselves when it cannot be made). The xUnit report says which
tests ran and which skipped; a skip this file does not expect fails.

Four ways a node plugin reaches systemd: with hostPID (in systemd's PID namespace) or from a PID
namespace of its own (a pod without hostPID), each through systemd's private socket (a direct
connection) and through the D-Bus system bus.

The bundle is the debug build's: `scripts/test` runs the end-to-end tests twice (the debug binary,
then the release binary through GLUSTERFS_CSI_BIN); this runs in the first run only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

import restart_harness as rh
from conftest import REPO

DEBUG_BINARY = REPO / ".build/debug/glusterfs-csi"
BUNDLE = REPO / ".build/debug/glusterfs-csiPackageTests.xctest"
PRIVATE_SOCKET = "/run/systemd/private"
SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"
RUN_TIMEOUT = 90  # seconds per run of the suite (its own limit is 2 minutes per test)

# Test functions of SystemdIntegrationTests that skip themselves, and where.
NEED_ITS_PID_NAMESPACE = {"sharesPIDNamespace()", "scopeLifecycle()", "stopScope()", "reconnectsAfterDaemonReexec()",
                          "callsDuringDaemonReexec()", "concurrentCalls()"}
NEED_ANOTHER_PID_NAMESPACE = {"doesNotSharePIDNamespace()"}
NEED_A_DIRECT_CONNECTION = {"reconnectsAfterDaemonReexec()", "callsDuringDaemonReexec()"}


def problem() -> str | None:
    chosen = os.environ.get("GLUSTERFS_CSI_BIN")
    if chosen and Path(chosen).resolve() != DEBUG_BINARY.resolve():
        return (f"the Swift SystemdBus suite runs once, with the debug build's test bundle, and GLUSTERFS_CSI_BIN "
                f"is {chosen}: scripts/test's second end-to-end run (on the release binary) leaves it out")
    if not BUNDLE.exists():
        return f"{BUNDLE} does not exist: run 'swift build --build-tests' first"
    return rh.systemd_problem()


reason = problem()
pytestmark = pytest.mark.skipif(reason is not None, reason=reason or "")


@pytest.fixture(scope="module")
def machine():
    """One systemd machine for every run; powered off, its cgroups removed, at the end."""
    workdir = Path(tempfile.mkdtemp(prefix="gcsi-sdbus-", dir="/var/lib"))
    machine = rh.SystemdMachine(workdir)
    try:
        machine.start()
    except RuntimeError as error:
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.skip(f"systemd does not start in a namespace here: {error}")
    if not machine.path(BUNDLE).exists():  # say the repository is under /tmp: private in there
        machine.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.skip(f"{BUNDLE} is not visible inside the systemd machine (/tmp, /var/tmp and /run are private)")
    yield machine
    problems = machine.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    assert not problems, f"the systemd machine left cgroups behind: {problems}"


def run_suite(machine: rh.SystemdMachine, socket: str, own_pid_namespace: bool, report: Path) -> tuple:
    """Runs SystemdIntegrationTests in the machine; (exit status, output, passed, failed, skipped)."""
    argv = ["env", "NO_COLOR=1", "GLUSTERFS_CSI_TEST_SYSTEMD=1", f"GLUSTERFS_CSI_TEST_SYSTEMD_SOCKET={socket}",
            str(BUNDLE), "--testing-library", "swift-testing", "--filter", "SystemdIntegrationTests",
            "--xunit-output", str(report)]
    if own_pid_namespace:
        argv = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--", *argv]
    try:
        result = subprocess.run(machine.wrap(argv), capture_output=True, text=True, timeout=RUN_TIMEOUT,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as timeout:
        output = timeout.stdout.decode(errors="replace") if isinstance(timeout.stdout, bytes) else timeout.stdout
        pytest.fail(f"the suite did not finish within {RUN_TIMEOUT} s:\n{(output or '')[-6000:]}")
    output = (result.stdout + result.stderr)[-6000:]
    passed, failed, skipped = set(), set(), set()
    if report.exists():
        for case in ElementTree.parse(report).iter("testcase"):
            name = case.get("name")
            if case.find("skipped") is not None:
                skipped.add(name)
            elif case.find("failure") is not None or case.find("error") is not None:
                failed.add(name)
            else:
                passed.add(name)
    return result.returncode, output, passed, failed, skipped


@pytest.mark.parametrize("socket", [PRIVATE_SOCKET, SYSTEM_BUS_SOCKET], ids=["private socket", "system bus"])
@pytest.mark.parametrize("own_pid_namespace", [False, True], ids=["hostPID", "own PID namespace"])
def test_the_swift_systemd_bus_suite_passes_against_a_real_systemd(machine, socket, own_pid_namespace):
    if socket == SYSTEM_BUS_SOCKET and not machine.path(SYSTEM_BUS_SOCKET).exists():
        pytest.skip(f"no D-Bus system bus in the systemd machine ({SYSTEM_BUS_SOCKET}): dbus is not installed")
    report = machine.workdir / f"xunit-{Path(socket).name}-{'own' if own_pid_namespace else 'host'}.xml"
    started = time.monotonic()
    status, output, passed, failed, skipped = run_suite(machine, socket, own_pid_namespace, report)
    seconds = time.monotonic() - started

    assert status == 0 and not failed, f"the Swift suite failed ({status}; {sorted(failed)}):\n{output}"
    assert passed, f"the Swift suite ran no test (filter or bundle wrong?):\n{output}"
    expected_skips = NEED_ITS_PID_NAMESPACE if own_pid_namespace else NEED_ANOTHER_PID_NAMESPACE
    if socket == SYSTEM_BUS_SOCKET:
        expected_skips = expected_skips | NEED_A_DIRECT_CONNECTION
    unexpected = skipped - expected_skips
    assert not unexpected, \
        f"tests skipped that should run here (no connection to {socket}?): {sorted(unexpected)}\n{output}"
    print(f"\n{socket}, {'own PID namespace' if own_pid_namespace else 'hostPID'}: {len(passed)} Swift tests "
          f"passed in {seconds:.1f} s ({', '.join(sorted(passed))}); {len(skipped)} skipped here")
