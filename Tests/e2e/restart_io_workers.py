"""The I/O worker processes of the restart harness: what runs in them. TEST SUPPORT ONLY.

restart_harness.py runs them (`writer`, `reader`, `verify` entry points; restart_io.py starts and
stops them). The writer appends 64 KiB blocks (header: magic, sequence number, SHA-256 of the
payload) to files in a directory, fsyncing each; the reader follows the files and checks every
block; verify reads back every block a writer acknowledged. Each records every error with its
errno in a JSON state file. Separate processes, so a hung FUSE read cannot hang pytest.

Standard library only: they start fast.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import struct
import time
from pathlib import Path

BLOCK_SIZE = 64 * 1024
MAGIC = b"GCSIBLK1"
HEADER = struct.Struct("<8sQ32s")  # magic, sequence number, SHA-256 of the payload
PAYLOAD_SIZE = BLOCK_SIZE - HEADER.size
BLOCKS_PER_FILE = 32  # 2 MiB files: the writer keeps creating files, not only appending
STATE_INTERVAL = 0.1  # seconds between state file writes
MAX_RECORDED_ERRORS = 200


class _State:
    """A worker's state, written atomically to its JSON file at most every STATE_INTERVAL."""

    def __init__(self, path: Path, role: str):
        self.path = path
        self.data = {"role": role, "pid": os.getpid(), "started": time.time(), "errors": [], "error_count": 0,
                     "done": False}
        self.written = 0.0

    def error(self, op: str, error: OSError | None, where: str = "", detail: str = ""):
        self.data["error_count"] += 1
        if len(self.data["errors"]) < MAX_RECORDED_ERRORS:
            record = {"t": time.time(), "op": op, "where": where}
            if error is not None:
                record.update(errno=error.errno, name=errno.errorcode.get(error.errno or 0, str(error.errno)),
                              message=error.strerror)
            if detail:
                record["detail"] = detail
            self.data["errors"].append(record)
        if self.data["error_count"] == 1:
            self.flush(force=True)

    def flush(self, force: bool = False):
        now = time.monotonic()
        if not force and now - self.written < STATE_INTERVAL:
            return
        self.written = now
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(self.data))
        os.replace(temporary, self.path)


def _stop_flag() -> list[bool]:
    flag = [False]

    def handler(signum, frame):
        flag[0] = True
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return flag


def make_block(sequence: int) -> bytes:
    payload = os.urandom(PAYLOAD_SIZE)
    return HEADER.pack(MAGIC, sequence, hashlib.sha256(payload).digest()) + payload


def check_block(data: bytes) -> int | str:
    """The block's sequence number, or what is wrong with it."""
    if len(data) != BLOCK_SIZE:
        return f"short block ({len(data)} bytes)"
    magic, sequence, digest = HEADER.unpack_from(data)
    if magic != MAGIC:
        return f"bad magic {magic!r}"
    if hashlib.sha256(data[HEADER.size:]).digest() != digest:
        return f"checksum mismatch (sequence {sequence})"
    return sequence


def writer_main(argv: list[str]):
    """`writer DIR STATE PREFIX INTERVAL`: appends checksummed blocks to DIR/PREFIX-NNNNN.blk, fsync
    after each. A file gets BLOCKS_PER_FILE blocks; after an error the writer records it, drops the
    file and goes on in a new one, so the files stay readable."""
    directory, state_path, prefix, interval = Path(argv[0]), Path(argv[1]), argv[2], float(argv[3])
    stop = _stop_flag()
    state = _State(state_path, "writer")
    files: dict[str, dict] = {}
    state.data.update(files=files, acked=0, last_ok=None, max_gap=0.0)
    sequence, index, fd, name = 0, 0, None, None
    last_ok = time.monotonic()
    while not stop[0]:
        op = "open"
        try:
            if fd is None:
                name = f"{prefix}-{index:05d}.blk"
                fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                files[name] = {"first": sequence, "acked": 0}
            op = "write"
            block = make_block(sequence)
            written = os.write(fd, block)
            if written != len(block):
                raise OSError(errno.EIO, f"short write: {written} of {len(block)} bytes")
            op = "fsync"
            os.fsync(fd)
            now = time.monotonic()
            state.data["max_gap"] = max(state.data["max_gap"], now - last_ok)
            last_ok = now
            files[name]["acked"] += 1
            state.data["acked"] += 1
            state.data["last_ok"] = time.time()
            sequence += 1
            if files[name]["acked"] >= BLOCKS_PER_FILE:
                op = "close"
                os.close(fd)
                fd, index = None, index + 1
        except OSError as error:
            state.error(op, error, name or "")
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
            fd, index = None, index + 1
            time.sleep(0.05)
        state.flush()
        if interval:
            time.sleep(interval)
    if fd is not None:
        try:
            os.close(fd)
        except OSError as error:
            state.error("close", error, name or "")
    state.data["done"] = True
    state.flush(force=True)


def _blk_names(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".blk"))


def reader_main(argv: list[str]):
    """`reader DIR STATE`: follows every .blk file in DIR and checks each complete block (the last
    block of each writer's newest file only once the writer has moved on). Page cache is dropped
    before reading, so reads reach the glusterfs client."""
    directory, state_path = Path(argv[0]), Path(argv[1])
    stop = _stop_flag()
    state = _State(state_path, "reader")
    state.data.update(verified=0, passes=0, bad=[])
    offsets: dict[str, int] = {}
    while not stop[0]:
        try:
            names = _blk_names(directory)
        except OSError as error:
            state.error("listdir", error, str(directory))
            state.flush()
            time.sleep(0.05)
            continue
        newest = {}
        for name in names:
            newest[name.rsplit("-", 1)[0]] = name
        for name in names:
            if stop[0]:
                break
            op = "open"
            try:
                fd = os.open(directory / name, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    op = "fstat"
                    size = os.fstat(fd).st_size
                    limit = size - (BLOCK_SIZE if newest.get(name.rsplit("-", 1)[0]) == name else 0)
                    offset = offsets.get(name, 0)
                    if offset + BLOCK_SIZE <= limit:
                        os.posix_fadvise(fd, offset, limit - offset, os.POSIX_FADV_DONTNEED)
                    while offset + BLOCK_SIZE <= limit and not stop[0]:
                        op = "read"
                        data = os.pread(fd, BLOCK_SIZE, offset)
                        if len(data) < BLOCK_SIZE:
                            break
                        checked = check_block(data)
                        if isinstance(checked, str) and len(state.data["bad"]) < MAX_RECORDED_ERRORS:
                            state.data["bad"].append({"t": time.time(), "file": name, "block": offset // BLOCK_SIZE,
                                                      "problem": checked})
                        offset += BLOCK_SIZE
                        state.data["verified"] += 1
                    offsets[name] = offset
                finally:
                    os.close(fd)
            except OSError as error:
                state.error(op, error, name)
        state.data["passes"] += 1
        state.flush()
        time.sleep(0.02)
    state.data["done"] = True
    state.flush(force=True)


def verify_main(argv: list[str]):
    """`verify DIR RESULT WRITER_STATE...`: every acknowledged block of every writer, in order and
    intact; bytes after the acknowledged blocks of a file are reported as its tail."""
    directory, result_path, writer_states = Path(argv[0]), Path(argv[1]), [Path(p) for p in argv[2:]]
    state = _State(result_path, "verify")
    state.data.update(files=0, blocks_ok=0, missing=[], corrupt=[], tails={})
    for writer_state in writer_states:
        files = json.loads(writer_state.read_text())["files"]
        for name, info in sorted(files.items()):
            state.data["files"] += 1
            op = "open"
            try:
                fd = os.open(directory / name, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    size = os.fstat(fd).st_size
                    os.posix_fadvise(fd, 0, size, os.POSIX_FADV_DONTNEED)
                    for block in range(info["acked"]):
                        op = "read"
                        data = os.pread(fd, BLOCK_SIZE, block * BLOCK_SIZE)
                        checked = check_block(data)
                        expected = info["first"] + block
                        if checked == expected:
                            state.data["blocks_ok"] += 1
                        elif len(data) < BLOCK_SIZE:
                            state.data["missing"].append({"file": name, "block": block, "got": len(data)})
                        else:
                            state.data["corrupt"].append({"file": name, "block": block, "expected": expected,
                                                          "problem": checked})
                    tail = size - info["acked"] * BLOCK_SIZE
                    if tail:
                        state.data["tails"][name] = tail
                finally:
                    os.close(fd)
            except OSError as error:
                state.error(op, error, name)
    state.data["done"] = True
    state.flush(force=True)
