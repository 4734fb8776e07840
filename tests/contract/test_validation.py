"""The trainer's batch check of feature rows (numpy, all at once) finds the row, and gives the reason,
that checking each row alone (``row_problem``) does; and scored rows (float32 values, the ledger's)
pass at bounds float32 cannot hold."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from ml_matching.contract import Feature, FeatureSet, default_feature_set
from ml_matching.contract.features import feature_mismatch
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


# Bounds float32 cannot hold (0.1, 0.7, 0.3), and none at all.
EDGED = FeatureSet(
    (
        Feature("a", min=0.0, max=0.1),
        Feature("b", min=0.7, max=1.0),
        Feature("c", max=0.3),
        Feature("d"),
    )
)


def f32(value: float) -> float:
    """``value`` as a model scores it (the runtimes record this in the ledger)."""
    return float(np.float32(value))


def test_a_scored_value_at_a_bound_float32_cannot_hold_passes_only_when_scored() -> None:
    row = {"a": f32(0.1), "b": f32(0.7), "c": f32(0.3), "d": -1e30}
    assert (row["a"], row["b"], row["c"]) == (0.10000000149011612, 0.699999988079071, 0.30000001192092896)
    assert row_problem(row, EDGED, scored=True) is None
    assert first_bad_row([row], EDGED, scored=True) is None
    assert row_problem(row, EDGED) == "feature `a`: value 0.10000000149011612 is outside [0, 0.1]"
    # The next float32 past a bound is past it as float32 too; the reason names it, not a rounded one.
    beyond = {**row, "b": float(np.nextafter(np.float32(0.7), np.float32(0)))}
    assert first_bad_row([row, beyond], EDGED, scored=True) == (
        1,
        "feature `b`: value 0.6999999284744263 is outside [0.7, 1]",
    )


@pytest.mark.parametrize("seed", range(8))
def test_scored_rows_bulk_check_is_the_loops(seed: int) -> None:
    rng = random.Random(seed)
    edges = [f32(0.1), f32(0.7), f32(0.3), float(np.nextafter(np.float32(0.1), np.float32(1))), 0.1, 0.7]
    spoilers = [
        *edges,
        math.nan,
        1e39,
        3.4028235e38,
        -0.0,
        1.0000001,
        "0.5",
        None,
    ]  # 3.4028235e38 rounds to float32's max
    for _ in range(30):
        rows: list[dict[str, Any]] = [
            {
                "a": rng.uniform(0, 0.1),
                "b": rng.uniform(0.7, 1),
                "c": rng.uniform(-5, 0.3),
                "d": rng.gauss(0, 9),
            }
            for _ in range(rng.randint(1, 40))
        ]
        for _ in range(rng.randint(0, 4)):
            rows[rng.randrange(len(rows))][rng.choice("abcd")] = rng.choice(spoilers)
        for scored in (False, True):
            loop = next(((i, p) for i, r in enumerate(rows) if (p := row_problem(r, EDGED, scored))), None)
            assert first_bad_row(rows, EDGED, scored) == loop


def test_versions_that_answer_one_request_must_declare_the_same_features_and_ranges() -> None:
    # The Node client's featureMismatch (clients/node/test/validate.test.js) says the same words.
    base = FeatureSet((Feature("x", min=0.0, max=1.0), Feature("y", min=0.5), Feature("z")))
    assert feature_mismatch(base, base, "control v1") is None
    other = FeatureSet((Feature("x", min=0.0, max=1.0), Feature("w")))
    assert feature_mismatch(other, base, "control v1") == "it scores other features than control v1"
    ranged = FeatureSet((Feature("x", min=0.0, max=1.0), Feature("y", max=0.25), Feature("z", min=-1.0)))
    assert feature_mismatch(ranged, base, "the served v2") == (
        "it declares `y` over (-Infinity, 0.25], where the served v2 declares [0.5, Infinity)"
    )
