"""Heketi's bookkeeping: topology, volumes, bricks, pending operations -- TEST SUPPORT ONLY.

The model behind the Heketi-compatible test server. It answers every request
the way shared/reference/heketi-api.md records the real Heketi answering, with
Heketi's own wording (checked against Heketi's Go source), and drives an
executor (mock or real gluster, see heketi_executors.py) for the slow part of
each operation.

Units follow Heketi: volume sizes in GiB, brick and device sizes in KiB.
All state is guarded by one lock; executor work runs outside it on a thread per
operation, like Heketi's goroutine per async operation.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import threading
import time
from collections import Counter

import heketi_gojson as gojson
from heketi_executors import ExecError

KIB_PER_GIB = 1024 * 1024
BRICK_MIN_SIZE = 1 * KIB_PER_GIB
BRICK_MAX_SIZE = 4 * 1024 * KIB_PER_GIB
BRICK_MAX_NUM = 32
EXTENT_SIZE = 4096  # KiB, LVM extent used to align thin pools
MAX_POOL_METADATA = 16 * KIB_PER_GIB
MAX_VOLUMES_PER_CLUSTER = 1000
MAX_GID = 2**31 - 1  # gid must be < MaxInt32
MAX_SNAPSHOT_FACTOR = 100
CREATE_TRIES = 5  # Heketi retries a failing create/clone executor step (5 tries in all)
DEFAULT_REPLICA = 3  # heketi-api.md: "N <= 3 (default 3)"

VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
HEX_ID_RE = re.compile(r"^[0-9a-fA-F]{32}$")

ERR_NO_SPACE = "No space"
ERR_MAX_BRICKS = "Maximum number of bricks reached."
ERR_MIN_BRICK = "Minimum brick size limit reached.  Out of space."
ERR_CONFLICT = "The target exists, contains other items, or is in use."

CREATE_SPEC = {
    "size": "int",
    "clusters": ["list", "str"],
    "name": "str",
    "durability": {
        "type": "str",
        "replicate": {"replica": "int"},
        "disperse": {"data": "int", "redundancy": "int"},
    },
    "gid": "int",
    "glustervolumeoptions": ["list", "str"],
    "block": "bool",
    "snapshot": {"enable": "bool", "factor": "float"},
}
EXPAND_SPEC = {"expand_size": "int"}
CLONE_SPEC = {"name": "str"}
CLEANUP_SPEC = {"operations": ["list", "str"]}

FAULT_DEFAULTS = {
    "op_delay_ms": 0,  # every executor run sleeps this long first
    "fail_next_executor": 0,  # the next N operations fail in the executor (all retries)
    "executor_error": "",  # message for those failures ("" = a gluster-like default)
    "peers_down": False,  # while true every executor run fails as if peers were down
    "busy_next": 0,  # the next N mutating requests get 429 whatever the load
    "response_delay_ms": 0,  # every non-/_test request is answered this much later
}


class HeketiError(Exception):
    """A synchronous refusal: HTTP status and Heketi's message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def new_id() -> str:
    """Heketi ids: 32 lowercase hex digits."""
    return secrets.token_hex(16)


def _align(value: int) -> int:
    rem = value % EXTENT_SIZE
    return value + (EXTENT_SIZE - rem) if rem else value


def space_needed(brick_kib: int, snap_factor: float) -> int:
    """KiB a brick takes from its device: thin pool (x snapshot factor) + pool metadata."""
    tp = _align(int(brick_kib * snap_factor))
    md = min(int(tp * 0.005), MAX_POOL_METADATA)
    return tp + _align(md)


def _go_number(value: float):
    """Render a float32 like Go's JSON encoder would (1 rather than 1.0)."""
    return int(value) if float(value).is_integer() else value


def _ozzo_errors(errors: dict) -> str:
    # ozzo-validation joins field errors sorted by field name.
    return "; ".join(f"{k}: {v}" for k, v in sorted(errors.items())) + "."


class Durability:
    """Brick-set geometry of a volume."""

    def __init__(self, info: dict):
        self.type = info["type"]
        self.replica = info.get("replicate", {}).get("replica", 0)
        self.data = info.get("disperse", {}).get("data", 0)
        self.redundancy = info.get("disperse", {}).get("redundancy", 0)

    @property
    def bricks_in_set(self) -> int:
        if self.type == "replicate":
            return self.replica
        if self.type == "disperse":
            return self.data + self.redundancy
        return 1

    @property
    def size_divisor(self) -> int:
        return self.data if self.type == "disperse" else 1


class Store:
    """All of Heketi's state plus the async queue, throttling and test faults."""

    def __init__(self, executor, *, topology: dict | None, state_file: str | None, max_inflight: int,
                 brick_path_root: str, log):
        self.lock = threading.RLock()
        self.executor = executor
        self.state_file = state_file
        self.max_inflight = max_inflight
        self.brick_path_root = brick_path_root.rstrip("/")
        self.log = log
        self.generation = 0
        self.queue: dict[str, dict] = {}
        self.inflight: set[str] = set()
        self.op_threads: dict[str, threading.Thread] = {}
        self.faults = dict(FAULT_DEFAULTS)
        self.requests: Counter = Counter()
        self.db = {"clusters": {}, "nodes": {}, "devices": {}, "volumes": {}, "bricks": {}, "operations": {}}
        if state_file and os.path.exists(state_file):
            with open(state_file, encoding="utf-8") as f:
                self.db = json.load(f)
            # Like Heketi at start-up: whatever was in flight is now stale.
            for op in self.db["operations"].values():
                if op["status"] == "":
                    op["status"] = "stale"
            self.log(f"loaded state from {state_file}: {len(self.db['volumes'])} volume entries")
        else:
            self._load_topology(topology or {})
        self._persist()

    # ----------------------------------------------------------------- topology

    def _load_topology(self, topology: dict):
        for cinfo in topology.get("clusters", []):
            cid = new_id()
            self.db["clusters"][cid] = {"id": cid, "nodes": [], "volumes": [],
                                        "block": bool(cinfo.get("block", True)),
                                        "file": bool(cinfo.get("file", True))}
            for ninfo in cinfo.get("nodes", []):
                node = ninfo["node"]
                nid = new_id()
                self.db["nodes"][nid] = {
                    "id": nid, "cluster": cid, "zone": int(node.get("zone", 1)),
                    "manage": list(node["hostnames"]["manage"]),
                    "storage": list(node["hostnames"]["storage"]),
                    "devices": [],
                }
                self.db["clusters"][cid]["nodes"].append(nid)
                for dinfo in ninfo.get("devices", []):
                    if isinstance(dinfo, str):
                        dinfo = {"name": dinfo}
                    did = new_id()
                    total = int(dinfo.get("size_gib", topology.get("device_size_gib", 100)) * KIB_PER_GIB)
                    self.db["devices"][did] = {"id": did, "node": nid, "name": dinfo["name"],
                                               "total": total, "free": total, "used": 0, "bricks": []}
                    self.db["nodes"][nid]["devices"].append(did)
            self.db["clusters"][cid]["nodes"].sort()

    def _persist(self):
        if not self.state_file:
            return
        tmp = f"{self.state_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.db, f, indent=1, sort_keys=True)
        os.replace(tmp, self.state_file)

    # ------------------------------------------------------------------ helpers

    def _hosts(self, cid: str) -> list[str]:
        return [self.db["nodes"][nid]["storage"][0] for nid in sorted(self.db["clusters"][cid]["nodes"])]

    def _cluster_devices(self, cid: str) -> list[dict]:
        out = []
        for nid in sorted(self.db["clusters"][cid]["nodes"]):
            for did in self.db["nodes"][nid]["devices"]:
                out.append(self.db["devices"][did])
        return out

    def _brick_path(self, did: str, bid: str) -> str:
        return f"{self.brick_path_root}/vg_{did}/brick_{bid}/brick"

    def _exec_spec(self, vid: str, brick_ids: list[str] | None = None) -> dict:
        """A self-contained copy of what the executor needs, taken under the lock."""
        vol = self.db["volumes"][vid]
        bids = vol["bricks"] if brick_ids is None else brick_ids
        bricks = []
        for bid in bids:
            b = self.db["bricks"][bid]
            bricks.append({"id": bid, "path": b["path"], "host": self.db["nodes"][b["node"]]["storage"][0]})
        return {"id": vid, "name": vol["name"], "durability": copy.deepcopy(vol["durability"]),
                "gid": vol["gid"], "options": list(vol["options"]), "bricks": bricks,
                "hosts": self._hosts(vol["cluster"])}

    def _visible(self, vol: dict | None) -> bool:
        return vol is not None and vol["pending"] == ""

    def _throttle(self):
        """Heketi's ThrottleOrAdd: refuse at once, reserving nothing."""
        if self.faults["busy_next"] > 0:
            self.faults["busy_next"] -= 1
            raise HeketiError(429, "Server busy. Retry operation later.")
        if len(self.inflight) >= self.max_inflight:
            raise HeketiError(429, "Server busy. Retry operation later.")

    # ------------------------------------------------------------- allocation

    def _place(self, cid: str, sets: int, per_set: int, brick_kib: int, snap: float):
        """Choose a device for every brick: distinct nodes within a set, most free space first."""
        need = space_needed(brick_kib, snap)
        devices = self._cluster_devices(cid)
        free = {d["id"]: d["free"] for d in devices}
        order = {d["id"]: i for i, d in enumerate(devices)}
        placed = []
        for _ in range(sets):
            used_nodes = set()
            for _ in range(per_set):
                cands = [d for d in devices if d["node"] not in used_nodes and free[d["id"]] > need]
                if not cands:
                    return None
                best = max(cands, key=lambda d: (free[d["id"]], -order[d["id"]]))
                free[best["id"]] -= need
                used_nodes.add(best["node"])
                placed.append((best["id"], brick_kib, need))
        return placed

    def _alloc_in_cluster(self, cid: str, gib: int, dur: Durability, snap: float, existing_bricks: int):
        """Heketi's brick size generator: halve the brick size until it fits; KiB everywhere."""
        size = gib * KIB_PER_GIB
        sets = 1
        while True:
            num_sets = sets
            sets *= 2
            brick = size // num_sets // dur.size_divisor
            if brick < BRICK_MIN_SIZE:
                raise _AllocError(ERR_MIN_BRICK)
            if brick > BRICK_MAX_SIZE:
                continue
            if num_sets * dur.bricks_in_set + existing_bricks > BRICK_MAX_NUM:
                raise _AllocError(ERR_MAX_BRICKS)
            placed = self._place(cid, num_sets, dur.bricks_in_set, brick, snap)
            if placed is not None:
                return placed

    def _add_bricks(self, vid: str, cid: str, placed, op_id: str, space: bool = True) -> list[str]:
        vol = self.db["volumes"][vid]
        ids = []
        for did, brick_kib, need in placed:
            bid = new_id()
            dev = self.db["devices"][did]
            self.db["bricks"][bid] = {"id": bid, "path": self._brick_path(did, bid), "device": did,
                                      "node": dev["node"], "volume": vid, "size": brick_kib,
                                      "space": need if space else 0, "pending": op_id}
            if space:
                dev["free"] -= need
                dev["used"] += need
            dev["bricks"].append(bid)
            vol["bricks"].append(bid)
            ids.append(bid)
        return ids

    def _remove_bricks(self, bids: list[str]):
        for bid in bids:
            b = self.db["bricks"].pop(bid, None)
            if b is None:
                continue
            dev = self.db["devices"][b["device"]]
            dev["free"] += b["space"]
            dev["used"] -= b["space"]
            if bid in dev["bricks"]:
                dev["bricks"].remove(bid)
            vol = self.db["volumes"].get(b["volume"])
            if vol and bid in vol["bricks"]:
                vol["bricks"].remove(bid)

    def _remove_volume(self, vid: str):
        vol = self.db["volumes"].pop(vid, None)
        if vol is None:
            return
        self._remove_bricks(list(vol["bricks"]))
        cluster = self.db["clusters"].get(vol["cluster"])
        if cluster and vid in cluster["volumes"]:
            cluster["volumes"].remove(vid)

    # ---------------------------------------------------------------- requests

    def create_volume(self, body: bytes) -> str:
        try:
            req = gojson.loads(body, CREATE_SPEC)
        except gojson.GoJSONError:
            raise HeketiError(422, "request unable to be parsed") from None
        errors = {}
        if req["size"] == 0:
            errors["size"] = "cannot be blank"
        elif req["size"] < 1:
            errors["size"] = "must be no less than 1"
        if req["name"] and not VOLUME_NAME_RE.match(req["name"]):
            errors["name"] = "must be in a valid format"
        if errors:
            raise HeketiError(400, "validation failed: " + _ozzo_errors(errors))
        if req["gid"] < 0:
            raise HeketiError(400, "Bad group id less than zero")
        if req["gid"] >= MAX_GID:
            raise HeketiError(400, "Bad group id equal or greater than 2**32")
        dur = req["durability"]
        if dur["type"] == "":
            dur["type"] = "none"
        if dur["type"] not in ("replicate", "disperse", "none"):
            raise HeketiError(400, "Unknown durability type")
        snap = req["snapshot"]
        if snap["enable"] and not 1 <= snap["factor"] <= MAX_SNAPSHOT_FACTOR:
            raise HeketiError(400, "Invalid snapshot factor")
        if dur["type"] == "replicate":
            # Heketi only checks > 3; a negative count would break its allocator, refuse it here.
            if dur["replicate"]["replica"] > 3 or dur["replicate"]["replica"] < 0:
                raise HeketiError(400, "Invalid replica value")
        if dur["type"] == "disperse":
            d, r = dur["disperse"]["data"], dur["disperse"]["redundancy"]
            if (d, r) not in ((2, 1), (4, 2), (8, 3), (8, 4)):
                raise HeketiError(400, f"Invalid dispersion combination: {d}+{r}")

        # Echo what Heketi echoes: the request's durability with the defaults filled in.
        if dur["type"] == "replicate" and dur["replicate"]["replica"] == 0:
            dur["replicate"]["replica"] = DEFAULT_REPLICA
        durability = {"type": dur["type"],
                      "replicate": {k: v for k, v in dur["replicate"].items() if v},
                      "disperse": {k: v for k, v in dur["disperse"].items() if v}}
        geometry = Durability(durability)
        factor = snap["factor"] if snap["enable"] else 1.0

        with self.lock:
            if not self.db["clusters"]:
                raise HeketiError(400, "No clusters configured")
            for cid in req["clusters"]:
                if cid not in self.db["clusters"]:
                    raise HeketiError(400, f"Cluster id {cid} not found")
            min_size = BRICK_MIN_SIZE * geometry.size_divisor
            if req["size"] * KIB_PER_GIB < min_size:
                raise HeketiError(400, f"Requested volume size ({req['size']} GB) is smaller than the "
                                       f"minimum supported volume size ({min_size})")
            self._throttle()

            vid = new_id()
            name = req["name"] or f"vol_{vid}"
            candidates = req["clusters"] or sorted(self.db["clusters"])
            try:
                cid, placed = self._choose_cluster(candidates, name, req["size"], geometry, factor)
            except _AllocError as err:
                raise HeketiError(500, f"Failed to allocate new volume: {err}") from None
            op_id = new_id()
            self.db["volumes"][vid] = {
                "id": vid, "name": name, "cluster": cid, "size": req["size"],
                "durability": durability, "gid": req["gid"],
                # Heketi wraps the user's options in its (empty) pre- and post-request options.
                "options": [""] + req["glustervolumeoptions"] + [""],
                "snapshot": {"enable": snap["enable"], "factor": factor},
                "bricks": [], "pending": op_id,
            }
            self.db["clusters"][cid]["volumes"].append(vid)
            bricks = self._add_bricks(vid, cid, placed, op_id)
            op = {"id": op_id, "type": "create-volume", "status": "", "volume": vid, "bricks": bricks}
            spec = self._exec_spec(vid)
            return self._start(op, lambda: self.executor.create(spec))

    def _choose_cluster(self, candidates, name, size, geometry, factor):
        errors = {}
        eligible = []
        for cid in candidates:
            cluster = self.db["clusters"][cid]
            if not cluster["file"]:
                errors[cid] = "Cluster does not support requested volume type"
                continue
            if any(self.db["volumes"][v]["name"] == name for v in cluster["volumes"]):
                errors[cid] = f"Volume name '{name}' already in use"
                continue
            if len(cluster["volumes"]) >= MAX_VOLUMES_PER_CLUSTER:
                errors[cid] = (f"Cluster has {len(cluster['volumes'])} volumes and limit is "
                               f"{MAX_VOLUMES_PER_CLUSTER}")
                continue
            eligible.append(cid)
        if not eligible:
            raise _AllocError(_cluster_errors("No eligible cluster for volume", errors) or ERR_NO_SPACE)
        errors = {}
        for cid in eligible:
            try:
                return cid, self._alloc_in_cluster(cid, size, geometry, factor, 0)
            except _AllocError:
                # Heketi maps every allocation failure to "No space" for creates.
                errors[cid] = ERR_NO_SPACE
        raise _AllocError(_cluster_errors("Unable to create volume on any cluster:", errors))

    def expand_volume(self, vid: str, body: bytes) -> str:
        try:
            req = gojson.loads(body, EXPAND_SPEC)
        except gojson.GoJSONError:
            raise HeketiError(422, "request unable to be parsed") from None
        if req["expand_size"] == 0:
            raise HeketiError(400, "validation failed: expand_size: cannot be blank.")
        if req["expand_size"] < 1:
            raise HeketiError(400, "validation failed: expand_size: must be no less than 1.")
        with self.lock:
            vol = self.db["volumes"].get(vid)
            if vol is None:
                raise HeketiError(404, "Id not found")
            self._throttle()
            if vol["pending"]:
                raise HeketiError(500, f"Failed to allocate volume expansion: {ERR_CONFLICT}")
            geometry = Durability(vol["durability"])
            try:
                placed = self._alloc_in_cluster(vol["cluster"], req["expand_size"], geometry,
                                                vol["snapshot"]["factor"], len(vol["bricks"]))
            except _AllocError as err:
                raise HeketiError(500, f"Failed to allocate volume expansion: {err}") from None
            op_id = new_id()
            bricks = self._add_bricks(vid, vol["cluster"], placed, op_id)
            op = {"id": op_id, "type": "expand-volume", "status": "", "volume": vid, "bricks": bricks,
                  "expand_size": req["expand_size"]}
            spec = self._exec_spec(vid)
            new = self._exec_spec(vid, bricks)["bricks"]
            return self._start(op, lambda: self.executor.expand(spec, new))

    def clone_volume(self, vid: str, body: bytes) -> str:
        try:
            req = gojson.loads(body, CLONE_SPEC)
        except gojson.GoJSONError:
            raise HeketiError(422, "request unable to be parsed") from None
        if req["name"] and not VOLUME_NAME_RE.match(req["name"]):
            raise HeketiError(400, "validation failed: name: must be in a valid format.")
        with self.lock:
            src = self.db["volumes"].get(vid)
            if not self._visible(src):
                raise HeketiError(404, "Id not found")
            self._throttle()
            op_id = new_id()
            cvid = new_id()
            # Duplicate clone names are not rejected: Heketi does not check them.
            clone = copy.deepcopy(src)
            clone.update({"id": cvid, "name": req["name"] or f"vol_{cvid}", "bricks": [], "pending": op_id})
            self.db["volumes"][cvid] = clone
            self.db["clusters"][clone["cluster"]]["volumes"].append(cvid)
            # Clone bricks are thin snapshots on the same devices: Heketi charges no space for them.
            placed = [(self.db["bricks"][b]["device"], self.db["bricks"][b]["size"], 0) for b in src["bricks"]]
            bricks = self._add_bricks(cvid, clone["cluster"], placed, op_id, space=False)
            src["pending"] = op_id
            op = {"id": op_id, "type": "clone-volume", "status": "", "volume": vid, "clone": cvid,
                  "bricks": bricks}
            src_spec, clone_spec = self._exec_spec(vid), self._exec_spec(cvid)
            return self._start(op, lambda: self.executor.clone(src_spec, clone_spec))

    def delete_volume(self, vid: str) -> str:
        with self.lock:
            vol = self.db["volumes"].get(vid)
            if vol is None:
                raise HeketiError(404, "Id not found")
            self._throttle()
            if vol["pending"] or any(self.db["bricks"][b]["pending"] for b in vol["bricks"]):
                raise HeketiError(500, f"Failed to set up volume delete: {ERR_CONFLICT}")
            op_id = new_id()
            vol["pending"] = op_id
            op = {"id": op_id, "type": "delete-volume", "status": "", "volume": vid, "bricks": []}
            spec = self._exec_spec(vid)
            return self._start(op, lambda: self.executor.destroy(spec))

    # ------------------------------------------------------ operation lifecycle

    def _start(self, op: dict, call) -> str:
        """Record the op and answer 202 with its queue id; run ``call`` on a thread.

        ``call`` must close over plain data built under the lock (executor specs),
        never over the live state.
        """
        self.db["operations"][op["id"]] = op
        self.inflight.add(op["id"])
        qid = new_id()
        self.queue[qid] = {"done": False}
        self._persist()
        thread = threading.Thread(target=self._run_op, args=(op["id"], qid, self.generation, call),
                                  name=f"op-{op['type']}-{op['id'][:8]}", daemon=True)
        self.op_threads[op["id"]] = thread
        thread.start()
        return qid

    def _take_injected_failure(self, op: dict) -> str | None:
        """Consume one 'fail_next_executor' fault, if set (caller holds the lock)."""
        if self.faults["fail_next_executor"] <= 0:
            return None
        self.faults["fail_next_executor"] -= 1
        if self.faults["executor_error"]:
            return self.faults["executor_error"]
        vol = self.db["volumes"].get(op.get("clone") or op["volume"])
        host = self._hosts(vol["cluster"])[0] if vol else "?"
        return f"Unable to execute command on {host}: injected executor failure (heketi test server)"

    def _peers_down_failure(self, op: dict) -> str | None:
        """While 'peers_down' is set, fail the way gluster does when peers are disconnected."""
        with self.lock:
            if not self.faults["peers_down"]:
                return None
            vol = self.db["volumes"].get(op.get("clone") or op["volume"])
            name = vol["name"] if vol else "?"
            hosts = self._hosts(vol["cluster"]) if vol else ["?"]
        if op["type"] == "delete-volume":
            return f"Unable to execute command on {hosts[0]}: volume stop: {name}: failed: Some of the peers are down"
        return (f"Unable to execute command on {hosts[0]}: volume create: {name}: failed: "
                f"Host {hosts[-1]} is not in 'Peer in Cluster' state")

    def _run_op(self, op_id: str, qid: str, gen: int, call):
        with self.lock:
            op = copy.deepcopy(self.db["operations"][op_id])
            delay = self.faults["op_delay_ms"]
            injected = self._take_injected_failure(op)
        if delay:
            time.sleep(delay / 1000.0)
        tries = CREATE_TRIES if op["type"] in ("create-volume", "clone-volume") else 1
        error = None
        rollback_failed = False
        for _ in range(tries):
            failure = injected or self._peers_down_failure(op)
            if failure:
                error = failure  # nothing was done on gluster: nothing to roll back
                continue
            try:
                call()
                error = None
                break
            except ExecError as err:
                error = str(err)
                self.log(f"operation {op['type']} {op_id} failed: {error}")
                try:
                    self._executor_rollback(op)
                except ExecError as rerr:
                    self.log(f"rollback of {op_id} failed: {rerr}")
                    rollback_failed = True
                    break
        with self.lock:
            if gen != self.generation:
                return  # the (simulated) server restarted meanwhile: the op stays stale
            self.inflight.discard(op_id)
            self.op_threads.pop(op_id, None)
            entry = self.queue.get(qid)
            if error is None:
                location = self._finalize(op_id)
                if entry is not None:
                    entry.update(done=True, location=location, error=None)
            else:
                if rollback_failed:
                    self.db["operations"][op_id]["status"] = "failed"
                else:
                    self._rollback(op_id)
                if entry is not None:
                    entry.update(done=True, location=None, error=error)
            self._persist()

    def _executor_rollback(self, op: dict):
        """Undo a failed executor attempt on gluster (a no-op for the mock executor)."""
        with self.lock:
            if op["type"] == "create-volume":
                spec = self._exec_spec(op["volume"])
                call = lambda: self.executor.destroy(spec)  # noqa: E731
            elif op["type"] == "clone-volume":
                spec = self._exec_spec(op["clone"])
                call = lambda: self.executor.destroy(spec)  # noqa: E731
            elif op["type"] == "expand-volume":
                spec = self._exec_spec(op["volume"])
                bricks = self._exec_spec(op["volume"], op["bricks"])["bricks"]
                call = lambda: self.executor.expand_rollback(spec, bricks)  # noqa: E731
            else:
                return
        call()

    def _finalize(self, op_id: str) -> str | None:
        op = self.db["operations"].pop(op_id)
        vid = op["volume"]
        for bid in op["bricks"]:
            if bid in self.db["bricks"]:
                self.db["bricks"][bid]["pending"] = ""
        if op["type"] == "create-volume":
            self.db["volumes"][vid]["pending"] = ""
            return f"/volumes/{vid}"
        if op["type"] == "expand-volume":
            self.db["volumes"][vid]["size"] += op["expand_size"]
            return f"/volumes/{vid}"
        if op["type"] == "clone-volume":
            if vid in self.db["volumes"]:
                self.db["volumes"][vid]["pending"] = ""
            self.db["volumes"][op["clone"]]["pending"] = ""
            return f"/volumes/{op['clone']}"
        self._remove_volume(vid)  # delete
        return None

    def _rollback(self, op_id: str):
        op = self.db["operations"].pop(op_id)
        vid = op["volume"]
        if op["type"] == "create-volume":
            self._remove_volume(vid)
        elif op["type"] == "expand-volume":
            self._remove_bricks(op["bricks"])
        elif op["type"] == "clone-volume":
            self._remove_volume(op["clone"])
            if vid in self.db["volumes"]:
                self.db["volumes"][vid]["pending"] = ""
        elif vid in self.db["volumes"]:  # delete
            self.db["volumes"][vid]["pending"] = ""

    # ------------------------------------------------------------------- queue

    def queue_status(self, qid: str):
        """(status, location or error text); the final answer is given exactly once."""
        with self.lock:
            entry = self.queue.get(qid)
            if entry is None:
                raise HeketiError(404, "Id not found")
            if not entry["done"]:
                return 200, None
            del self.queue[qid]
            if entry["error"] is not None:
                return 500, entry["error"]
            if entry["location"]:
                return 303, entry["location"]
            return 204, None

    # ------------------------------------------------------- pending operations

    def operations_info(self) -> dict:
        with self.lock:
            ops = self.db["operations"].values()
            status = Counter(op["status"] for op in ops)
            return {"total": len(self.db["operations"]), "in_flight": len(self.inflight),
                    "stale": status["stale"], "failed": status["failed"], "new": status[""]}

    def pending_operations(self) -> dict:
        with self.lock:
            return {"pendingoperations": [
                {"id": op["id"], "type_name": op["type"], "status": op["status"],
                 "sub_status": "in-flight" if op["id"] in self.inflight else ""}
                for _, op in sorted(self.db["operations"].items())]}

    def cleanup_operations(self, body: bytes) -> str:
        try:
            req = gojson.loads(body, CLEANUP_SPEC)
        except gojson.GoJSONError:
            raise HeketiError(422, "request unable to be parsed") from None
        ids = req["operations"]
        if len(ids) > 32:
            raise HeketiError(400, f"validation failed: operations: too many ids specified ({len(ids)}), "
                                   "up to 32 supported.")
        for oid in ids:
            if not HEX_ID_RE.match(oid):
                raise HeketiError(400, f"validation failed: operations: {oid} is not a valid UUID.")
        with self.lock:
            qid = new_id()
            self.queue[qid] = {"done": False}
            thread = threading.Thread(target=self._run_cleanup, args=(qid, set(ids)), name="op-cleanup",
                                      daemon=True)
            thread.start()
            return qid

    def _run_cleanup(self, qid: str, wanted: set):
        with self.lock:
            targets = [oid for oid in sorted(self.db["operations"])
                       if oid not in self.inflight and (not wanted or oid in wanted)]
        errors = []
        for oid in targets:
            # A stale op's old thread may still be talking to gluster: let it finish first.
            thread = self.op_threads.get(oid)
            if thread is not None:
                thread.join(timeout=600)
            try:
                self._clean_one(oid)
            except ExecError as err:
                errors.append(str(err))
                with self.lock:
                    if oid in self.db["operations"]:
                        self.db["operations"][oid]["status"] = "failed"
                        self._persist()
        with self.lock:
            if qid in self.queue:
                self.queue[qid].update(done=True, location=None, error=errors[0] if errors else None)

    def _clean_one(self, oid: str):
        with self.lock:
            op = self.db["operations"].get(oid)
            if op is None:
                return
            kind = op["type"]
            if kind == "expand-volume":
                spec = self._exec_spec(op["volume"])
                new = self._exec_spec(op["volume"], op["bricks"])["bricks"]
                call = lambda: self.executor.expand_cleanup(spec, new)  # noqa: E731
            else:
                # create/clone: remove what may have been made; delete: finish the delete.
                spec = self._exec_spec(op["clone"] if kind == "clone-volume" else op["volume"])
                call = lambda: self.executor.destroy(spec)  # noqa: E731
        result = call()
        with self.lock:
            if oid not in self.db["operations"]:
                return
            if kind == "delete-volume" or (kind == "expand-volume" and result):
                self._finalize(oid)  # the work was done (or is now done): roll forward
            else:
                self._rollback(oid)
            self._persist()

    # ------------------------------------------------------------------ reads

    def list_volumes(self) -> dict:
        with self.lock:
            return {"volumes": sorted(v for v, vol in self.db["volumes"].items() if vol["pending"] == "")}

    def volume_info(self, vid: str) -> dict:
        with self.lock:
            vol = self.db["volumes"].get(vid)
            if not self._visible(vol):
                raise HeketiError(404, "Id not found")
            return self._volume_json(vol)

    def _volume_json(self, vol: dict) -> dict:
        hosts = self._hosts(vol["cluster"])
        out = {"size": vol["size"], "name": vol["name"], "durability": vol["durability"]}
        if vol["gid"]:
            out["gid"] = vol["gid"]
        if vol["options"]:
            out["glustervolumeoptions"] = vol["options"]
        out["snapshot"] = {"enable": vol["snapshot"]["enable"], "factor": _go_number(vol["snapshot"]["factor"])}
        out.update({
            "id": vol["id"], "cluster": vol["cluster"],
            "mount": {"glusterfs": {"hosts": hosts, "device": f"{hosts[0]}:{vol['name']}",
                                    "options": {"backup-volfile-servers": ",".join(hosts[1:])}}},
            "blockinfo": {},
            "bricks": [self._brick_json(self.db["bricks"][b]) for b in vol["bricks"]],
        })
        return out

    @staticmethod
    def _brick_json(b: dict) -> dict:
        return {"id": b["id"], "path": b["path"], "device": b["device"], "node": b["node"],
                "volume": b["volume"], "size": b["size"]}

    def list_clusters(self) -> dict:
        with self.lock:
            return {"clusters": sorted(self.db["clusters"])}

    def cluster_info(self, cid: str) -> dict:
        with self.lock:
            c = self.db["clusters"].get(cid)
            if c is None:
                raise HeketiError(404, "Id not found")
            vols = sorted(v for v in c["volumes"] if self.db["volumes"][v]["pending"] == "")
            return {"id": cid, "nodes": sorted(c["nodes"]), "volumes": vols,
                    "block": c["block"], "file": c["file"], "blockvolumes": []}

    def node_info(self, nid: str) -> dict:
        with self.lock:
            n = self.db["nodes"].get(nid)
            if n is None:
                raise HeketiError(404, "Id not found")
            devices = []
            for did in n["devices"]:
                d = self.db["devices"][did]
                devices.append({"name": d["name"],
                                "storage": {"total": d["total"], "free": d["free"], "used": d["used"]},
                                "id": did, "paths": [d["name"]], "state": "online",
                                "bricks": [self._brick_json(self.db["bricks"][b]) for b in d["bricks"]]})
            return {"zone": n["zone"], "hostnames": {"manage": n["manage"], "storage": n["storage"]},
                    "cluster": n["cluster"], "id": nid, "state": "online", "devices": devices}

    def device_info(self, did: str) -> dict:
        with self.lock:
            d = self.db["devices"].get(did)
            if d is None:
                raise HeketiError(404, "Id not found")
            return {"name": d["name"], "storage": {"total": d["total"], "free": d["free"], "used": d["used"]},
                    "id": did, "paths": [d["name"]], "state": "online",
                    "bricks": [self._brick_json(self.db["bricks"][b]) for b in d["bricks"]]}

    def metrics(self) -> str:
        with self.lock:
            lines = []

            def series(name, help_text, samples):
                lines.append(f"# HELP heketi_{name} {help_text}")
                lines.append(f"# TYPE heketi_{name} gauge")
                for labels, value in samples:
                    if labels:
                        text = ",".join(f'{k}="{v}"' for k, v in labels)
                        lines.append(f"heketi_{name}{{{text}}} {value}")
                    else:
                        lines.append(f"heketi_{name} {value}")

            series("up", "Is heketi running?", [((), 1)])
            series("cluster_count", "Number of clusters", [((), len(self.db["clusters"]))])
            series("volumes_count", "Number of volumes on cluster",
                   [((("cluster", c),), len(self.db["clusters"][c]["volumes"])) for c in sorted(self.db["clusters"])])
            series("block_volumes_count", "Number of block volumes on cluster",
                   [((("cluster", c),), 0) for c in sorted(self.db["clusters"])])
            series("nodes_count", "Number of nodes on cluster",
                   [((("cluster", c),), len(self.db["clusters"][c]["nodes"])) for c in sorted(self.db["clusters"])])
            per_node, per_dev = [], []
            for c in sorted(self.db["clusters"]):
                for nid in sorted(self.db["clusters"][c]["nodes"]):
                    n = self.db["nodes"][nid]
                    base = (("cluster", c), ("hostname", n["manage"][0]), ("storage_hostname", n["storage"][0]))
                    per_node.append((base, len(n["devices"])))
                    for did in n["devices"]:
                        per_dev.append((base + (("id", did), ("device", self.db["devices"][did]["name"]),
                                                ("pv_uuid", "")), self.db["devices"][did]))
            series("device_count", "Number of devices on host", per_node)
            series("device_size", "Total size of the device", [(lb, d["total"]) for lb, d in per_dev])
            series("device_free", "Amount of Free space available on the device",
                   [(lb, d["free"]) for lb, d in per_dev])
            series("device_used", "Amount of space used on the device", [(lb, d["used"]) for lb, d in per_dev])
            series("device_size_bytes", "Total size of the device in bytes",
                   [(lb, d["total"] * 1024) for lb, d in per_dev])
            series("device_free_bytes", "Amount of Free space available on the device in bytes",
                   [(lb, d["free"] * 1024) for lb, d in per_dev])
            series("device_used_bytes", "Amount of space used on the device in bytes",
                   [(lb, d["used"] * 1024) for lb, d in per_dev])
            series("device_brick_count", "Number of bricks on device",
                   [(lb, len(d["bricks"])) for lb, d in per_dev])
            info = self.operations_info()
            series("operations_stale_count", "Number of Stale Operations", [((), info["stale"])])
            series("operations_failed_count", "Number of Failed Operations", [((), info["failed"])])
            series("operations_new_count", "Number of New Operations", [((), info["new"])])
            series("operations_total_count", "Total Number of Operations", [((), info["total"])])
            series("operations_inFlight_count", "Number of in flight Operations", [((), info["in_flight"])])
            return "\n".join(lines) + "\n"

    # ------------------------------------------------------------- test hooks

    def set_faults(self, changes: dict) -> dict:
        with self.lock:
            for key, value in changes.items():
                if key not in FAULT_DEFAULTS:
                    raise HeketiError(400, f"unknown fault '{key}'; known: {', '.join(sorted(FAULT_DEFAULTS))}")
                want = type(FAULT_DEFAULTS[key])
                if want is int and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                    raise HeketiError(400, f"fault '{key}' must be a non-negative integer")
                if want is not int and not isinstance(value, want):
                    raise HeketiError(400, f"fault '{key}' must be a {want.__name__}")
                self.faults[key] = value
            return dict(self.faults)

    def simulate_restart(self) -> dict:
        """What a Heketi restart does: queue forgotten, in-flight operations become stale."""
        with self.lock:
            self.generation += 1
            self.queue.clear()
            self.inflight.clear()
            stale = []
            for op in self.db["operations"].values():
                if op["status"] == "":
                    op["status"] = "stale"
                    stale.append(op["id"])
            self._persist()
            return {"generation": self.generation, "stale_operations": sorted(stale)}

    def reset(self, wipe_volumes: bool) -> dict:
        with self.lock:
            self.faults = dict(FAULT_DEFAULTS)
            self.requests.clear()
            if not wipe_volumes:
                return {"volumes_removed": 0}
            self.generation += 1
            self.queue.clear()
            self.inflight.clear()
            threads = list(self.op_threads.values())
        for t in threads:
            t.join(timeout=600)
        with self.lock:
            specs = [self._exec_spec(v) for v in sorted(self.db["volumes"])]
        errors = []
        for spec in specs:
            try:
                self.executor.destroy(spec)
            except ExecError as err:
                errors.append(str(err))
        with self.lock:
            removed = len(self.db["volumes"])
            for vid in list(self.db["volumes"]):
                self._remove_volume(vid)
            self.db["operations"].clear()
            self.op_threads.clear()
            self._persist()
        if errors:
            raise HeketiError(500, "; ".join(errors))
        return {"volumes_removed": removed}

    def debug_state(self) -> dict:
        with self.lock:
            return {"generation": self.generation, "in_flight": sorted(self.inflight),
                    "queue": sorted(self.queue), "faults": dict(self.faults),
                    "volumes": [{"id": v["id"], "name": v["name"], "pending": v["pending"], "size": v["size"]}
                                for _, v in sorted(self.db["volumes"].items())],
                    "operations": [dict(op) for _, op in sorted(self.db["operations"].items())]}

    def shutdown(self):
        with self.lock:
            self._persist()


class _AllocError(Exception):
    pass


def _cluster_errors(prefix: str, errors: dict) -> str:
    if len(errors) == 1:
        return next(iter(errors.values()))
    lines = [prefix] if prefix else []
    lines += [f"Cluster {cid}: {msg}" for cid, msg in sorted(errors.items())]
    return "\n".join(lines)

