"""Async operations of the Heketi test server -- TEST SUPPORT ONLY.

The life of a create/expand/clone/delete after its 202: a thread per operation
runs the executor (with Heketi's retries and rollback), then finalizes or rolls
back the bookkeeping and completes the queue entry, which is delivered once.
Also the queue itself and pending-operation listing and cleanup.

A mixin of heketi_model.Store: it works on the Store's ``db``, ``lock``,
``queue``, ``inflight``, ``op_threads``, ``faults`` and ``generation``. The
generation changes on a (simulated) restart; a thread of an older generation
leaves its operation stale.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter

import heketi_gojson as gojson
from heketi_common import CREATE_TRIES, HEX_ID_RE, HeketiError, new_id
from heketi_executors import ExecError

CLEANUP_SPEC = {"operations": ["list", "str"]}


class OperationsMixin:
    """Operation threads, the async queue and pending operations."""


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
            self.op_threads.pop(oid, None)
            self._persist()
