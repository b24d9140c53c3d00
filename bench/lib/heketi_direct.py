#!/usr/bin/env python3
"""The direct side of bench/controller-heketi: Heketi volume create/delete sent straight to the
Heketi-compatible test server with the best possible polling, and a worker process that runs
them on command.

Costs are kept the same as the driver's HTTP client where they are the client's business: one
kept-alive connection with TCP_NODELAY (libcurl's default), a fresh HS256 JWT minted for every
request (heketi_testlib.mint, qsh over METHOD&PATH), a JSON body encoded per request. Polling is
the best possible: the queue is asked again at once, with no sleep, until it answers.

Worker protocol (one JSON object per line; the key comes from the environment, never argv):

    BENCH_HEKETI_KEY=... heketi_direct.py --port P
    -> {"op": "pairs", "prefix": "d1-", "count": 10}   <- {"create_ms": [...], "delete_ms": [...], ...}
    -> {"op": "create", "prefix": "pre-", "count": 125}  <- {"ids": [...], ...}
    -> {"op": "get", "path": "/volumes", "count": 100}  <- {"get_ms": [...], ...}
    -> {"op": "quit"}
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Tests/heketi-server"))

import heketi_testlib  # noqa: E402

OPERATION_TIMEOUT = 60.0  # seconds; every queue loop is bounded by it


class HeketiFailure(Exception):
    pass


class DirectHeketi:
    """One client: one kept-alive connection, a JWT per request, tight queue polling."""

    def __init__(self, port: int, key: str):
        self.port = port
        self.key = key
        self.conn: http.client.HTTPConnection | None = None
        self.requests = 0
        self.polls = 0
        self.next_gid = 2000

    def _connect(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as libcurl does
        self.conn = conn

    def _exchange(self, method: str, path: str, data: bytes | None, headers: dict):
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        return response.status, response.getheader("Location"), response.getheader("X-Pending"), response.read()

    def request(self, method: str, path: str, body=None):
        """One exchange with a fresh token. Returns (status, Location, X-Pending, body)."""
        token = heketi_testlib.mint(method, path, key=self.key)
        headers = {"Accept": "application/json", "Authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
            headers["Content-Type"] = "application/json"
        if self.conn is None:
            self._connect()
        self.requests += 1
        try:
            return self._exchange(method, path, data, headers)
        except (http.client.HTTPException, OSError):
            # The server closed the kept-alive connection: reconnect once, as libcurl does.
            self.conn.close()
            self._connect()
            return self._exchange(method, path, data, headers)

    def _finish(self, queue: str, done_status: int, what: str):
        deadline = time.monotonic() + OPERATION_TIMEOUT
        while time.monotonic() < deadline:
            status, location, pending, body = self.request("GET", queue)
            self.polls += 1
            if status == 200 and pending == "true":
                continue  # the best possible polling: ask again at once
            if status == done_status:
                return location
            raise HeketiFailure(f"{what}: queue answered {status} {body[:200]!r}")
        raise HeketiFailure(f"{what}: still pending after {OPERATION_TIMEOUT} s")

    def create(self, name: str) -> str:
        """POST /volumes (as the driver encodes it) → poll → GET the volume. Returns its ID."""
        body = {"durability": {"replicate": {"replica": 3}, "type": "replicate"}, "gid": self.next_gid,
                "name": name, "size": 1}
        self.next_gid += 1
        status, location, _, text = self.request("POST", "/volumes", body)
        if status != 202:
            raise HeketiFailure(f"create {name}: POST /volumes answered {status} {text[:200]!r}")
        volume_path = self._finish(location, 303, f"create {name}")
        status, _, _, text = self.request("GET", volume_path)
        if status != 200:
            raise HeketiFailure(f"create {name}: GET {volume_path} answered {status}")
        return json.loads(text)["id"]

    def delete(self, volume_id: str):
        """DELETE /volumes/{id} → poll until 204."""
        status, location, _, text = self.request("DELETE", f"/volumes/{volume_id}")
        if status != 202:
            raise HeketiFailure(f"delete {volume_id}: answered {status} {text[:200]!r}")
        self._finish(location, 204, f"delete {volume_id}")


def run_pairs(client: DirectHeketi, prefix: str, count: int) -> dict:
    clock = time.perf_counter_ns
    create_ms, delete_ms, pair_ms = [], [], []
    cpu = time.process_time()
    for index in range(count):
        started = clock()
        volume_id = client.create(f"{prefix}{index}")
        created = clock()
        client.delete(volume_id)
        done = clock()
        create_ms.append((created - started) / 1e6)
        delete_ms.append((done - created) / 1e6)
        pair_ms.append((done - started) / 1e6)
    return {"create_ms": create_ms, "delete_ms": delete_ms, "pair_ms": pair_ms,
            "cpu_s": time.process_time() - cpu}


def run_gets(client: DirectHeketi, path: str, count: int) -> list[float]:
    """`count` times GET `path`, body read and JSON-decoded (as the driver does with an answer)."""
    clock = time.perf_counter_ns
    out = []
    for _ in range(count):
        started = clock()
        status, _, _, body = client.request("GET", path)
        json.loads(body)
        out.append((clock() - started) / 1e6)
        if status != 200:
            raise HeketiFailure(f"GET {path} answered {status}")
    return out


def worker(port: int):
    key = os.environ.get("BENCH_HEKETI_KEY")
    if not key:
        sys.exit("heketi_direct.py: BENCH_HEKETI_KEY is not set")
    client = DirectHeketi(port, key)
    client._connect()  # connected before the first measured request, as the driver's pool is after warm-up
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["op"] == "quit":
                break
            if command["op"] == "pairs":
                reply = run_pairs(client, command["prefix"], command["count"])
            elif command["op"] == "get":
                reply = {"get_ms": run_gets(client, command["path"], command["count"])}
            elif command["op"] == "create":
                reply = {"ids": [client.create(f"{command['prefix']}{i}") for i in range(command["count"])]}
            else:
                reply = {"error": f"unknown op {command['op']!r}"}
        except Exception as error:  # reported to the parent, which stops the benchmark
            reply = {"error": f"{type(error).__name__}: {error}"}
        reply["polls"], reply["requests"] = client.polls, client.requests
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--port":
        sys.exit(__doc__)
    worker(int(sys.argv[2]))
