"""A fake of the Kubernetes API for PersistentVolumes -- TEST SUPPORT ONLY.

Just enough of kube-apiserver for the driver's GID annotation reconciler, with the semantics that
matter to a list-then-watch client, and controls to break it on purpose:

- HTTPS on 127.0.0.1 with a CA and a server certificate made by the `openssl` CLI at start; the
  service-account directory the driver reads (`token`, `ca.crt`, `namespace`) is laid out the way
  kubelet projects it (files are symlinks through `..data` to a timestamped directory, swapped
  atomically on rotation).
- Bearer tokens: anything but the current token answers 401.
- One global resourceVersion counter, as etcd's revision: every change to a PV takes the next
  one, and `bump_rv` stands for changes to other kinds that PV watches never see (but bookmarks
  carry).
- List with `limit` and `continue` (opaque tokens, consistent at the first page's
  resourceVersion; unknown or compacted away: 410 Expired).
- Watch from a resourceVersion: the events after it, as chunked newline-delimited JSON; a
  resourceVersion older than the compaction point answers 410, either as an HTTP status or as an
  ERROR event carrying a Status (`expired_as`); BOOKMARK events on a timer when
  `allowWatchBookmarks=true`; `timeoutSeconds` ends the stream cleanly.
- PATCH with `application/merge-patch+json` (RFC 7386) on one PV: a change takes a new
  resourceVersion and makes a MODIFIED event; a patch that changes nothing takes none, as in the
  real API server; a `metadata.resourceVersion` in the patch is a precondition (409 when stale).
- Controls: create/update/delete PVs, compact history, fail the next N requests of a kind (or all
  of them for a while) with a status (an injected 409 on a PATCH changes the PV first, as the
  change that a real conflict stands for), pause event delivery, close or expire every watch,
  rotate the token, and a record of every request (kind, query, headers, body, status, arrival
  time).

Everything a test looks at is recorded at arrival, before the answer, so times measure the
driver, not the fake.
"""

from __future__ import annotations

import bisect
import copy
import datetime
import http.server
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

GID_ANNOTATION = "pv.beta.kubernetes.io/gid"
DRIVER = "glusterfs.csi.heketi.io"
PV_PATH = "/api/v1/persistentvolumes"


# --------------------------------------------------------------------------- objects

def make_pv(name: str, *, driver: str | None = DRIVER, gid: str | None = "40000",
            annotations: dict[str, str] | None = None, attributes: dict[str, str] | None = None,
            in_tree: bool = False) -> dict:
    """A PersistentVolume as external-provisioner makes them for `driver` (volumeAttributes with
    `gid` unless None), or an in-tree glusterfs PV (`in_tree`), or one without a volume source
    of either kind (`driver=None`)."""
    spec: dict = {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteMany"],
        "persistentVolumeReclaimPolicy": "Delete",
        "storageClassName": "glusterfs",
        "volumeMode": "Filesystem",
    }
    if in_tree:
        spec["glusterfs"] = {"endpoints": f"glusterfs-dynamic-{name}", "path": f"vol_{name}"}
    elif driver is not None:
        volume_attributes = {"glusterVolume": f"vol_{name}", "glusterHosts": "192.0.2.11,192.0.2.12"}
        if gid is not None:
            volume_attributes["gid"] = gid
        volume_attributes.update(attributes or {})
        spec["csi"] = {"driver": driver, "volumeHandle": f"v1:{uuid.uuid4().hex}:http://heketi:8080",
                       "fsType": "glusterfs", "volumeAttributes": volume_attributes}
    metadata: dict = {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": driver or "none"}}
    metadata["annotations"].update(annotations or {})
    return {"metadata": metadata, "spec": spec, "status": {"phase": "Bound"}}


def status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    """A metav1.Status, as the API server answers errors."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
           409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
           500: "InternalError", 503: "ServiceUnavailable"}


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --------------------------------------------------------------------------- certificates

def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {result.stderr}")


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for IP 127.0.0.1 (and localhost) signed by it: (ca.crt,
    server.crt, server.key)."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=fake-kube-api-ca",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=directory)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver", cwd=directory)
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-set_serial", str(secrets.randbits(63)), "-days", "2", "-extfile", "server.ext", "-out", "server.crt",
             cwd=directory)
    return directory / "ca.crt", directory / "server.crt", directory / "server.key"


# --------------------------------------------------------------------------- records

class Request:
    """One request as it arrived: kind is list, watch, get, patch or other."""

    def __init__(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes,
                 kind: str, name: str | None):
        self.time = time.monotonic()
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.kind = kind
        self.name = name
        self.status: int | None = None
        self.response: dict | None = None  # the JSON answered (not for watches)
        self.watch_id: int | None = None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        query = "&".join(f"{k}={v}" for k, v in self.query.items())
        return f"<{self.method} {self.path}{'?' + query if query else ''} -> {self.status}>"


class Fault:
    """Answer requests of a kind with `code`: the next `count` of them, or all until `until`; for a
    watch `as_event` answers 200 and one ERROR event carrying the Status instead."""

    def __init__(self, code: int, count: int | None, until: float | None, message: str | None,
                 as_event: bool = False):
        self.code = code
        self.as_event = as_event
        self.count = count
        self.until = until
        self.message = message

    def take(self, now: float) -> bool:
        if self.until is not None:
            return now < self.until
        if self.count:
            self.count -= 1
            return True
        return False

    def spent(self, now: float) -> bool:
        return (self.until is not None and now >= self.until) or (self.until is None and not self.count)


class _Watch:
    def __init__(self, watch_id: int, since: int, bookmarks: bool):
        self.id = watch_id
        self.since = since
        self.bookmarks = bookmarks
        self.closed = False
        self.abrupt = False
        self.error: dict | None = None
        self.sent: list[dict] = []  # every event written, in order
        self.bookmarks_sent: list[int] = []
        self.connection: socket.socket | None = None


# --------------------------------------------------------------------------- the fake

class FakeKubeAPI:
    """The fake API server. Use as a context manager, or start() and stop()."""

    def __init__(self, *, bookmark_interval: float = 60.0, expired_as: str = "event", page_limit_cap: int = 500):
        self.directory = Path(tempfile.mkdtemp(prefix="fake-kube-"))
        self.sa_dir = self.directory / "serviceaccount"
        self.bookmark_interval = bookmark_interval
        assert expired_as in ("event", "status")
        self.expired_as = expired_as
        self.page_limit_cap = page_limit_cap
        self.max_watch_seconds: float | None = None
        self._lock = threading.Condition()
        self._rv = 100
        self._compacted = 0
        self._pvs: dict[str, dict] = {}
        self._history: list[tuple[int, str, dict]] = []
        self._continues: dict[str, tuple[int, list[dict], int]] = {}
        self._watches: dict[int, _Watch] = {}
        self._all_watches: list[_Watch] = []
        self._paused = False
        self._faults: dict[str, list[Fault]] = {}
        self._stopping = False
        self.requests: list[Request] = []
        self.created_at: dict[str, float] = {}
        self.connections = 0
        self._sockets: set[socket.socket] = set()
        self.token = ""
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle

    def start(self) -> "FakeKubeAPI":
        certs = self.directory / "pki"
        certs.mkdir()
        ca, cert, key = make_certificates(certs)
        self.ca_file = ca
        self.sa_dir.mkdir()
        self.rotate_token()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        fake = self

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):  # a client hanging up is not news
                pass

        class Handler(_Handler):
            api = fake
            tls = context

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-kube-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            for watch in self._watches.values():
                watch.closed = True
            self._lock.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def driver_env(self) -> dict[str, str]:
        """The variables kubelet injects into every container, pointing at this fake."""
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port)}

    def driver_args(self) -> list[str]:
        return ["--kube-service-account-dir", str(self.sa_dir)]

    def rotate_token(self, token: str | None = None) -> str:
        """A new token in the service-account directory, swapped in atomically as kubelet does
        (timestamped directory, `..data` symlink renamed over); from now on only it is accepted."""
        new = token or "fake-sa-token-" + secrets.token_urlsafe(24)
        stamp = "..%s_%s" % (datetime.datetime.now().strftime("%Y_%m_%d_%H_%M_%S.%f"), secrets.token_hex(3))
        payload = self.sa_dir / stamp
        payload.mkdir()
        (payload / "token").write_text(new)
        shutil.copyfile(self.ca_file, payload / "ca.crt")
        (payload / "namespace").write_text("glusterfs-csi")
        old = os.readlink(self.sa_dir / "..data") if (self.sa_dir / "..data").is_symlink() else None
        temporary = self.sa_dir / "..data_tmp"
        os.symlink(stamp, temporary)
        with self._lock:
            os.replace(temporary, self.sa_dir / "..data")
            self.token = new
        for name in ("token", "ca.crt", "namespace"):
            if not (self.sa_dir / name).is_symlink():
                os.symlink(f"..data/{name}", self.sa_dir / name)
        if old:
            shutil.rmtree(self.sa_dir / old, ignore_errors=True)
        return new

    # ----- the store (test side)

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _record(self, kind: str, obj: dict) -> None:
        self._history.append((int(obj["metadata"]["resourceVersion"]), kind, copy.deepcopy(obj)))
        self._lock.notify_all()

    def create_pv(self, pv: dict) -> dict:
        """Stores a PV (from make_pv) as the API server would: uid, creation time, the next
        resourceVersion; an ADDED event."""
        pv = copy.deepcopy(pv)
        meta = pv["metadata"]
        with self._lock:
            assert meta["name"] not in self._pvs, f"PV {meta['name']} exists"
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            meta["resourceVersion"] = str(self._next_rv())
            pv["kind"], pv["apiVersion"] = "PersistentVolume", "v1"
            self._pvs[meta["name"]] = pv
            self.created_at[meta["name"]] = time.monotonic()
            self._record("ADDED", pv)
            return copy.deepcopy(pv)

    def create_pvs(self, pvs: list[dict]) -> None:
        for pv in pvs:
            self.create_pv(pv)

    def update_pv(self, name: str, patch: dict) -> dict:
        """A change by someone else (a merge patch): the next resourceVersion, a MODIFIED event."""
        with self._lock:
            pv = merge_patch(self._pvs[name], patch)
            pv["metadata"]["resourceVersion"] = str(self._next_rv())
            self._pvs[name] = pv
            self._record("MODIFIED", pv)
            return copy.deepcopy(pv)

    def delete_pv(self, name: str) -> None:
        with self._lock:
            pv = self._pvs.pop(name)
            pv["metadata"]["resourceVersion"] = str(self._next_rv())
            self._record("DELETED", pv)

    def pv(self, name: str) -> dict | None:
        with self._lock:
            return copy.deepcopy(self._pvs.get(name))

    def annotation(self, name: str) -> str | None:
        pv = self.pv(name)
        return None if pv is None else (pv["metadata"].get("annotations") or {}).get(GID_ANNOTATION)

    def annotations(self) -> dict[str, str | None]:
        """Every PV's GID annotation (None when it has none), in one cheap pass."""
        with self._lock:
            return {name: (pv["metadata"].get("annotations") or {}).get(GID_ANNOTATION)
                    for name, pv in self._pvs.items()}

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def bump_rv(self, count: int = 1) -> int:
        """Changes to other kinds: the revision moves on, PV watches see nothing (but bookmarks)."""
        with self._lock:
            self._rv += count
            self._lock.notify_all()
            return self._rv

    def compact(self, rv: int | None = None) -> int:
        """Forgets history up to `rv` (default: now), as etcd compaction: watches from an older
        resourceVersion and continue tokens of older lists answer 410 from then on."""
        with self._lock:
            self._compacted = self._rv if rv is None else rv
            self._history = [event for event in self._history if event[0] > self._compacted]
            return self._compacted

    # ----- faults and watches (test side)

    def fail(self, kind: str, code: int, *, count: int | None = None, seconds: float | None = None,
             message: str | None = None, as_event: bool = False) -> None:
        """The next `count` requests of `kind` (list, watch, patch, get; `continue` for list pages
        after the first), or all of them for `seconds`, answer `code` with a Status (for watches
        with `as_event`: 200 and an ERROR event holding it, as the API server reports errors
        that happen once a watch has started)."""
        assert (count is None) != (seconds is None)
        until = time.monotonic() + seconds if seconds is not None else None
        with self._lock:
            self._faults.setdefault(kind, []).append(Fault(code, count, until, message, as_event))

    def fail_patches(self, count: int, code: int, message: str | None = None) -> None:
        self.fail("patch", code, count=count, message=message)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, kinds: list[str]) -> Fault | None:
        now = time.monotonic()
        with self._lock:
            for kind in kinds:
                faults = self._faults.get(kind, [])
                for fault in faults:
                    if fault.take(now):
                        return fault
                self._faults[kind] = [fault for fault in faults if not fault.spent(now)]
        return None

    def pause_watches(self) -> None:
        """Stops delivering events and bookmarks (they queue up in history) until resume."""
        with self._lock:
            self._paused = True

    def resume_watches(self) -> None:
        with self._lock:
            self._paused = False
            self._lock.notify_all()

    def close_watches(self, *, abrupt: bool = False) -> int:
        """Ends every open watch: cleanly (the last chunk, as on timeoutSeconds) or by resetting
        the connection. Events not delivered yet are not."""
        with self._lock:
            watches = list(self._watches.values())
            for watch in watches:
                watch.closed = True
                watch.abrupt = abrupt
            self._lock.notify_all()
        if abrupt:
            for watch in watches:
                if watch.connection is not None:
                    try:
                        watch.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        return len(watches)

    def expire_watches(self) -> int:
        """Every open watch gets an ERROR event with a 410 Status and ends, as when the watch
        cache has moved past it."""
        with self._lock:
            watches = list(self._watches.values())
            for watch in watches:
                watch.error = status(410, "Expired", f"too old resource version: {watch.since} ({self._compacted})")
                watch.closed = True
            self._lock.notify_all()
        return len(watches)

    @property
    def open_watches(self) -> int:
        with self._lock:
            return len(self._watches)

    def watches(self) -> list[_Watch]:
        with self._lock:
            return list(self._all_watches)

    # ----- the record (test side)

    def requests_of(self, kind: str | None = None, name: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if (kind is None or r.kind == kind) and (name is None or r.name == name)]

    def count(self, kind: str | None = None) -> int:
        return len(self.requests_of(kind))

    def patch_times(self) -> dict[str, list[float]]:
        """Arrival times of the PATCH requests, per PV name."""
        times: dict[str, list[float]] = {}
        for request in self.requests_of("patch"):
            times.setdefault(request.name, []).append(request.time)
        return times

    def wait_for(self, predicate, timeout: float, what: str = "condition", interval: float = 0.01):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; requests: {self.requests[-20:]}")
            time.sleep(interval)

    # ----- serving (handler side)

    def _list(self, query: dict[str, str]) -> tuple[int, dict]:
        token = query.get("continue")
        try:
            limit = int(query.get("limit", "0") or "0")
        except ValueError:
            return 400, status(400, "BadRequest", f"invalid limit {query.get('limit')!r}")
        limit = min(limit, self.page_limit_cap) if limit > 0 else 0
        with self._lock:
            if token:
                entry = self._continues.pop(token, None)
                if entry is None or entry[0] < self._compacted:
                    return 410, status(410, "Expired", "The provided continue parameter is too old to display a "
                                       "consistent list result. You can start a new list without the continue "
                                       "parameter.")
                rv, items, offset = entry
            else:
                rv = self._rv
                items = [copy.deepcopy(self._pvs[name]) for name in sorted(self._pvs)]
                offset = 0
            end = len(items) if not limit else min(len(items), offset + limit)
            page = items[offset:end]
            metadata: dict = {"resourceVersion": str(rv)}
            if end < len(items):
                next_token = secrets.token_urlsafe(18)
                self._continues[next_token] = (rv, items, end)
                metadata["continue"] = next_token
                metadata["remainingItemCount"] = len(items) - end
        for item in page:
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return 200, {"kind": "PersistentVolumeList", "apiVersion": "v1", "metadata": metadata, "items": page}

    def _patch(self, name: str, content_type: str, body: bytes) -> tuple[int, dict]:
        media = content_type.split(";")[0].strip().lower()
        if media != "application/merge-patch+json":
            return 415, status(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                               f"accepted media types include: application/merge-patch+json (got {content_type!r})")
        try:
            patch = json.loads(body)
        except ValueError as error:
            return 400, status(400, "BadRequest", f"error decoding patch: {error}")
        if not isinstance(patch, dict):
            return 400, status(400, "BadRequest", "a merge patch must be a JSON object")
        with self._lock:
            current = self._pvs.get(name)
            if current is None:
                return 404, status(404, "NotFound", f'persistentvolumes "{name}" not found',
                                   {"name": name, "kind": "persistentvolumes"})
            wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
            if wanted_rv is not None and wanted_rv != current["metadata"]["resourceVersion"]:
                return 409, self._conflict(name)
            updated = merge_patch(current, patch)
            updated["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            if updated != current:
                updated["metadata"]["resourceVersion"] = str(self._next_rv())
                self._pvs[name] = updated
                self._record("MODIFIED", updated)
            return 200, copy.deepcopy(updated)

    @staticmethod
    def _conflict(name: str) -> dict:
        return status(409, "Conflict", f'Operation cannot be fulfilled on persistentvolumes "{name}": the object has '
                      "been modified; please apply your changes to the latest version and try again",
                      {"name": name, "kind": "persistentvolumes"})

    def _open_watch(self, query: dict[str, str]) -> tuple[_Watch | None, list[dict], dict | None]:
        """A new watch and the events it starts with, or the 410 Status it must get."""
        raw = query.get("resourceVersion", "")
        with self._lock:
            initial: list[dict] = []
            if raw in ("", "0"):
                since = self._rv
                initial = [{"type": "ADDED", "object": copy.deepcopy(self._pvs[name])} for name in sorted(self._pvs)]
            else:
                try:
                    since = int(raw)
                except ValueError:
                    return None, [], status(400, "BadRequest", f"invalid resourceVersion {raw!r}")
                if since < self._compacted:
                    return None, [], status(410, "Expired", f"too old resource version: {since} ({self._compacted})")
            watch = _Watch(len(self._all_watches) + 1, since,
                           query.get("allowWatchBookmarks", "").lower() in ("true", "1"))
            self._all_watches.append(watch)
            self._watches[watch.id] = watch
            return watch, initial, None

    def _next_events(self, watch: _Watch, deadline: float, next_bookmark: float) -> tuple[list[dict], str | None]:
        """Blocks until there is something to write: (events, why the stream ends or None)."""
        with self._lock:
            while True:
                now = time.monotonic()
                if self._stopping or (watch.closed and watch.error is None and watch.abrupt):
                    return [], "closed"
                if watch.error is not None:
                    error = {"type": "ERROR", "object": watch.error}
                    return [error], "expired"
                if watch.closed:
                    return [], "closed"
                if now >= deadline:
                    return [], "timeout"
                if not self._paused:
                    start = bisect.bisect_right(self._history, watch.since, key=lambda event: event[0])
                    events = [{"type": kind, "object": copy.deepcopy(obj)} for _, kind, obj in self._history[start:]]
                    if events:
                        watch.since = int(events[-1]["object"]["metadata"]["resourceVersion"])
                        return events, None
                    if watch.bookmarks and now >= next_bookmark:
                        watch.since = self._rv
                        bookmark = {"type": "BOOKMARK", "object": {
                            "kind": "PersistentVolume", "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(self._rv), "creationTimestamp": None},
                            "spec": {}, "status": {}}}
                        watch.bookmarks_sent.append(self._rv)
                        return [bookmark], None
                wake = min(deadline, next_bookmark if watch.bookmarks else deadline) - now
                self._lock.wait(timeout=max(0.001, min(wake, 0.5)))

    def _close_watch(self, watch: _Watch) -> None:
        with self._lock:
            self._watches.pop(watch.id, None)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api: FakeKubeAPI
    tls: ssl.SSLContext

    def setup(self):
        # The TLS handshake happens here, in the connection's own thread, not in accept().
        with self.api._lock:
            self.api.connections += 1
        # Headers and body go out in separate writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (40 ms), which would count as the driver's latency.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = self.tls.wrap_socket(self.request, server_side=True)
        with self.api._lock:
            self.api._sockets.add(self.request)
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            with self.api._lock:
                self.api._sockets.discard(self.request)

    def log_message(self, format, *args):
        pass

    # ----- plumbing

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, record: Request, code: int, body: dict) -> None:
        record.status = code
        record.response = body
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _route(self) -> Request:
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        body = self._body()
        path = url.path.rstrip("/")
        name = None
        if path == PV_PATH and self.command == "GET":
            kind = "watch" if query.get("watch", "").lower() in ("true", "1") else "list"
        elif path.startswith(PV_PATH + "/") and "/" not in path[len(PV_PATH) + 1:]:
            name = urllib.parse.unquote(path[len(PV_PATH) + 1:])
            kind = {"GET": "get", "PATCH": "patch"}.get(self.command, "other")
        else:
            kind = "other"
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = Request(self.command, url.path, query, headers, body, kind, name)
        with self.api._lock:
            self.api.requests.append(record)
        return record

    def _handle(self):
        record = self._route()
        if self.headers.get("Authorization") != f"Bearer {self.api.token}":
            return self._send_json(record, 401, status(401, "Unauthorized", "Unauthorized"))
        kinds = [record.kind]
        if record.kind == "list" and record.query.get("continue"):
            kinds.insert(0, "continue")
        fault = self.api._take_fault(kinds)
        if fault is not None and fault.code == 409 and record.kind == "patch" and self.api.pv(record.name):
            # A real conflict means that someone changed the PV: so does this one (a MODIFIED event).
            change = {"metadata": {"annotations": {"fake-kube-api/conflict": str(time.time())}}}
            self.api.update_pv(record.name, change)
        if fault is not None:
            message = fault.message or self._default_message(record, fault.code)
            details = {"name": record.name, "kind": "persistentvolumes"} if record.name else None
            answer = status(fault.code, REASONS.get(fault.code, "Unknown"), message, details)
            if fault.as_event and record.kind == "watch":
                record.status = 200
                self._start_stream()
                self._chunk(json.dumps({"type": "ERROR", "object": answer}).encode() + b"\n")
                self._chunk(b"")
                return
            return self._send_json(record, fault.code, answer)
        if record.kind == "list":
            return self._send_json(record, *self.api._list(record.query))
        if record.kind == "watch":
            return self._watch(record)
        if record.kind == "get":
            pv = self.api.pv(record.name)
            if pv is None:
                return self._send_json(record, 404, status(404, "NotFound", f'persistentvolumes "{record.name}" '
                                                           "not found"))
            return self._send_json(record, 200, pv)
        if record.kind == "patch":
            return self._send_json(record, *self.api._patch(record.name, self.headers.get("Content-Type", ""),
                                                            record.body))
        return self._send_json(record, 404, status(404, "NotFound", "the server could not find the requested "
                                                   "resource"))

    @staticmethod
    def _default_message(record: Request, code: int) -> str:
        if code == 403:
            verb = {"list": "list", "watch": "watch", "get": "get", "patch": "patch"}.get(record.kind, "get")
            return (f'persistentvolumes{" " + json.dumps(record.name) if record.name else ""} is forbidden: User '
                    f'"system:serviceaccount:glusterfs-csi:glusterfs-csi-controller" cannot {verb} resource '
                    '"persistentvolumes" in API group "" at the cluster scope')
        if code == 409:
            return FakeKubeAPI._conflict(record.name or "")["message"]
        if code == 410:
            return "too old resource version"
        return f"injected {code} ({record.kind})"

    def _watch(self, record: Request):
        watch, initial, error = self.api._open_watch(record.query)
        if watch is None:
            if error["code"] != 410 or self.api.expired_as == "status":
                return self._send_json(record, error["code"], error)
            # As the API server does for an expired resourceVersion: 200, one ERROR event, the end.
            record.status = 200
            self._start_stream()
            self._chunk(json.dumps({"type": "ERROR", "object": error}).encode() + b"\n")
            self._chunk(b"")
            return
        record.status = 200
        record.watch_id = watch.id
        watch.connection = self.request
        try:
            timeout = float(record.query.get("timeoutSeconds") or 1800)
        except ValueError:
            timeout = 1800.0
        if self.api.max_watch_seconds is not None:
            timeout = min(timeout, self.api.max_watch_seconds)
        start = time.monotonic()
        deadline = start + timeout
        next_bookmark = start + self.api.bookmark_interval
        try:
            self._start_stream()
            for event in initial:
                self._send_event(watch, event)
            while True:
                events, end = self.api._next_events(watch, deadline, next_bookmark)
                for event in events:
                    self._send_event(watch, event)
                    if event["type"] == "BOOKMARK":
                        next_bookmark = time.monotonic() + self.api.bookmark_interval
                if end is not None:
                    if not watch.abrupt:
                        self._chunk(b"")
                    else:
                        self.close_connection = True
                    return
        except OSError:
            self.close_connection = True
        finally:
            self.api._close_watch(watch)

    def _start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

    def _send_event(self, watch: _Watch, event: dict):
        watch.sent.append(event)
        self._chunk(json.dumps(event).encode() + b"\n")

    do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = _handle
