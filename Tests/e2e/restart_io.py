"""Live I/O through the restart harness's mounts: starting and stopping the worker processes
(restart_io_workers.py), waiting for their progress, and judging what they recorded. TEST
SUPPORT ONLY. Every wait on a worker has a deadline.
"""

from __future__ import annotations

import errno
import json
import signal
import subprocess
from pathlib import Path

from restart_system import harness_argv, wait_until

# What a client that died does to I/O through its mount (the driver's probe treats these as dead).
DEAD_MOUNT_ERRNOS = {errno.ENOTCONN, errno.ECONNABORTED, errno.EIO, errno.ESTALE, errno.EHOSTDOWN}


class Worker:
    """A writer, reader or verify process (restart_io_workers.py, run by restart_harness.py) and its
    JSON state file."""

    def __init__(self, role: str, directory: Path, state: Path, *args: str):
        self.role = role
        self.state_path = state
        state.unlink(missing_ok=True)
        with open(str(state) + ".stderr", "ab") as stderr:
            self.process = subprocess.Popen(
                harness_argv(role, str(directory), str(state), *args), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=stderr, cwd="/", start_new_session=True)

    def state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}

    def stderr(self) -> str:
        try:
            return Path(str(self.state_path) + ".stderr").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0, unstick=None) -> dict:
        """SIGTERM (the worker finishes its block and writes its final state); SIGKILL after `timeout`.
        `unstick()` is called when it does not exit even then (a hung FUSE request): it should abort
        the mount's FUSE connection. Returns the final state, with "hung": True if it had to be
        killed."""
        hung = False
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                hung = True
                self.process.kill()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    if unstick:
                        unstick()
                    self.process.wait(timeout=30)
        state = self.state()
        if hung:
            state["hung"] = True
        return state


def start_writer(directory: Path, state: Path, prefix: str = "w", interval: float = 0.005) -> Worker:
    return Worker("writer", directory, state, prefix, str(interval))


def start_reader(directory: Path, state: Path) -> Worker:
    return Worker("reader", directory, state)


def verify(directory: Path, writer_states: list[Path], result: Path, timeout: float = 120.0) -> dict:
    """Reads every file the writers wrote and checks every block they acknowledged (fsync returned)
    is there, in order and intact. Runs as a process of its own, bounded by `timeout`."""
    worker = Worker("verify", directory, result, *map(str, writer_states))
    try:
        worker.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        worker.process.kill()
        worker.process.wait(timeout=30)
        return {"hung": True, "errors": [{"op": "verify", "detail": f"did not finish within {timeout:.0f} s"}]}
    state = worker.state()
    if not state.get("done"):
        return {"errors": [{"op": "verify", "detail": f"exited {worker.process.returncode}: {worker.stderr()}"}]}
    return state


class IOLoad:
    """A writer and a reader per directory (each a process), and the verification afterwards."""

    def __init__(self, directories: list[Path], state_dir: Path, interval: float = 0.005):
        self.directories = directories
        self.state_dir = state_dir
        self.interval = interval
        self.writers: list[Worker] = []
        self.readers: list[Worker] = []
        self.final: dict[str, dict] = {}

    def start(self) -> "IOLoad":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for index, directory in enumerate(self.directories):
            directory.mkdir(parents=True, exist_ok=True)
            self.writers.append(start_writer(directory, self.state_dir / f"writer-{index}.json",
                                             interval=self.interval))
            self.readers.append(start_reader(directory, self.state_dir / f"reader-{index}.json"))
        return self

    def workers(self) -> list[Worker]:
        return [*self.writers, *self.readers]

    def wait_for_progress(self, blocks: int, timeout: float = 30.0, since: dict | None = None,
                          until_error: bool = False) -> bool:
        """Until every writer acknowledged and every reader checked `blocks` more blocks than in
        `since` (per worker): True. With `until_error`, False as soon as any worker records an error
        after `since`; otherwise TimeoutError (with the errors seen) after `timeout`."""
        since = since or self.mark()

        def progressed():
            for worker in self.workers():
                if worker.process.poll() is not None:
                    raise RuntimeError(f"{worker.role} exited with {worker.process.returncode}: {worker.stderr()}")
            now = self.mark()
            if until_error and now["errors"] > since["errors"]:
                return "errors"
            return all(a - b >= blocks for a, b in zip(now["w"], since["w"])) and \
                all(a - b >= blocks for a, b in zip(now["r"], since["r"]))
        try:
            outcome = wait_until(progressed, timeout, interval=0.05, what=f"{blocks} more blocks written and read")
        except TimeoutError as error:
            raise TimeoutError(f"{error}; errors so far: {describe_errors(self.states())}") from None
        return outcome is True

    def mark(self) -> dict:
        """Per-worker counters now, for wait_for_progress(since=...)."""
        writers = [w.state() for w in self.writers]
        readers = [r.state() for r in self.readers]
        return {"w": [s.get("acked", 0) for s in writers], "r": [s.get("verified", 0) for s in readers],
                "errors": sum(s.get("error_count", 0) for s in writers + readers)}

    def states(self) -> dict[str, dict]:
        if self.final:
            return self.final
        out = {}
        for index, (writer, reader) in enumerate(zip(self.writers, self.readers)):
            out[f"writer-{index}"] = writer.state()
            out[f"reader-{index}"] = reader.state()
        return out

    def stop(self, timeout: float = 20.0, unstick=None) -> dict[str, dict]:
        """Stops every worker (writers first); returns their final states by name."""
        for index, worker in enumerate(self.writers):
            self.final[f"writer-{index}"] = worker.stop(timeout, unstick)
        for index, worker in enumerate(self.readers):
            self.final[f"reader-{index}"] = worker.stop(timeout, unstick)
        return self.final

    def verify(self, timeout: float = 120.0) -> list[dict]:
        return [verify(directory, [writer.state_path], self.state_dir / f"verify-{index}.json", timeout)
                for index, (directory, writer) in enumerate(zip(self.directories, self.writers))]


def verification_problems(results: list[dict], tails_allowed: bool = False) -> list[str]:
    problems = []
    for index, result in enumerate(results):
        for key in ("missing", "corrupt", "errors"):
            if result.get(key):
                problems.append(f"volume {index}: {key}: {result[key][:5]}")
        if result.get("tails") and not tails_allowed:
            problems.append(f"volume {index}: bytes after the acknowledged blocks: {result['tails']}")
        if result.get("hung"):
            problems.append(f"volume {index}: verification hung")
    return problems


def errors_after(state: dict, moment: float) -> list[dict]:
    return [e for e in state.get("errors", []) if e.get("t", 0) >= moment]


def describe_errors(states: dict[str, dict], per_worker: bool = True) -> str:
    """One entry per kind of error recorded (the first MAX_RECORDED_ERRORS of each worker: see
    restart_io_workers.py): worker (or only its role), operation, errno name, count."""
    counts: dict[tuple, int] = {}
    for role, state in states.items():
        for error in state.get("errors", []):
            who = role if per_worker else role.split("-")[0]
            key = (who, error.get("op"), error.get("name", error.get("detail", "")))
            counts[key] = counts.get(key, 0) + 1
    return "; ".join(f"{role} {op} {name} ×{n}" for (role, op, name), n in sorted(counts.items())) or "none"
