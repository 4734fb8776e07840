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
# A RandomForest on another feature set (5 features, other ranges): see scripts/build_fixture.py.
OTHER_VERSION = "20260103_000000"
FEATURE_NAMES = [
    f["name"] for f in json.loads((ROOT / "schemas" / "features.default.json").read_text())["features"]
]
# The seed's example payload (its write-up's curl example).
SEED_ROW: dict[str, float] = json.loads((ROOT / "schemas" / "examples" / "predict.request.json").read_text())


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A writable copy of the committed fixture store (ACTIVE = the RandomForest version)."""
    target = tmp_path / "store"
    shutil.copytree(FIXTURE_STORE, target)
    return target


@pytest.fixture
def row() -> dict[str, Any]:
    return dict(SEED_ROW)
