"""Request bodies the benchmarks send: the seed's example row, and reproducible random rows."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

# The seed's example payload (its write-up's curl example), as tests/conftest.py has it.
SEED_ROW: dict[str, float] = {
    "nicheAlignment": 0.85, "audienceMatch": 0.75, "engagementRate": 0.90, "brandFit": 0.80,
    "locationMatch": 0.70, "budgetAlignment": 0.85, "contentQuality": 0.88, "responseRate": 0.92,
    "accountAge": 0.75, "activityScore": 0.85, "networkStrength": 0.70, "mutualConnections": 0.60,
    "profileCompletion": 0.95, "portfolioQuality": 0.85, "postingConsistency": 0.80,
    "contentEngagement": 0.88, "connectionDiversity": 0.65, "lastActiveScore": 0.90,
    "connectionAcceptance": 0.75,
}  # fmt: skip
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
