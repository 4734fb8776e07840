"""What a run does (durations, repetitions, sizes), where it works, and its progress log."""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVE_ROWS = 5_000  # the runtime's store: the serve session's default data size, also the 5k fit point


@dataclass(frozen=True)
class Plan:
    quick: bool
    http_seconds: int
    http_reps: int
    warmup_seconds: int
    ready_reps: int
    batch_seconds: int
    batch_reps: int
    batch_threads: int
    batch_connections: int
    train_reps: dict[int, int]  # rows → repetitions

    @classmethod
    def make(cls, quick: bool, seconds: int | None, reps: int | None) -> Plan:
        http_reps = reps or (1 if quick else 3)
        return cls(
            quick=quick,
            http_seconds=seconds or (2 if quick else 10),
            http_reps=http_reps,
            warmup_seconds=1 if quick else 3,
            ready_reps=1 if quick else 3,
            batch_seconds=seconds or (2 if quick else 10),
            batch_reps=http_reps,
            batch_threads=1,
            batch_connections=4,
            train_reps={1_000: 1, SERVE_ROWS: 1}
            if quick
            else {1_000: 3, SERVE_ROWS: 3, 10_000: 3, 100_000: 1},
        )


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))
