#!/usr/bin/env python3
"""The direct side of bench/controller-heketi and bench/snapshot: Heketi volume create/delete and
clone sent straight to the Heketi-compatible test server with the best possible polling, and a
worker process that runs them on command.

Costs are kept the same as the driver's HTTP client where they are the client's business: one
kept-alive connection with TCP_NODELAY (libcurl's default), a fresh HS256 JWT minted for every
request (heketi_testlib.mint, qsh over METHOD&PATH), a JSON body encoded per request. Polling is
the best possible: the queue is asked again at once, with no sleep, until it answers.

Worker protocol (one JSON object per line; the key comes from the environment, never argv):

    BENCH_HEKETI_KEY=... heketi_direct.py --port P
    -> {"op": "pairs", "prefix": "d1-", "count": 10}   <- {"create_ms": [...], "delete_ms": [...], ...}
    -> {"op": "create", "prefix": "pre-", "count": 125}  <- {"ids": [...], ...}
    -> {"op": "get", "path": "/volumes", "count": 100}  <- {"get_ms": [...], ...}
    -> {"op": "clones", "source": ID, "prefix": "d1-", "count": 10, "reads": false}
                                                        <- {"ids": [...], "clone_ms": [...], "cpu_s": ...}
    -> {"op": "deletes", "ids": [...], "reads": false}  <- {"delete_ms": [...], "cpu_s": ...}
    -> {"op": "quit"}

"reads": true adds, before each clone, the reads the controller makes before it (GET /volumes and
GET /volumes/<source>), and before each delete its GET /volumes/<id>: the driver's Heketi traffic
without the driver.
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

    def clone(self, source_id: str, name: str) -> str:
        """POST /volumes/{id}/clone {"name": ...} → poll → GET the clone, as the driver's
        HeketiClient.cloneVolume does. Returns the clone's ID."""
        status, location, _, text = self.request("POST", f"/volumes/{source_id}/clone", {"name": name})
        if status != 202:
            raise HeketiFailure(f"clone {source_id} as {name}: answered {status} {text[:200]!r}")
        volume_path = self._finish(location, 303, f"clone {source_id} as {name}")
        status, _, _, text = self.request("GET", volume_path)
        if status != 200:
            raise HeketiFailure(f"clone {source_id} as {name}: GET {volume_path} answered {status}")
        return json.loads(text)["id"]

    def read(self, path: str):
        """GET `path`, answer JSON-decoded; 200 required."""
        status, _, _, text = self.request("GET", path)
        if status != 200:
            raise HeketiFailure(f"GET {path} answered {status} {text[:200]!r}")
        return json.loads(text)


def snapshot_clone_name(csi_name: str, source_id: str) -> str:
    """A clone name of the shape the controller gives a snapshot's clone (HeketiSnapshotName,
    60 bytes): snap-<FNV-1a 64 of the CSI name, top 48 bits>-<Unix seconds, 9 hex>_<source ID>, so
    the direct request carries the same bytes as the driver's."""
    value = 0xCBF29CE484222325
    for byte in csi_name.encode():
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"snap-{value >> 16:012x}-{int(time.time()) & 0xFFFFFFFFF:09x}_{source_id}"


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


def run_clones(client: DirectHeketi, source_id: str, prefix: str, count: int, reads: bool) -> dict:
    """`count` clones of `source_id` one after the other, each with a new name; per clone time
    (ms) and the clone IDs. With `reads`, each clone is preceded by the controller's reads."""
    clock = time.perf_counter_ns
    ids, clone_ms = [], []
    cpu = time.process_time()
    for index in range(count):
        started = clock()
        if reads:
            client.read("/volumes")
            client.read(f"/volumes/{source_id}")
        ids.append(client.clone(source_id, snapshot_clone_name(f"{prefix}{index}", source_id)))
        clone_ms.append((clock() - started) / 1e6)
    return {"ids": ids, "clone_ms": clone_ms, "cpu_s": time.process_time() - cpu}


def run_deletes(client: DirectHeketi, ids: list[str], reads: bool) -> dict:
    """DELETE each of `ids` one after the other (with `reads`, after a GET of it, as the controller
    checks that it deletes a snapshot's clone); per delete time (ms)."""
    clock = time.perf_counter_ns
    delete_ms = []
    cpu = time.process_time()
    for volume_id in ids:
        started = clock()
        if reads:
            client.read(f"/volumes/{volume_id}")
        client.delete(volume_id)
        delete_ms.append((clock() - started) / 1e6)
    return {"delete_ms": delete_ms, "cpu_s": time.process_time() - cpu}


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
            elif command["op"] == "clones":
                reply = run_clones(client, command["source"], command["prefix"], command["count"],
                                   command.get("reads", False))
            elif command["op"] == "deletes":
                reply = run_deletes(client, command["ids"], command.get("reads", False))
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
