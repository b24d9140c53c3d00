"""Shared constants and errors of the Heketi test server -- TEST SUPPORT ONLY.

Units follow Heketi: volume sizes in GiB, brick and device sizes in KiB.
"""

from __future__ import annotations

import re
import secrets

KIB_PER_GIB = 1024 * 1024
EXTENT_SIZE = 4096  # KiB, LVM extent used to align thin pools
MAX_POOL_METADATA = 16 * KIB_PER_GIB
CREATE_TRIES = 5  # Heketi retries a failing create/clone executor step (5 tries in all)

VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
HEX_ID_RE = re.compile(r"^[0-9a-fA-F]{32}$")

ERR_NO_SPACE = "No space"
ERR_MAX_BRICKS = "Maximum number of bricks reached."
ERR_MIN_BRICK = "Minimum brick size limit reached.  Out of space."
ERR_CONFLICT = "The target exists, contains other items, or is in use."

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
