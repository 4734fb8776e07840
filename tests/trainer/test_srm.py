"""The sample-ratio-mismatch check: its p-value against statsmodels (an independent implementation),
its false-alarm rate measured by simulation, and its power at the issue's 52/48 over 25,000 units."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.gof import chisquare as statsmodels_chisquare

from ml_matching.trainer.experiment_view import SRM_MIN_UNITS, srm_test

ALPHA = 0.001  # the threshold the check is read at


@pytest.mark.parametrize("weights", [(5000, 5000), (9000, 1000), (6000, 2500, 1500)])
def test_the_p_value_is_statsmodels_chisquare(weights: tuple[int, ...]) -> None:
    rng = np.random.default_rng(7)
    arms = [f"a{i}" for i in range(len(weights))]
    for _ in range(20):
        counts = rng.multinomial(5000, np.array(weights) / 10_000)
        ours = srm_test(dict(zip(arms, weights, strict=True)), dict(zip(arms, counts.tolist(), strict=True)))
        expected = 5000 * np.array(weights) / 10_000
        _, theirs = statsmodels_chisquare(counts, expected)
        assert ours.p_value == pytest.approx(theirs, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("weights", [(5000, 5000), (9500, 500)])
def test_false_alarms_stay_at_alpha(weights: tuple[int, int]) -> None:
    """5,000 A/A experiments of 10,000 units assigned at the design weights: the number flagged at
    α = 0.001 is within the 99.9 % binomial interval of 5,000 × α (at most 14)."""
    rng = np.random.default_rng(11)
    p = np.array(weights) / 10_000
    flagged = 0
    trials = 5_000
    for counts in rng.multinomial(10_000, p, size=trials):
        result = srm_test(
            {"control": weights[0], "candidate": weights[1]},
            {"control": int(counts[0]), "candidate": int(counts[1])},
        )
        flagged += result.p_value is not None and result.p_value < ALPHA
    assert flagged <= 14, flagged


def test_52_48_over_25000_units_is_flagged() -> None:
    assert (
        srm_test({"control": 5000, "candidate": 5000}, {"control": 13_000, "candidate": 12_000}).p_value
        < 1e-6
    )  # type: ignore[operator]


def test_too_few_units_and_impossible_arms() -> None:
    few = srm_test({"control": 5000, "candidate": 5000}, {"control": SRM_MIN_UNITS - 2, "candidate": 1})
    assert few.p_value is None and "fewer than" in (few.note or "")
    impossible = srm_test({"control": 10_000, "candidate": 0}, {"control": 500, "candidate": 3})
    assert impossible.p_value == 0.0 and "weight 0" in (impossible.note or "")
