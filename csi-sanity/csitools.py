"""Shared helpers for csi-sanity/: the conformance suite, the demo client and csi-sanity/run.

Independent of the driver's code on purpose: gRPC stubs are generated from proto/csi.proto at run
time with grpcio-tools, Heketi tokens are minted here (HS256, as Heketi's own client does), and the
mount table is read straight from /proc/self/mountinfo.

Also a small command line for csi-sanity/run (see `main`):

    csitools.py wait-ready SOCKET [SECONDS]       wait until a CSI driver answers Probe there
    csitools.py leftovers WORKDIR BRICKROOT URL KEYFILE
                                                  print what the run left behind; exit 1 if anything
    csitools.py reset-heketi URL KEYFILE          test server only: delete all its volumes
    csitools.py sweep WORKDIR BRICKROOT           unmount and delete what is left (teardown); exit 1
                                                  if something could not be removed
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GIB = 1 << 30

_stubs = None


def stubs():
    """(csi_pb2, csi_pb2_grpc), generated once per process from proto/csi.proto into a temp dir."""
    global _stubs
    if _stubs is None:
        import grpc_tools
        from grpc_tools import protoc

        out = Path(tempfile.mkdtemp(prefix="csi-stubs-"))
        include = Path(grpc_tools.__file__).parent / "_proto"
        status = protoc.main([
            "protoc", f"-I{REPO / 'proto'}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
            str(REPO / "proto/csi.proto"),
        ])
        if status != 0:
            raise RuntimeError("protoc failed on proto/csi.proto")
        sys.path.insert(0, str(out))
        import csi_pb2
        import csi_pb2_grpc

        _stubs = (csi_pb2, csi_pb2_grpc)
    return _stubs


def channel(socket: str | Path):
    import grpc

    return grpc.insecure_channel(f"unix://{socket}")


def wait_ready(socket: str | Path, timeout: float = 30.0, process=None) -> None:
    """Waits until the driver on `socket` answers Probe; raises with the reason if it does not."""
    import grpc

    pb, rpc = stubs()
    deadline = time.monotonic() + timeout
    last = "the socket does not exist yet"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the driver exited with status {process.returncode}")
        if Path(socket).exists():
            ch = channel(socket)
            try:
                rpc.IdentityStub(ch).Probe(pb.ProbeRequest(), timeout=2)
                return
            except grpc.RpcError as error:
                last = f"Probe failed: {error.code().name} {error.details()}"
            finally:
                ch.close()
        time.sleep(0.05)
    raise RuntimeError(f"no CSI driver answered on {socket} within {timeout:.0f} s ({last})")


# --------------------------------------------------------------------------------------------- Heketi


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def heketi_token(method: str, path: str, key: str, user: str = "admin") -> str:
    """A Heketi JWT: HS256 over iss, iat, exp and qsh = sha256("METHOD&path")."""
    now = int(time.time())
    claims = {"iss": user, "iat": now, "exp": now + 60,
              "qsh": hashlib.sha256(f"{method}&{path}".encode()).hexdigest()}
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(claims).encode())
    signature = hmac.new(key.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


class Heketi:
    """Read-only view of a Heketi (or the Heketi-compatible test server) over its REST API."""

    def __init__(self, url: str, key: str, user: str = "admin"):
        parsed = urllib.parse.urlparse(url)
        self.url = url.rstrip("/")
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.key, self.user = key, user

    def request(self, method: str, path: str, body=None, auth: bool = True):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        headers = {}
        if auth:
            headers["Authorization"] = "Bearer " + heketi_token(method, path.split("?")[0], self.key, self.user)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def get(self, path: str):
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"Heketi GET {path} answered {status}: {body[:200]!r}")
        return json.loads(body)

    def volume_ids(self) -> list[str]:
        return self.get("/volumes")["volumes"]

    def volume(self, heketi_id: str) -> dict | None:
        status, body = self.request("GET", f"/volumes/{heketi_id}")
        if status == 404:
            return None
        if status != 200:
            raise RuntimeError(f"Heketi GET /volumes/{heketi_id} answered {status}: {body[:200]!r}")
        return json.loads(body)

    def reset_test_server(self) -> None:
        """Heketi test server only: deletes every volume (real gluster volumes too)."""
        status, body = self.request("POST", "/_test/reset", {"volumes": True}, auth=False)
        if status != 200:
            raise RuntimeError(f"POST /_test/reset answered {status}: {body[:200]!r}")


# ------------------------------------------------------------------------------------- mounts, gluster


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[dict]:
    """The mount table of this process: mount point, fs type, source and options per entry."""
    table = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            table.append({"point": _unescape(fields[4]), "options": fields[5], "fstype": tail[0],
                          "source": _unescape(tail[1]) if len(tail) > 1 else "", "device": fields[2]})
    return table


def mounts_under(path: str | Path) -> list[dict]:
    prefix = str(path).rstrip("/")
    return [m for m in mounts() if m["point"] == prefix or m["point"].startswith(prefix + "/")]


def gluster(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["gluster", "--mode=script", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def gluster_volumes() -> list[str]:
    result = gluster("volume", "list")
    if result.returncode != 0:
        if "No volumes present" in result.stdout + result.stderr:
            return []
        raise RuntimeError(f"gluster volume list failed: {(result.stderr or result.stdout).strip()}")
    return [line.strip() for line in result.stdout.splitlines() if line.strip() and "No volumes" not in line]


def gluster_bricks(volume: str) -> list[str]:
    """Brick paths ("host:/path") of a gluster volume; empty when it does not exist."""
    result = gluster("volume", "info", volume)
    if result.returncode != 0:
        return []
    return [line.split(":", 1)[1].strip() for line in result.stdout.splitlines()
            if re.match(r"^Brick\d+:", line)]


def gluster_volumes_under(brick_root: str | Path) -> list[str]:
    """Gluster volumes with a brick under `brick_root`: the ones a run of ours created."""
    root = str(brick_root).rstrip("/") + "/"
    return [v for v in gluster_volumes() if any(b.split(":", 1)[-1].startswith(root) for b in gluster_bricks(v))]


def client_processes(pattern: str) -> list[tuple[int, str]]:
    """(pid, command line) of glusterfs client processes whose command line contains `pattern`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if cmdline.startswith(("/usr/sbin/glusterfs ", "glusterfs ")) and pattern in cmdline:
            found.append((int(entry.name), cmdline))
    return found


# --------------------------------------------------------------------------------------------- CLI


def _say(text: str, error: bool = False) -> None:
    """Prints, but never fails: a teardown must go on when its terminal or pipe (tee) is gone."""
    stream = sys.stderr if error else sys.stdout
    try:
        print(text, file=stream, flush=True)
    except OSError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())


def _leftovers(work: str, brick_root: str, url: str, key_file: str) -> list[str]:
    problems = []
    try:
        key = Path(key_file).read_text().strip()
        volumes = Heketi(url, key).volume_ids()
        if volumes:
            problems.append(f"Heketi still has {len(volumes)} volume(s): {', '.join(volumes)}")
    except (OSError, RuntimeError) as error:
        problems.append(f"cannot ask Heketi for its volumes: {error}")
    try:
        volumes = gluster_volumes_under(brick_root)
        if volumes:
            problems.append(f"gluster still has volume(s) on our bricks: {', '.join(volumes)}")
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
        problems.append(f"cannot list gluster volumes: {error}")
    points = [m["point"] for m in mounts_under(work)]
    if points:
        problems.append(f"still mounted: {', '.join(points)}")
    clients = client_processes(work)
    if clients:
        problems.append(f"glusterfs clients still running: {', '.join(str(pid) for pid, _ in clients)}")
    return problems


def _sweep(work: str, brick_root: str) -> int:
    """Last-resort teardown: lazy-unmount everything under `work` (deepest first), stop the glusterfs
    clients whose command line names it, and delete gluster volumes whose bricks are under
    `brick_root`. Returns 1 when something is still there afterwards."""
    for point in sorted((m["point"] for m in mounts_under(work)), key=len, reverse=True):
        _say(f"    sweep: unmounting {point}")
        subprocess.run(["umount", "-l", point], capture_output=True)
    for volume in gluster_volumes_under(brick_root):
        _say(f"    sweep: deleting gluster volume {volume}")
        gluster("volume", "stop", volume, "force")
        gluster("volume", "delete", volume)
    deadline = time.monotonic() + 10
    while client_processes(work) and time.monotonic() < deadline:
        time.sleep(0.2)  # a lazily unmounted client exits on its own once detached
    for pid, _ in client_processes(work):
        _say(f"    sweep: stopping glusterfs client {pid}")
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
    remaining = [m["point"] for m in mounts_under(work)] + gluster_volumes_under(brick_root)
    for thing in remaining:
        _say(f"    sweep: could not remove {thing}", error=True)
    return 1 if remaining else 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "wait-ready":
        try:
            wait_ready(argv[1], float(argv[2]) if len(argv) > 2 else 30.0)
        except RuntimeError as error:
            print(f"wait-ready: {error}", file=sys.stderr)
            return 1
        return 0
    if len(argv) == 5 and argv[0] == "leftovers":
        problems = _leftovers(*argv[1:])
        for problem in problems:
            print(f"  left behind: {problem}")
        return 1 if problems else 0
    if len(argv) == 3 and argv[0] == "reset-heketi":
        try:
            Heketi(argv[1], Path(argv[2]).read_text().strip()).reset_test_server()
        except (OSError, RuntimeError) as error:
            _say(f"reset-heketi: {error}", error=True)
            return 1
        return 0
    if len(argv) == 3 and argv[0] == "sweep":
        return _sweep(*argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
