#!/usr/bin/env python3
"""Heketi-compatible REST server for glusterfs-csi tests -- TEST SUPPORT ONLY, NOT PRODUCT.

Real Heketi cannot be installed on the test machines, so this server stands in
for it. It behaves the way shared/reference/heketi-api.md records the real
Heketi behaving (JWT auth, async queue, volume rules and error wording,
throttling, stale operations) and adds an unauthenticated, test-only
``/_test/`` API for fault injection and request counting. See README.md here.

Modes:
  mock     (default) no gluster; operations finish at once (plus op_delay_ms)
  gluster  creates REAL GlusterFS volumes on this machine, directory bricks
           under --brick-root, through the ``gluster`` CLI

Usage:
  HEKETI_ADMIN_KEY=... HEKETI_USER_KEY=... \\
    python3 heketi_server.py --listen 127.0.0.1:0 --port-file /tmp/port [--mode gluster ...]

Never run this in front of anything that matters: it exists to be broken on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import heketi_jwt  # noqa: E402
from heketi_executors import GlusterExecutor, MockExecutor, ExecError  # noqa: E402
from heketi_model import HeketiError, Store  # noqa: E402

MAX_BODY = 1024 * 1024  # Heketi reads at most 1 MiB of a request body
HEX = r"(?P<id>[A-Fa-f0-9]+)"


def _log(message: str):
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} heketi-test-server: {message}\n")
    sys.stderr.flush()


# Every route Heketi registers, in its order. The method matters for 405 answers
# (a known path with another method), so unimplemented routes are listed too.
HEKETI_ROUTES = [
    ("GET", f"/queue/{HEX}", "queue_status"),
    ("POST", "/clusters", None),
    ("POST", f"/clusters/{HEX}/flags", None),
    ("GET", f"/clusters/{HEX}", "cluster_info"),
    ("GET", "/clusters", "cluster_list"),
    ("DELETE", f"/clusters/{HEX}", None),
    ("POST", "/nodes", None),
    ("GET", f"/nodes/{HEX}", "node_info"),
    ("DELETE", f"/nodes/{HEX}", None),
    ("POST", f"/nodes/{HEX}/state", None),
    ("POST", f"/nodes/{HEX}/tags", None),
    ("POST", "/devices", None),
    ("GET", f"/devices/{HEX}", "device_info"),
    ("DELETE", f"/devices/{HEX}", None),
    ("POST", f"/devices/{HEX}/state", None),
    ("GET", f"/devices/{HEX}/resync", None),
    ("POST", f"/devices/{HEX}/tags", None),
    ("POST", "/volumes", "volume_create"),
    ("GET", f"/volumes/{HEX}", "volume_info"),
    ("POST", f"/volumes/{HEX}/expand", "volume_expand"),
    ("DELETE", f"/volumes/{HEX}", "volume_delete"),
    ("GET", "/volumes", "volume_list"),
    ("POST", f"/volumes/{HEX}/block-restriction", None),
    ("POST", f"/volumes/{HEX}/clone", "volume_clone"),
    ("POST", "/blockvolumes", None),
    ("GET", f"/blockvolumes/{HEX}", None),
    ("DELETE", f"/blockvolumes/{HEX}", None),
    ("GET", "/blockvolumes", "blockvolume_list"),
    ("POST", f"/blockvolumes/{HEX}/expand", None),
    ("POST", f"/bricks/to-evict/{HEX}", None),
    ("GET", "/backup/db", None),
    ("GET", "/db/dump", None),
    ("GET", "/db/check", None),
    ("GET", "/internal/logging", None),
    ("POST", "/internal/logging", None),
    ("GET", "/operations", "operations_info"),
    ("GET", "/operations/pending", "operations_pending"),
    ("GET", f"/operations/pending/{HEX}", "operation_details"),
    ("POST", "/operations/pending/cleanup", "operations_cleanup"),
    ("GET", "/internal/state/examine/gluster", None),
    ("GET", "/admin", "admin_state"),
    ("POST", "/admin", None),
]
# Heketi's router uses StrictSlash(true): "/volumes/" is redirected to "/volumes".
_COMPILED = [(m, re.compile(f"^{p}/?$"), re.sub(r"\(\?P<id>[^)]*\)", "{id}", p), h) for m, p, h in HEKETI_ROUTES]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like Go's server
    server_version = "heketi-test-server"
    sys_version = ""
    store: Store = None  # set by main()
    admin_key = b""
    user_key = b""

    def version_string(self):
        return self.server_version

    # Only our own log lines (without headers); silence the default ones.
    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        pass

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_PATCH(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    # --------------------------------------------------------------- plumbing

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)[:MAX_BODY]
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length)[:MAX_BODY] if length > 0 else b""

    def _send(self, status: int, body: bytes = b"", content_type: str | None = None, headers=None):
        self._status = status
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str):
        """Go's http.Error: text/plain, nosniff, message plus a newline."""
        self._send(status, (message + "\n").encode(), "text/plain; charset=utf-8",
                   {"X-Content-Type-Options": "nosniff"})

    def _json(self, obj, status: int = 200):
        body = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        self._send(status, body, "application/json; charset=UTF-8")

    def _redirect(self, status: int, location: str):
        """Go's http.Redirect: a short HTML body only for GET and HEAD."""
        if self.command in ("GET", "HEAD"):
            text = {301: "Moved Permanently", 303: "See Other"}.get(status, "")
            body = f'<a href="{location}">{text}</a>.\n\n'.encode()
            self._send(status, body, "text/html; charset=utf-8", {"Location": location})
        else:
            self._send(status, b"", None, {"Location": location})

    def _dispatch(self):
        started = time.monotonic()
        self._status = 0
        raw_path = self.path.split("?", 1)[0]
        path = urllib.parse.unquote(raw_path)  # Go's r.URL.Path is the decoded path
        body = self._read_body()
        try:
            if path.startswith("/_test/"):
                self._test_api(path, body)
            else:
                self._heketi(path, body)
        except HeketiError as err:
            self._error(err.status, err.message)
        except Exception as err:  # noqa: BLE001 -- like negroni's recovery: 500, logged
            _log(f"internal error on {self.command} {path}: {type(err).__name__}: {err}")
            if not self._status:
                self._error(500, "Internal Server Error")
        finally:
            elapsed = (time.monotonic() - started) * 1000
            _log(f"{self.command} {raw_path} -> {self._status} ({elapsed:.1f} ms)")

    # ------------------------------------------------------------ Heketi API

    def _heketi(self, path: str, body: bytes):
        store = self.store
        method = self.command
        route = self._route(method, path)
        template = route[1] if route else path
        with store.lock:
            store.requests[f"{method} {template}"] += 1
            delay = store.faults["response_delay_ms"]
        if delay:
            time.sleep(delay / 1000.0)

        # Outside Heketi's auth middleware: GET /hello and GET /metrics only.
        if method == "GET" and path == "/hello":
            self._send(200, b"Hello from Heketi", "text/plain; charset=UTF-8")
            return
        if method == "GET" and path == "/metrics":
            self._send(200, store.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")
            return

        try:
            heketi_jwt.authenticate(self.headers.get("Authorization"), method, path,
                                    self.admin_key, self.user_key)
        except heketi_jwt.AuthFailure as err:
            self._error(err.status, err.message)
            return

        if route is None:
            if any(rx.match(path) for _, rx, _, _ in _COMPILED):
                self._send(405)  # gorilla/mux: known path, other method, empty body
            else:
                self._error(404, "Invalid path or request")
            return
        match, template, handler = route
        if path != "/" and path.endswith("/") and not template.endswith("/"):
            query = self.path.split("?", 1)[1] if "?" in self.path else ""
            self._redirect(301, path[:-1] + (f"?{query}" if query else ""))
            return
        if handler is None:
            self._error(501, f"{method} {template} is not implemented by the heketi test server")
            return
        getattr(self, f"h_{handler}")(match.groupdict().get("id"), body)

    @staticmethod
    def _route(method: str, path: str):
        for m, rx, template, handler in _COMPILED:
            match = rx.match(path)
            if match and m == method:
                return match, template, handler
        return None

    def _accepted(self, qid: str):
        self._redirect(202, f"/queue/{qid}")

    def h_queue_status(self, qid, _body):
        status, value = self.store.queue_status(qid)
        if status == 200:
            self._send(200, b"", None, {"X-Pending": "true"})
        elif status == 303:
            self._redirect(303, value)
        elif status == 204:
            self._send(204)
        else:
            self._error(500, value)

    def h_volume_create(self, _id, body):
        self._accepted(self.store.create_volume(body))

    def h_volume_list(self, _id, _body):
        self._json(self.store.list_volumes())

    def h_volume_info(self, vid, _body):
        self._json(self.store.volume_info(vid))

    def h_volume_expand(self, vid, body):
        self._accepted(self.store.expand_volume(vid, body))

    def h_volume_clone(self, vid, body):
        self._accepted(self.store.clone_volume(vid, body))

    def h_volume_delete(self, vid, _body):
        self._accepted(self.store.delete_volume(vid))

    def h_cluster_list(self, _id, _body):
        self._json(self.store.list_clusters())

    def h_cluster_info(self, cid, _body):
        self._json(self.store.cluster_info(cid))

    def h_node_info(self, nid, _body):
        self._json(self.store.node_info(nid))

    def h_device_info(self, did, _body):
        self._json(self.store.device_info(did))

    def h_blockvolume_list(self, _id, _body):
        self._json({"blockvolumes": []})

    def h_operations_info(self, _id, _body):
        self._json(self.store.operations_info())

    def h_operations_pending(self, _id, _body):
        self._json(self.store.pending_operations())

    def h_operation_details(self, oid, _body):
        for op in self.store.pending_operations()["pendingoperations"]:
            if op["id"] == oid:
                self._json(dict(op, changes=[]))
                return
        self._error(404, f"Id not found: {oid}")

    def h_operations_cleanup(self, _id, body):
        self._accepted(self.store.cleanup_operations(body))

    def h_admin_state(self, _id, _body):
        self._json({"state": "normal"})

    # -------------------------------------------------------- test-only API

    def _test_api(self, path: str, body: bytes):
        store = self.store
        method = self.command
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            raise HeketiError(400, "body must be JSON") from None
        if not isinstance(payload, dict):
            raise HeketiError(400, "body must be a JSON object")
        if path == "/_test/faults" and method == "GET":
            self._json(store.set_faults({}))
        elif path == "/_test/faults" and method == "POST":
            self._json(store.set_faults(payload))
        elif path == "/_test/restart" and method == "POST":
            self._json(store.simulate_restart())
        elif path == "/_test/requests" and method == "GET":
            with store.lock:
                counts = dict(sorted(store.requests.items()))
            self._json({"counts": counts, "total": sum(counts.values())})
        elif path == "/_test/reset" and method == "POST":
            self._json(store.reset(bool(payload.get("volumes", False))))
        elif path == "/_test/state" and method == "GET":
            self._json(store.debug_state())
        else:
            raise HeketiError(404, "unknown test endpoint; see Tests/heketi-server/README.md")


def default_topology(nodes: int, device_size_gib: int) -> dict:
    """One cluster of ``nodes`` nodes with one device each; storage hosts 127.0.0.2, .3, ...

    Loopback addresses other than 127.0.0.1 are used because gluster refuses bricks on
    "localhost"/127.0.0.1 but accepts 127.0.0.x as local, so gluster mode can give every
    node its own storage address on this one machine.
    """
    return {"device_size_gib": device_size_gib, "clusters": [{"nodes": [
        {"node": {"hostnames": {"manage": [f"127.0.0.{i + 2}"], "storage": [f"127.0.0.{i + 2}"]}, "zone": 1},
         "devices": [{"name": "/dev/vdb", "size_gib": device_size_gib}]}
        for i in range(nodes)]}]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Heketi-compatible REST server for tests (test support only).")
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT; PORT 0 picks a free port")
    p.add_argument("--admin-key", default=None, help="admin JWT key (prefer env HEKETI_ADMIN_KEY)")
    p.add_argument("--user-key", default=None, help="user JWT key (prefer env HEKETI_USER_KEY)")
    p.add_argument("--state-file", default=None, help="JSON file keeping volumes across restarts")
    p.add_argument("--max-inflight", type=int, default=8, help="mutating operations in flight before 429")
    p.add_argument("--mode", choices=["mock", "gluster"], default="mock")
    p.add_argument("--brick-root", default="/var/tmp/heketi-test-server/bricks",
                   help="gluster mode: where directory bricks are made")
    p.add_argument("--topology", default=None, help="Heketi topology.json (devices may carry size_gib)")
    p.add_argument("--nodes", type=int, default=3, help="default topology: number of nodes")
    p.add_argument("--device-size-gib", type=int, default=100, help="default topology: size of each device")
    p.add_argument("--gluster-timeout", type=float, default=120.0, help="seconds allowed per gluster command")
    p.add_argument("--port-file", default=None, help="write the bound port here once listening")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    admin_key = args.admin_key or os.environ.get("HEKETI_ADMIN_KEY")
    user_key = args.user_key or os.environ.get("HEKETI_USER_KEY")
    if not admin_key or not user_key:
        _log("ERROR: both the admin and the user key are required "
             "(--admin-key/--user-key or HEKETI_ADMIN_KEY/HEKETI_USER_KEY)")
        return 2
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        _log(f"ERROR: --listen expects HOST:PORT, got '{args.listen}'")
        return 2

    if args.mode == "gluster":
        executor = GlusterExecutor(timeout=args.gluster_timeout, log=_log)
        try:
            executor.check_ready()
        except ExecError as err:
            _log(f"ERROR: gluster mode needs a running glusterd: {err}")
            return 3
        brick_root = os.path.abspath(args.brick_root)
        os.makedirs(brick_root, exist_ok=True)
    else:
        executor = MockExecutor()
        brick_root = "/var/lib/heketi/mounts"

    if args.topology:
        with open(args.topology, encoding="utf-8") as f:
            topology = json.load(f)
        topology.setdefault("device_size_gib", args.device_size_gib)
    else:
        topology = default_topology(args.nodes, args.device_size_gib)

    store = Store(executor, topology=topology, state_file=args.state_file, max_inflight=args.max_inflight,
                  brick_path_root=brick_root, log=_log)
    Handler.store = store
    Handler.admin_key = admin_key.encode()
    Handler.user_key = user_key.encode()

    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    bound = server.server_address[1]
    if args.port_file:
        tmp = f"{args.port_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{bound}\n")
        os.replace(tmp, args.port_file)
    _log(f"listening on {host}:{bound} (mode {args.mode}, max in-flight {args.max_inflight})")

    def stop(signum, _frame):
        _log(f"signal {signum}: shutting down")
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        store.shutdown()
        _log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
