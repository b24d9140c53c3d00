"""The test-only controls of the Heketi test server -- TEST SUPPORT ONLY.

What the unauthenticated /_test/ API does: faults, simulated restart, reset,
debug state. A mixin of heketi_model.Store.
"""

from __future__ import annotations

from heketi_common import FAULT_DEFAULTS, HeketiError
from heketi_executors import ExecError


class TestHooks:
    """Fault injection, simulated restart, reset and a debug view."""

    __test__ = False  # not a pytest test class


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
