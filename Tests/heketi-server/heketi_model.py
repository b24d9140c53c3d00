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
import threading
from collections import Counter

import heketi_gojson as gojson
from heketi_common import (ERR_CONFLICT, ERR_MAX_BRICKS, ERR_MIN_BRICK, ERR_NO_SPACE, FAULT_DEFAULTS,
                           KIB_PER_GIB, VOLUME_NAME_RE, HeketiError, new_id, space_needed)
from heketi_operations import OperationsMixin
from heketi_testhooks import TestHooks
from heketi_views import ReadViews

BRICK_MIN_SIZE = 1 * KIB_PER_GIB
BRICK_MAX_SIZE = 4 * 1024 * KIB_PER_GIB
BRICK_MAX_NUM = 32
MAX_VOLUMES_PER_CLUSTER = 1000
MAX_GID = 2**31 - 1  # gid must be < MaxInt32
MAX_SNAPSHOT_FACTOR = 100
DEFAULT_REPLICA = 3  # heketi-api.md: "N <= 3 (default 3)"

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


class Store(OperationsMixin, ReadViews, TestHooks):
    """All of Heketi's state plus the async queue, throttling and test faults.

    Requests that change state live here; the operation threads, read views and test
    hooks are mixins in heketi_operations.py, heketi_views.py and heketi_testhooks.py.
    """

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

