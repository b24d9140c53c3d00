"""Executors for the Heketi-compatible test server -- TEST SUPPORT ONLY.

An executor does the slow part of an operation, after the model has answered
202. Two exist:

- MockExecutor: does nothing (Heketi's own mock executor); latency comes only
  from the ``op_delay_ms`` fault.
- GlusterExecutor: makes REAL GlusterFS volumes on this machine with directory
  bricks under a brick root, using the ``gluster`` CLI. Every command is an
  argument array (never a shell) with a timeout.

Specs passed in are plain dicts built by the model under its lock:
``{"id", "name", "durability", "gid", "options", "bricks": [{"id", "path", "host"}], "hosts"}``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile


class ExecError(Exception):
    """An executor step failed; the text is what Heketi's queue would answer with."""


class MockExecutor:
    """Heketi's mock executor: every step succeeds at once."""

    mode = "mock"

    def create(self, spec):
        pass

    def expand(self, spec, new_bricks):
        pass

    def expand_rollback(self, spec, new_bricks):
        pass

    def expand_cleanup(self, spec, new_bricks) -> bool:
        return False  # nothing happened anywhere: roll the stale expansion back

    def clone(self, src_spec, clone_spec):
        pass

    def destroy(self, spec):
        pass


class GlusterExecutor:
    """Real gluster volumes on this one machine; each Heketi node is a storage hostname of it."""

    mode = "gluster"

    def __init__(self, *, gluster: str = "gluster", timeout: float = 120.0, log=print):
        self.gluster = gluster
        self.timeout = timeout
        self.log = log

    # -------------------------------------------------------------- plumbing

    def _run(self, args: list[str], host: str, timeout: float | None = None) -> str:
        self.log("exec: " + " ".join(args))
        limit = timeout or self.timeout
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=limit,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            raise ExecError(f"Unable to execute command on {host}: {args[0]} timed out after {limit:.0f}s") from None
        except OSError as err:
            raise ExecError(f"Unable to execute command on {host}: {err}") from None
        if proc.returncode != 0:
            text = proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}"
            raise ExecError(f"Unable to execute command on {host}: {text}")
        return proc.stdout

    def _g(self, host: str, *args: str, timeout: float | None = None) -> str:
        return self._run([self.gluster, "--mode=script", *args], host, timeout)

    def check_ready(self):
        """Fail early, with a useful message, when glusterd is not reachable."""
        self._g("localhost", "pool", "list", timeout=30)

    @staticmethod
    def _brick_arg(b: dict) -> str:
        return f"{b['host']}:{b['path']}"

    @staticmethod
    def _layout_args(durability: dict) -> list[str]:
        kind = durability["type"]
        if kind == "replicate":
            replica = durability["replicate"].get("replica", 1)
            return ["replica", str(replica)] if replica > 1 else []
        if kind == "disperse":
            return ["disperse-data", str(durability["disperse"]["data"]),
                    "redundancy", str(durability["disperse"]["redundancy"])]
        return []

    @staticmethod
    def _prepare_bricks(bricks: list[dict], gid: int, host: str):
        for b in bricks:
            try:
                os.makedirs(b["path"], exist_ok=True)
                if gid:
                    # Heketi gives the brick root the volume's group and mode 2775 so that
                    # non-root pods with that supplemental group can write.
                    os.chown(b["path"], -1, gid)
                    os.chmod(b["path"], 0o2775)
            except OSError as err:
                raise ExecError(f"Unable to execute command on {host}: brick {b['path']}: {err}") from None

    @staticmethod
    def _remove_brick_dirs(bricks: list[dict]):
        for b in bricks:
            # path is .../vg_<device>/brick_<id>/brick: remove the brick_<id> directory.
            shutil.rmtree(os.path.dirname(b["path"]), ignore_errors=True)

    def _volume_bricks(self, name: str, host: str) -> set[str] | None:
        """Brick names (host:path) gluster has for a volume, or None if it does not exist."""
        try:
            out = self._g(host, "volume", "info", name, timeout=60)
        except ExecError as err:
            if "does not exist" in str(err):
                return None
            raise
        bricks = set()
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("Brick") and not line.startswith("Bricks") and ": " in line:
                bricks.add(line.split(": ", 1)[1].strip())
        return bricks

    # ------------------------------------------------------------- operations

    def create(self, spec):
        host = spec["hosts"][0]
        self._prepare_bricks(spec["bricks"], spec["gid"], host)
        self._g(host, "volume", "create", spec["name"], *self._layout_args(spec["durability"]),
                *[self._brick_arg(b) for b in spec["bricks"]], "force")
        # Heketi also tags every volume with its id.
        for option in list(spec["options"]) + [f"user.heketi.id {spec['id']}"]:
            key, _, value = option.strip().partition(" ")
            if key:
                self._g(host, "volume", "set", spec["name"], key, value.strip())
        self._g(host, "volume", "start", spec["name"])

    def destroy(self, spec):
        """Stop and delete the volume and remove its brick directories; absent volumes are fine.

        glusterd may be shared with other users of this machine: a volume of the same name
        whose bricks are not ours (say, a create failed because the name was taken) is left
        alone; only our brick directories are removed.
        """
        host = spec["hosts"][0]
        present = self._volume_bricks(spec["name"], host)
        ours = {self._brick_arg(b) for b in spec["bricks"]}
        if present is not None and present & ours:
            try:
                self._g(host, "volume", "stop", spec["name"], "force")
            except ExecError as err:
                text = str(err)
                if "does not exist" not in text and "not in the started state" not in text \
                        and "is not started" not in text:
                    raise
            try:
                self._g(host, "volume", "delete", spec["name"])
            except ExecError as err:
                if "does not exist" not in str(err):
                    raise
        elif present is not None:
            self.log(f"not deleting gluster volume {spec['name']}: its bricks are not ours")
        self._remove_brick_dirs(spec["bricks"])

    def expand(self, spec, new_bricks):
        host = spec["hosts"][0]
        self._prepare_bricks(new_bricks, spec["gid"], host)
        # add-brick takes the replica count again; a disperse volume takes whole sets without it.
        layout = self._layout_args(spec["durability"]) if spec["durability"]["type"] == "replicate" else []
        self._g(host, "volume", "add-brick", spec["name"], *layout,
                *[self._brick_arg(b) for b in new_bricks], "force")
        try:
            # Heketi rebalances after adding a brick set; a failure here does not undo the expansion.
            self._g(host, "volume", "rebalance", spec["name"], "start")
        except ExecError as err:
            self.log(f"rebalance of {spec['name']} failed (ignored): {err}")

    def expand_rollback(self, spec, new_bricks):
        present = self._volume_bricks(spec["name"], spec["hosts"][0]) or set()
        if not any(self._brick_arg(b) in present for b in new_bricks):
            self._remove_brick_dirs(new_bricks)

    def expand_cleanup(self, spec, new_bricks) -> bool:
        """For a stale expansion: True if gluster already has the new bricks (keep them)."""
        present = self._volume_bricks(spec["name"], spec["hosts"][0]) or set()
        if all(self._brick_arg(b) in present for b in new_bricks):
            return True
        self._remove_brick_dirs(new_bricks)
        return False

    def clone(self, src_spec, clone_spec):
        """Heketi clones through a gluster snapshot, which needs thin-LVM bricks. Directory
        bricks cannot be snapshotted, so this creates a new volume with the same layout and
        copies the data over two temporary FUSE mounts."""
        host = src_spec["hosts"][0]
        self.create(clone_spec)
        with tempfile.TemporaryDirectory(prefix="heketi-clone-") as tmp:
            src_dir, dst_dir = os.path.join(tmp, "src"), os.path.join(tmp, "dst")
            os.mkdir(src_dir)
            os.mkdir(dst_dir)
            mounted = []
            try:
                for name, path in ((src_spec["name"], src_dir), (clone_spec["name"], dst_dir)):
                    self._run(["mount", "-t", "glusterfs", f"{host}:/{name}", path], host, timeout=60)
                    mounted.append(path)
                self._run(["cp", "-a", "--", f"{src_dir}/.", f"{dst_dir}/"], host, timeout=600)
            finally:
                for path in reversed(mounted):
                    try:
                        self._run(["umount", path], host, timeout=60)
                    except ExecError:
                        self._run(["umount", "-l", path], host, timeout=60)
