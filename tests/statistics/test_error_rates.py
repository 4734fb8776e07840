"""False-decision rates measured by simulation, with peeking after every outcome.

Each test runs a few hundred streams with a known answer and counts the streams in which the
confidence sequence *ever* misses the truth (or the SRM test ever fires): that count must stay within
the 99.9 % binomial band of ``streams × α``. The CS after every outcome comes from running sums
through the same ``*_from_sums`` functions the array entry points use. A naive fixed-n z interval
read after every outcome is the negative control: the same simulation must catch it over-rejecting.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ml_matching.trainer.online import BOUNDS, unit_values
from ml_matching.trainer.sequential import (
    paired_cs_from_sums,
    paired_eb_path,
    split_cs_from_sums,
    srm_log_bayes_factor,
)

ALPHA = 0.05
STREAMS = 300
LOOKS = 4_000


def _limit(streams: int, alpha: float) -> int:
    """The most misses compatible with a miss rate of alpha: 99.9 % binomial quantile."""
    return int(stats.binom.ppf(0.999, streams, alpha))


def _split_path(arm: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, lower, upper) of the split CS after every outcome of one stream."""
    looks = np.arange(1, arm.size + 1)
    n_t = np.cumsum(arm)
    s_all, q_all = np.cumsum(values), np.cumsum(values * values)
    s_t, q_t = np.cumsum(values * arm), np.cumsum(values * values * arm)
    return split_cs_from_sums((looks - n_t, s_all - s_t, q_all - q_t), (n_t, s_t, q_t), ALPHA)


def _calibrated(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    p = rng.beta(2.0, 14 / 3, n)
    return p, (rng.random(n) < p).astype(np.float64)


@pytest.mark.parametrize("weight", [0.05, 0.10, 0.50])
def test_split_cs_ever_misses_at_most_alpha_in_an_aa_test(weight: float) -> None:
    """A/A, success 0.30, the candidate at ``weight``: streams whose CS ever excludes Δ = 0."""
    rng = np.random.default_rng(int(weight * 100))
    misses = naive = 0
    z = stats.norm.ppf(1 - ALPHA / 2)
    for _ in range(STREAMS):
        arm = rng.random(LOOKS) < weight
        y = (rng.random(LOOKS) < 0.3).astype(np.float64)
        estimate, lower, upper = _split_path(arm, y)
        misses += bool(np.any((lower > 0) | (upper < 0)))
        n_t = np.cumsum(arm)
        n_c = np.arange(1, LOOKS + 1) - n_t
        with np.errstate(divide="ignore", invalid="ignore"):
            pooled = np.cumsum(y) / np.arange(1, LOOKS + 1)
            se = np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
            naive += bool(np.any((np.minimum(n_c, n_t) >= 30) & (np.abs(estimate) > z * se)))
    assert misses <= _limit(STREAMS, ALPHA), misses
    assert naive > 3 * STREAMS * ALPHA, naive  # peeking at a fixed-n test: the simulation sees it


def test_split_cs_covers_when_a_small_arm_is_more_spread() -> None:
    """Not A/A: the candidate (5 %) has success 0.50 against 0.30 (a larger variance in the small arm):
    streams whose CS ever excludes the true Δ = 0.20."""
    rng = np.random.default_rng(41)
    misses = 0
    for _ in range(STREAMS):
        arm = rng.random(LOOKS) < 0.05
        y = (rng.random(LOOKS) < np.where(arm, 0.5, 0.3)).astype(np.float64)
        _, lower, upper = _split_path(arm, y)
        misses += bool(np.any((lower > 0.2) | (upper < 0.2)))
    assert misses <= _limit(STREAMS, ALPHA), misses


def test_a_ramp_compared_step_by_step_is_not_fooled_by_a_drifting_success_rate() -> None:
    """A/A over a ramp of two steps, the candidate at 5 % then 50 %, while the success rate falls from
    0.40 to 0.15 between them. The controller compares each step on its own rows: streams whose
    CS ever excludes Δ = 0 in any step stay within 2α (the union bound over the steps, measured).
    The same rows pooled since the ramp began (the negative control) see the drift as a difference:
    the candidate's rows come mostly from the later, lower step."""
    rng = np.random.default_rng(46)
    per_step = pooled = 0
    half = LOOKS // 2
    for _ in range(STREAMS):
        arm = np.concatenate([rng.random(half) < 0.05, rng.random(half) < 0.5])
        rate = np.concatenate([np.full(half, 0.40), np.full(half, 0.15)])
        y = (rng.random(LOOKS) < rate).astype(np.float64)
        per_step += any(
            bool(np.any((lower > 0) | (upper < 0)))
            for _, lower, upper in (_split_path(arm[s], y[s]) for s in (slice(0, half), slice(half, None)))
        )
        _, lower, upper = _split_path(arm, y)
        pooled += bool(np.any((lower > 0) | (upper < 0)))
    assert per_step <= _limit(STREAMS, 2 * ALPHA), per_step
    assert pooled > STREAMS // 2, pooled  # the bias the per-step comparison avoids


@pytest.mark.parametrize("weight", [0.10, 0.50])
def test_split_cs_on_log_loss_of_a_calibrated_model(weight: float) -> None:
    """A/A on a continuous, skewed metric: each unit's log loss under the same calibrated model."""
    rng = np.random.default_rng(42 + int(weight * 100))
    misses = 0
    for _ in range(STREAMS):
        p, y = _calibrated(rng, LOOKS)
        _, lower, upper = _split_path(rng.random(LOOKS) < weight, unit_values("logLoss", p, y))
        misses += bool(np.any((lower > 0) | (upper < 0)))
    assert misses <= _limit(STREAMS, ALPHA), misses


@pytest.mark.parametrize("metric", ["logLoss", "brier"])
def test_paired_cs_ever_misses_at_most_alpha(metric: str) -> None:
    """Two models equally good by symmetry (the truth with independent logit noise of the same size)
    score the same units: E[d] = 0. Both the asymptotic and the empirical-Bernstein CS are checked."""
    rng = np.random.default_rng(43)
    misses = {"asymptotic": 0, "empirical-bernstein": 0}
    looks = np.arange(1, LOOKS + 1)
    for _ in range(STREAMS):
        p, y = _calibrated(rng, LOOKS)
        logit = np.log(p / (1 - p))
        a, b = (1 / (1 + np.exp(-(logit + rng.normal(0, 0.5, LOOKS)))) for _ in range(2))
        d = unit_values(metric, b, y) - unit_values(metric, a, y)
        _, lower, upper = paired_cs_from_sums(looks, np.cumsum(d), np.cumsum(d * d), ALPHA)
        misses["asymptotic"] += bool(np.any((lower > 0) | (upper < 0)))
        _, lower, upper = paired_eb_path(d, BOUNDS[metric], ALPHA)
        misses["empirical-bernstein"] += bool(np.any((lower > 0) | (upper < 0)))
    assert max(misses.values()) <= _limit(STREAMS, ALPHA), misses


def test_the_empirical_bernstein_cs_holds_on_a_skewed_bounded_difference() -> None:
    """Exact at every n: d = 1 with probability 0.02, else -0.01 (mean 0.0102), in [-1, 1]."""
    rng = np.random.default_rng(44)
    truth = 0.02 * 1 + 0.98 * -0.01
    misses = 0
    for _ in range(STREAMS):
        d = np.where(rng.random(LOOKS) < 0.02, 1.0, -0.01)
        _, lower, upper = paired_eb_path(d, 1.0, ALPHA)
        misses += bool(np.any((lower > truth + 1e-12) | (upper < truth - 1e-12)))
    assert misses <= _limit(STREAMS, ALPHA), misses


@pytest.mark.parametrize("weights", [(5000, 5000), (9500, 500), (6000, 2500, 1500)])
def test_sequential_srm_false_alarms_with_peeking(weights: tuple[int, ...]) -> None:
    """500 streams of 10,000 units assigned at the design weights, read after every unit, at
    α = 0.001, 0.01 and 0.05: the count of streams ever flagged is within each level's band."""
    rng = np.random.default_rng(45)
    pi = np.array(weights) / sum(weights)
    peaks = np.array(
        [
            srm_log_bayes_factor(
                np.cumsum(np.eye(len(pi))[rng.choice(len(pi), 10_000, p=pi)], axis=0), pi
            ).max()
            for _ in range(500)
        ]
    )
    for alpha in (0.001, 0.01, 0.05):
        flagged = int((peaks >= np.log(1 / alpha)).sum())
        assert flagged <= _limit(500, alpha), (alpha, flagged)


def test_sequential_srm_flags_52_48_over_25000_units() -> None:
    """Assignment really 52/48 against 50/50 weights: flagged within 25,000 units in ≥ 90 % of 200
    streams (measured ≈ 99 %)."""
    rng = np.random.default_rng(46)
    flagged = 0
    for _ in range(200):
        to_first = rng.random(25_000) < 0.52
        path = np.stack([np.cumsum(to_first), np.cumsum(~to_first)], axis=-1)
        flagged += bool(srm_log_bayes_factor(path, [1, 1]).max() >= np.log(1_000))
    assert flagged >= 180, flagged
