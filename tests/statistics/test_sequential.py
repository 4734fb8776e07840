"""The decision rule, the refusal to decide on too little data, the empirical-Bernstein CS against a
plain loop over the paper's definitions, and the SRM Bayes factor against scipy's pmfs."""

from __future__ import annotations

import math
import subprocess
import sys

import msgspec
import numpy as np
import pytest
from scipy import stats

from ml_matching.trainer.sequential import (
    MIN_N,
    ConfidenceSequence,
    paired_cs,
    paired_eb_path,
    split_cs,
    srm_log_bayes_factor,
    srm_sequential,
    srm_sequential_path,
    verdict,
)


def _cs(lower: float, upper: float) -> ConfidenceSequence:
    return ConfidenceSequence((lower + upper) / 2, lower, upper, 1_000, 0.05, "test")


@pytest.mark.parametrize(
    ("lower", "upper", "lower_is_better", "test", "expected"),
    [
        # a loss, margin 0.02: worse is positive
        (0.03, 0.05, True, "nonInferiority", "harm"),
        (0.01, 0.05, True, "nonInferiority", "inconclusive"),
        (-0.01, 0.019, True, "nonInferiority", "noninferior"),
        (-0.05, -0.01, True, "nonInferiority", "noninferior"),
        (-0.05, -0.01, True, "superiority", "superior"),
        (-0.05, 0.01, True, "superiority", "noninferior"),
        (
            -0.05,
            0.02,
            True,
            "superiority",
            "inconclusive",
        ),  # strictly inside: the margin itself is not enough
        # a success rate, margin 0.02: worse is negative
        (-0.05, -0.03, False, "nonInferiority", "harm"),
        (-0.019, 0.01, False, "nonInferiority", "noninferior"),
        (0.01, 0.05, False, "superiority", "superior"),
        (0.01, 0.05, False, "nonInferiority", "noninferior"),
        (-0.03, 0.05, False, "superiority", "inconclusive"),
        # no information
        (-math.inf, math.inf, True, "superiority", "inconclusive"),
        (math.nan, math.nan, False, "nonInferiority", "inconclusive"),
        (math.nan, 0.5, True, "nonInferiority", "inconclusive"),
    ],
)
def test_the_verdict_table(
    lower: float, upper: float, lower_is_better: bool, test: str, expected: str
) -> None:
    assert verdict(_cs(lower, upper), lower_is_better, 0.02, test) == expected  # type: ignore[arg-type]


def test_margin_zero_harm_needs_the_whole_cs_on_the_worse_side() -> None:
    assert verdict(_cs(0.0, 0.1), True, 0.0, "nonInferiority") == "inconclusive"
    assert verdict(_cs(1e-9, 0.1), True, 0.0, "nonInferiority") == "harm"
    assert verdict(_cs(-0.1, -1e-9), True, 0.0, "nonInferiority") == "noninferior"


def test_bad_settings_raise_but_bad_data_never_does() -> None:
    with pytest.raises(ValueError, match="margin"):
        verdict(_cs(0, 1), True, -0.1, "nonInferiority")
    with pytest.raises(ValueError, match="margin"):
        verdict(_cs(0, 1), True, math.nan, "nonInferiority")
    with pytest.raises(ValueError, match="test"):
        verdict(_cs(0, 1), True, 0.0, "equivalence")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        split_cs([1.0] * 50, [0.0] * 50, 0.0)
    for cs in (
        split_cs([], [], 0.05),
        split_cs([np.nan] * 100, [1.0, 0.0] * 50, 0.05),
        split_cs(np.r_[np.ones(MIN_N), np.zeros(MIN_N)], np.ones(MIN_N - 1), 0.05),
        split_cs(np.zeros(500), np.zeros(500), 0.05),  # no variation yet: no bound
        paired_cs([], 13.8, 0.05),
        paired_cs(np.zeros(1_000), 13.8, 0.05),  # a shadow identical to its champion
        paired_cs([0.1, -0.1] * 10, 1.0, 0.05, method="empirical-bernstein"),
    ):
        assert (cs.lower, cs.upper) == (None, None)
        assert verdict(cs, True, 0.0, "superiority") == "inconclusive"
    nan_left_out = split_cs(np.r_[np.zeros(60), np.ones(40), np.nan], np.r_[np.ones(50), np.zeros(50)], 0.05)
    assert (nan_left_out.n_control, nan_left_out.n_candidate, nan_left_out.n) == (100, 100, 200)
    assert nan_left_out.lower is not None and nan_left_out.upper is not None


def test_the_results_encode_as_camel_case_json_and_decode_back() -> None:
    empty = split_cs([], [], 0.05)
    assert msgspec.json.decode(msgspec.json.encode(empty)) == {
        "estimate": None, "lower": None, "upper": None, "n": 0, "alpha": 0.05,
        "method": "asymptotic-cs-normal-mixture-pooled", "nControl": 0, "nCandidate": 0,
    }  # fmt: skip
    full = split_cs([0.0, 1.0] * 50, [1.0, 1.0, 0.0] * 40, 0.05)
    for result in (empty, full, srm_sequential([500, 3], [1, 0]), srm_sequential([50, 50], [1, 1])):
        assert msgspec.json.decode(msgspec.json.encode(result), type=type(result)) == result


def _eb_loop(d: np.ndarray, bound: float, alpha: float, c: float = 0.5) -> tuple[list[float], list[float]]:
    """Waudby-Smith & Ramdas (2024), Theorem 2 (PrPl-EB), step by step on x = (d + B) / 2B."""
    x = (d + bound) / (2 * bound)
    log_term = math.log(2 / alpha)
    mean_prev, var_prev = 0.5, 0.25
    sum_x = sum_sq = sum_lam = sum_lam_x = sum_penalty = 0.0
    low, high = 0.0, 1.0
    lows, highs = [], []
    for t, xt in enumerate(x, start=1):
        lam = min(math.sqrt(2 * log_term / (var_prev * t * math.log(1 + t))), c)
        sum_lam += lam
        sum_lam_x += lam * xt
        sum_penalty += 4 * (xt - mean_prev) ** 2 * (-math.log(1 - lam) - lam) / 4
        sum_x += xt
        mean_prev = (0.5 + sum_x) / (t + 1)
        sum_sq += (xt - mean_prev) ** 2
        var_prev = (0.25 + sum_sq) / (t + 1)
        centre, radius = sum_lam_x / sum_lam, (log_term + sum_penalty) / sum_lam
        low, high = max(low, centre - radius), min(high, centre + radius)
        lows.append(2 * bound * low - bound)
        highs.append(2 * bound * high - bound)
    return lows, highs


def test_the_empirical_bernstein_cs_is_the_papers_definition() -> None:
    rng = np.random.default_rng(31)
    d = np.clip(rng.normal(0.05, 0.3, 1_500), -1, 1)
    _, lower, upper = paired_eb_path(d, 1.0, 0.05)
    lows, highs = _eb_loop(d, 1.0, 0.05)
    assert np.allclose(lower, lows, rtol=0, atol=1e-12) and np.allclose(upper, highs, rtol=0, atol=1e-12)
    last = paired_cs(d, 1.0, 0.05, method="empirical-bernstein")
    assert (last.lower, last.upper) == pytest.approx((lows[-1], highs[-1]), abs=1e-12)


@pytest.mark.parametrize("weights", [(5000, 5000), (9500, 500), (6000, 2500, 1500)])
def test_the_bayes_factor_is_scipys_dirichlet_multinomial_over_multinomial(weights: tuple[int, ...]) -> None:
    rng = np.random.default_rng(32)
    pi = np.array(weights) / sum(weights)
    for _ in range(20):
        n = int(rng.integers(1, 5_000))
        counts = rng.multinomial(n, rng.dirichlet(50 * pi))
        oracle = stats.dirichlet_multinomial.logpmf(counts, 100 * pi, n) - stats.multinomial.logpmf(
            counts, n, pi
        )
        assert float(srm_log_bayes_factor(counts, weights)) == pytest.approx(oracle, rel=1e-9, abs=1e-9)


def test_the_bayes_factor_is_the_product_of_polya_urn_predictions() -> None:
    """The sequence's likelihood ratio, unit by unit: P(next = j) = (a_j + x_j) / (A + n) against π_j."""
    rng = np.random.default_rng(33)
    pi = np.array([0.7, 0.2, 0.1])
    x = np.zeros(3)
    log_ratio = 0.0
    path = []
    for arm in rng.choice(3, size=400, p=[0.6, 0.25, 0.15]):
        log_ratio += math.log((100 * pi[arm] + x[arm]) / (100 + x.sum())) - math.log(pi[arm])
        x[arm] += 1
        path.append(x.copy())
    assert float(srm_log_bayes_factor(x, pi)) == pytest.approx(log_ratio, rel=1e-10)
    lbf = srm_log_bayes_factor(np.array(path), pi)
    assert lbf[-1] == pytest.approx(log_ratio, rel=1e-10)


def test_the_running_minimum_and_the_edges_of_srm() -> None:
    path = np.array([[10, 0], [10, 10], [60, 40], [500, 500]])
    by_path = srm_sequential_path(path, [1, 1])
    previous = 1.0
    for counts in path:
        previous = srm_sequential(counts.tolist(), [1, 1], previous_p_value=previous).p_value
    assert by_path.p_value == pytest.approx(previous, rel=1e-12)
    assert by_path.p_value < srm_sequential([500, 500], [1, 1]).p_value  # the minimum is kept
    assert srm_sequential([0, 0], [1, 1]) == srm_sequential_path(np.zeros((0, 2)), [1, 1])
    assert srm_sequential([0, 0], [1, 1]).p_value == 1.0
    assert srm_sequential([500, 3], [10_000, 0]).p_value == 0.0  # units on an arm of weight 0
    assert srm_sequential([500, 0, 500], [1, 0, 1]).p_value > 0.5  # an empty arm of weight 0 is left out
    assert srm_sequential([13_000, 12_000], [1, 1]).reject
    with pytest.raises(ValueError, match="weights"):
        srm_sequential([1, 2], [1, 1, 1])
    with pytest.raises(ValueError, match="weights"):
        srm_sequential([1, 2], [0, 0])


def test_the_statistics_import_neither_scikit_learn_nor_statsmodels() -> None:
    """The trainer computes them without the train extra: numpy, scipy and msgspec only."""
    code = (
        "import sys, ml_matching.trainer.online, ml_matching.trainer.sequential; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'statsmodels', 'pandas'}))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
