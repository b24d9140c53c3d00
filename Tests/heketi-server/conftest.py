"""Fixtures for the Heketi test server's tests: every server started is stopped, and
its volumes deleted and mounts undone, even when the test fails."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The helpers sit beside this file; make them importable whatever pytest's import mode.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from heketi_testlib import HeketiServer, gluster_volume_exists, run  # noqa: E402


@pytest.fixture
def start_server(tmp_path):
    servers = []

    def start(*args, state_file=None, env_keys=True):
        s = HeketiServer(tmp_path, *args, state_file=state_file, env_keys=env_keys)
        servers.append(s)
        return s.start()

    yield start
    for s in servers:
        if s.proc and s.proc.poll() is None:
            try:
                s.test_api("POST", "/_test/reset", {"volumes": True})
            except OSError:
                pass
        s.stop()


@pytest.fixture
def server(start_server):
    return start_server()


@pytest.fixture
def gluster_server(start_server, tmp_path):
    """A gluster-mode server; unmounts, deletes its volumes and stops, even when the test fails."""
    bricks = tmp_path / "bricks"
    mounts: list[Path] = []
    names: list[str] = []
    s = start_server("--mode", "gluster", "--brick-root", str(bricks), state_file=tmp_path / "state.json")
    s.mounts = mounts
    s.names = names
    yield s
    for m in mounts:
        if os.path.ismount(m):
            if run("umount", str(m), check=False).returncode != 0:
                run("umount", "-l", str(m), check=False)
    try:
        s.test_api("POST", "/_test/reset", {"volumes": True})
    except OSError:
        pass
    for name in names:  # last resort if the server could not clean up
        if gluster_volume_exists(name):
            run("gluster", "--mode=script", "volume", "stop", name, "force", check=False)
            run("gluster", "--mode=script", "volume", "delete", name, check=False)
