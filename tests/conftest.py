"""Fixtures shared by every suite: a private copy of the fixture store and a valid feature row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_STORE = ROOT / "tests" / "fixtures" / "store"
RF_VERSION = "20260101_000000"
GB_VERSION = "20260102_000000"
FEATURE_NAMES = [
    f["name"] for f in json.loads((ROOT / "schemas" / "features.default.json").read_text())["features"]
]
# The seed's example payload.
SEED_ROW: dict[str, float] = {
    "nicheAlignment": 0.85, "audienceMatch": 0.75, "engagementRate": 0.90, "brandFit": 0.80,
    "locationMatch": 0.70, "budgetAlignment": 0.85, "contentQuality": 0.88, "responseRate": 0.92,
    "accountAge": 0.75, "activityScore": 0.85, "networkStrength": 0.70, "mutualConnections": 0.60,
    "profileCompletion": 0.95, "portfolioQuality": 0.85, "postingConsistency": 0.80,
    "contentEngagement": 0.88, "connectionDiversity": 0.65, "lastActiveScore": 0.90,
    "connectionAcceptance": 0.75,
}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A writable copy of the committed fixture store (ACTIVE = the RandomForest version)."""
    target = tmp_path / "store"
    shutil.copytree(FIXTURE_STORE, target)
    return target


@pytest.fixture
def row() -> dict[str, Any]:
    return dict(SEED_ROW)
