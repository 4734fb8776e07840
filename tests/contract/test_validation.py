"""The trainer's batch check of feature rows (numpy, all at once) finds the row, and gives the reason,
that checking each row alone (``row_problem``) does."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from ml_matching.contract import default_feature_set
from ml_matching.contract.validation import first_bad_row, row_problem

FS = default_feature_set()


def _one_at_a_time(rows: list[dict[str, Any]]) -> tuple[int, str] | None:
    for i, row in enumerate(rows):
        problem = row_problem(row, FS)
        if problem:
            return i, problem
    return None


def _valid(rng: random.Random) -> dict[str, Any]:
    return {f.name: rng.uniform(f.min or 0.0, f.max or 1.0) for f in FS.features}


SPOILERS = [
    lambda r, name: r.__setitem__(name, math.nan),
    lambda r, name: r.__setitem__(name, math.inf),
    lambda r, name: r.__setitem__(name, -math.inf),
    lambda r, name: r.__setitem__(name, 1.0000001),
    lambda r, name: r.__setitem__(name, -1e-9),
    lambda r, name: r.pop(name, None),
    lambda r, name: r.__setitem__("notAFeature", 0.5),
    lambda r, name: r.__setitem__(name, "0.5"),
    lambda r, name: r.__setitem__(name, True),
    lambda r, name: r.__setitem__(name, None),
    lambda r, name: r.__setitem__(name, 1),  # an int within range is a valid value
]


@pytest.mark.parametrize("spoil", range(len(SPOILERS)))
def test_the_first_bad_row_and_its_reason_are_the_loops(spoil: int) -> None:
    rng = random.Random(spoil)
    for _ in range(20):
        rows = [_valid(rng) for _ in range(rng.randint(1, 60))]
        for _ in range(rng.randint(0, 3)):  # zero to three bad rows, anywhere
            SPOILERS[spoil](rows[rng.randrange(len(rows))], rng.choice(FS.names))
        assert first_bad_row(rows, FS) == _one_at_a_time(rows)


def test_valid_rows_and_bounds_pass() -> None:
    rows = [{f.name: f.min or 0.0 for f in FS.features}, {f.name: f.max or 1.0 for f in FS.features}]
    assert first_bad_row(rows, FS) is None and first_bad_row([], FS) is None
