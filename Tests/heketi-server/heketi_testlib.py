"""Helpers for the Heketi test server's tests -- TEST SUPPORT ONLY.

An independent JWT minter (the server's verifier is not reused, so the two cannot
share a bug), a process wrapper that starts the server on a free loopback port and
talks HTTP to it without following redirects, and small gluster helpers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVER = HERE / "heketi_server.py"
ADMIN_KEY = "admin-secret-" + secrets.token_hex(8)
USER_KEY = "user-secret-" + secrets.token_hex(8)
KIB_PER_GIB = 1024 * 1024


# --------------------------------------------------------------------------- JWT (independent)

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(method: str, path: str, *, iss="admin", key=None, alg="HS256", exp_in=60, iat_in=0,
         claims=None, drop=()):
    """Mint a Heketi JWT the way the official client does (qsh = sha256 of METHOD&PATH)."""
    key = key if key is not None else (ADMIN_KEY if iss == "admin" else USER_KEY)
    now = int(time.time())
    body = {"iss": iss, "iat": now + iat_in, "exp": now + exp_in,
            "qsh": hashlib.sha256(f"{method}&{path}".encode()).hexdigest()}
    body.update(claims or {})
    for name in drop:
        body.pop(name, None)
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64url(json.dumps(body).encode())
    if alg == "none":
        return f"{header}.{payload}."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(key.encode(), f"{header}.{payload}".encode(), digest).digest()
    return f"{header}.{payload}.{b64url(sig)}"


# --------------------------------------------------------------------------- server process

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"<{self.status} {self.body[:200]!r}>"


class HeketiServer:
    """One server process; stopped (and its volumes removed) by the fixture even on failure."""

    def __init__(self, tmp: Path, *extra: str, state_file: Path | None = None, env_keys=True):
        self.tmp = tmp
        self.extra = list(extra)
        self.state_file = state_file
        self.env_keys = env_keys
        self.proc = None
        self.port = None
        self.log_path = tmp / f"server-{secrets.token_hex(3)}.log"

    def start(self, *more: str, timeout=20):
        port_file = self.tmp / f"port-{secrets.token_hex(4)}"
        args = [sys.executable, str(SERVER), "--listen", "127.0.0.1:0", "--port-file", str(port_file),
                *self.extra, *more]
        if self.state_file:
            args += ["--state-file", str(self.state_file)]
        env = dict(os.environ)
        if self.env_keys:
            env.update(HEKETI_ADMIN_KEY=ADMIN_KEY, HEKETI_USER_KEY=USER_KEY)
        self.log_file = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(args, stdout=self.log_file, stderr=self.log_file, env=env,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_file.exists() and port_file.read_text().strip():
                self.port = int(port_file.read_text())
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc:
            self.log_file.close()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- HTTP

    def request(self, method, path, body=None, *, token=None, auth="admin", headers=None, raw=None,
                timeout=30) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        hdrs = dict(headers or {})
        if token is None and auth:
            token = mint(method, path.split("?")[0], iss=auth)
        if token:
            hdrs.setdefault("Authorization", f"Bearer {token}")
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def test_api(self, method, path, body=None) -> Response:
        return self.request(method, path, body, auth=None)

    def faults(self, **faults):
        r = self.test_api("POST", "/_test/faults", faults)
        assert r.status == 200, r
        return r.json()

    def wait(self, queue_location, timeout=180) -> Response:
        """Poll a queue entry until it is no longer pending; return the final answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.request("GET", queue_location)
            if not (r.status == 200 and r.header("X-Pending") == "true"):
                return r
            time.sleep(0.02)
        raise AssertionError(f"{queue_location} still pending after {timeout}s")

    def create(self, body, timeout=180) -> str:
        r = self.request("POST", "/volumes", body)
        assert r.status == 202, r
        done = self.wait(r.header("Location"), timeout)
        assert done.status == 303, done
        return done.header("Location").rsplit("/", 1)[1]

    def volume(self, vid) -> dict:
        r = self.request("GET", f"/volumes/{vid}")
        assert r.status == 200, r
        return r.json()

    def devices(self) -> list[dict]:
        cid = self.request("GET", "/clusters").json()["clusters"][0]
        out = []
        for nid in self.request("GET", f"/clusters/{cid}").json()["nodes"]:
            out += self.request("GET", f"/nodes/{nid}").json()["devices"]
        return out

    def free_kib(self) -> int:
        return sum(d["storage"]["free"] for d in self.devices())


def space_needed(brick_kib, factor=1.0):
    """Heketi's device cost of a brick: thin pool plus 0.5 % metadata, both aligned to 4 MiB."""
    def align(v):
        return v + (-v % 4096)
    tp = align(int(brick_kib * factor))
    return tp + align(int(tp * 0.005))


def glusterd_problem() -> str | None:
    """Why the gluster-mode tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "gluster mode needs root (mount, chown, brick xattrs)"
    if shutil.which("gluster") is None:
        return "the gluster CLI is not installed (apt-get install glusterfs-server glusterfs-client)"
    try:
        proc = subprocess.run(["gluster", "--mode=script", "pool", "list"], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "glusterd did not answer within 30 s"
    if proc.returncode != 0:
        return f"glusterd is not running ({(proc.stderr or proc.stdout).strip()}); run scripts/start-glusterd"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing: cannot mount glusterfs"
    return None



def run(*args, timeout=60, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=check,
                          stdin=subprocess.DEVNULL)


def gluster_volume_exists(name: str) -> bool:
    return run("gluster", "--mode=script", "volume", "info", name, check=False).returncode == 0
