"""Prediction ids: UUIDv7 (RFC 9562), unique across processes and sortable by the time they were made.

``unix_ts_ms`` (48 bits) · version 7 · a 12-bit counter within the millisecond · variant · 62 bits
of which 30 are random for the process and 32 count: sortable within a process, and two processes
collide only if they drew the same 30-bit prefix in the same millisecond at the same count. The
request path pays one integer format, not a call to ``os.urandom`` (Python's ``uuid`` has no v7
before 3.14).
"""

from __future__ import annotations

import os
import re
import threading
import time

UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


class PredictionIds:
    """A source of UUIDv7 strings, strictly increasing within the process (thread-safe)."""

    def __init__(self) -> None:
        self._prefix = int.from_bytes(os.urandom(4), "big") & 0x3FFF_FFFF
        self._last = 0
        self._count = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last:  # the same millisecond (or the clock went back): count on
                ms = self._last
                self._count += 1
            else:
                self._last, self._count = ms, 0
            count = self._count
        sub_ms, rest = (count >> 32) & 0xFFF, count & 0xFFFF_FFFF
        value = (ms << 80) | (0x7 << 76) | (sub_ms << 64) | (0b10 << 62) | (self._prefix << 32) | rest
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_prediction_id(text: str) -> bool:
    return UUID7.fullmatch(text) is not None
