"""The Heketi-compatible test server (Tests/heketi-server, mock mode) as the benches run it, and the
direct Heketi clients (bench/lib/heketi_direct.py) as worker processes."""

import http.client
import json
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import csibench as cb

LIB = Path(__file__).resolve().parent


class Heketi:
    """The test server (mock mode) on a free loopback port, through bench/lib/heketi_bench_server.py."""

    def __init__(self, workdir: Path, key: str, stock: bool, device_size_gib: int):
        port_file = workdir / "heketi.port"
        self.log_path = workdir / "heketi.log"
        # Two clusters of three nodes: Heketi allows 1,000 volumes per cluster, so with 1,000
        # existing volumes new ones need a second cluster (Heketi tries the clusters in turn).
        topology = workdir / "topology.json"
        topology.write_text(json.dumps({"clusters": [
            {"nodes": [{"node": {"hostnames": {"manage": [f"127.0.0.{n}"], "storage": [f"127.0.0.{n}"]}, "zone": 1},
                        "devices": [{"name": "/dev/vdb", "size_gib": device_size_gib}]}
                       for n in range(first, first + 3)]}
            for first in (2, 5)]}))
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        env = dict(os.environ, HEKETI_ADMIN_KEY=key, HEKETI_USER_KEY=secrets.token_hex(16))
        args = [sys.executable, str(LIB / "heketi_bench_server.py"), "--listen", "127.0.0.1:0",
                "--port-file", str(port_file), "--topology", str(topology)]
        if stock:
            args.append("--stock")
        self.process = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the Heketi test server did not start:\n{self.log_path.read_text()}")
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        self.url = f"http://127.0.0.1:{self.port}"

    def test_api(self, method: str, path: str, body=None) -> dict:
        """The unauthenticated /_test/ API (not counted as Heketi requests)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                sys.exit(f"{method} {path} answered {response.status}: {payload[:300]!r}")
            return json.loads(payload)
        finally:
            conn.close()

    def reset_counts(self):
        self.test_api("POST", "/_test/reset", {"volumes": False})

    def counts(self) -> Counter:
        return Counter(self.test_api("GET", "/_test/requests")["counts"])

    def volume_count(self) -> int:
        state = self.test_api("GET", "/_test/state")
        volumes = state.get("volumes", {})
        return len(volumes)

    def cpu_seconds(self) -> float:
        return cb.process_cpu_seconds(self.process.pid)

    def stop(self):
        if self.process.poll() is None:
            try:
                self.test_api("POST", "/_test/reset", {"volumes": True})
            except (OSError, SystemExit):
                pass
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()


class DirectWorkers:
    """N processes of bench/lib/heketi_direct.py, each one direct Heketi client (no shared GIL).
    (bench/controller-heketi has its own copy of this class.)"""

    def __init__(self, count: int, port: int, key: str):
        env = dict(os.environ, BENCH_HEKETI_KEY=key)
        self.processes = [
            subprocess.Popen([sys.executable, str(LIB / "heketi_direct.py"), "--port", str(port)], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            for _ in range(count)
        ]

    def run(self, commands: list[dict]) -> tuple[list[dict], float]:
        """Sends one command to each of the first len(commands) workers at once; returns the
        replies and the wall time from the first send to the last reply, in seconds."""
        workers = self.processes[:len(commands)]
        started = time.perf_counter()
        for process, command in zip(workers, commands):
            process.stdin.write(json.dumps(command) + "\n")
            process.stdin.flush()
        replies = []
        for process in workers:
            line = process.stdout.readline()
            if not line:
                sys.exit("a direct Heketi worker died")
            replies.append(json.loads(line))
        elapsed = time.perf_counter() - started
        for reply in replies:
            if "error" in reply:
                sys.exit(f"direct Heketi client failed: {reply['error']}")
        return replies, elapsed

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                try:
                    process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                    process.stdin.close()
                except OSError:
                    pass
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
