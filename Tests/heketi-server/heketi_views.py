"""Read-only answers of the Heketi test server -- TEST SUPPORT ONLY.

GET /volumes, /volumes/{id}, /clusters, /clusters/{id}, /nodes/{id},
/devices/{id} and /metrics, in the JSON shapes (and Go field order) Heketi uses.
A mixin of heketi_model.Store: it reads the Store's ``db`` under its ``lock``.
"""

from __future__ import annotations

from heketi_common import HeketiError


def _go_number(value: float):
    """Render a float32 like Go's JSON encoder would (1 rather than 1.0)."""
    return int(value) if float(value).is_integer() else value


class ReadViews:
    """JSON views of volumes, clusters, nodes and devices; Prometheus metrics."""


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
