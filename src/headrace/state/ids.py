"""Run ids: short, sortable by creation time, safe for any pipeline name.

A run is *keyed* by (pipeline, logical_date); the id is only a handle. Building it
from the pipeline name and date would break on names with odd characters and leak
time zones into ids, so it is ULID-like instead: 10 characters of milliseconds since
the epoch and 8 random ones, in lower-case Crockford base32 (no i, l, o, u).
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_TIME_CHARS = 10  # 50 bits of milliseconds: good until the year 37 000
_RANDOM_CHARS = 8  # 40 random bits


def new_run_id(now_ns: int | None = None) -> str:
    """A new 18-character run id such as ``01jdx3k6m2q8v4c7zt``.

    Args:
        now_ns: the creation time in nanoseconds since the epoch (default: now).

    Returns:
        Ids from later milliseconds sort after earlier ones.
    """
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    value = (ms << (5 * _RANDOM_CHARS)) | int.from_bytes(os.urandom(5), "big")
    chars = []
    for _ in range(_TIME_CHARS + _RANDOM_CHARS):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))
