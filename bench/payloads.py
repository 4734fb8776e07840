"""Request bodies the benchmarks send: the seed's example row, and reproducible random rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

# The seed's example payload (its write-up's curl example), shared with the tests.
SEED_ROW: dict[str, float] = json.loads(
    (Path(__file__).resolve().parent.parent / "schemas" / "examples" / "predict.request.json").read_text()
)
RESPONSE_KEYS = frozenset({"score", "confidence", "successProbability", "featureImportance", "modelVersion"})


def seed_body() -> bytes:
    return msgspec.json.encode(SEED_ROW)


def random_rows(n: int, names: list[str] | tuple[str, ...], seed: int = 20260101) -> list[dict[str, float]]:
    """``n`` rows of uniform [0, 1] values with 4 decimals (the size of real payloads), fixed seed."""
    x = np.round(np.random.default_rng(seed).random((n, len(names))), 4)
    return [dict(zip(names, map(float, row), strict=True)) for row in x]


def batch_body(n: int, names: list[str] | tuple[str, ...]) -> bytes:
    return msgspec.json.encode({"instances": random_rows(n, names)})


def matrix(rows: list[dict[str, Any]], names: list[str] | tuple[str, ...], dtype: Any) -> np.ndarray:
    return np.array([[r[n] for n in names] for r in rows], dtype=dtype)
