"""The rule bench/experiments.py judges the issue's goals by (``bench/verdict.py``), checked as code.

- Its interval for the median is the textbook order-statistic one, built here independently from
  the binomial distribution.
- Its false-decision rate is measured by simulation: a configuration whose true ratio to plain is
  exactly the goal's bound, run through the bench's own pairing (``experiments._paired``) on a
  machine whose speed drifts between runs, must be called "not met" (or "met") at most as often as
  one side of a 95 % interval allows, within a 99.9 % binomial band.
- Its power: a ratio well below the bound (0.75 against 0.9, at the noise seen here) is called
  "not met" in most runs of 10 reps.
- A negative control: the naive rule (the median of the reps against the bound) fails the same
  simulation, so the simulation can catch a rule that decides too often.

``pytest tests/statistics/test_bench_verdict.py -s -p no:randomly`` prints the counts
docs/evidence/statistics.md gives.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from experiments import _paired  # a bench script, not a package
from verdict import LEVEL, MIN_REPS, median_interval, verdict

SIMS = 600
BOUND = 0.9


def _limit(sims: int, rate: float) -> int:
    """The most decisions compatible with a decision rate of ``rate``: 99.9 % binomial quantile."""
    return int(stats.binom.ppf(0.999, sims, rate))


def _binomial_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """[x(k), x(n−k+1)] for the largest k with P(Binomial(n, ½) < k) ≤ (1 − level)/2."""
    x, n = np.sort(values), len(values)
    k = 0
    while stats.binom.cdf(k, n, 0.5) <= (1 - level) / 2:
        k += 1
    return float(x[k - 1]), float(x[n - k])


def _run(rps: float) -> dict[str, object]:
    return {"rps": rps, "cpu_ms": 0.1, "p99_ms": 2.0, "paced": {"p50_ms": 0.7, "p99_ms": 3.0}}


def _bench_reps(rng: np.random.Generator, ratio: float, reps: int, walk: float, noise: float) -> list[float]:
    """``reps`` paired ratios as bench/experiments.py makes them: plain, the configuration, plain,
    on a machine whose log-speed walks by ``walk`` a run, each run off by ``noise`` besides."""
    drift, values = 0.0, []
    for _ in range(reps):
        speeds = []
        for _ in range(3):
            drift += rng.normal(0, walk)
            speeds.append(8000 * np.exp(drift + rng.normal(0, noise)))
        before, run, after = _run(speeds[0]), _run(ratio * speeds[1]), _run(speeds[2])
        values.append(_paired(run, before, after)["x_plain_rps"])
    return values


def test_the_interval_is_the_order_statistic_interval_built_independently() -> None:
    rng = np.random.default_rng(3)
    for n in range(MIN_REPS, 40):
        values = rng.lognormal(size=n)
        assert median_interval(values) == pytest.approx(_binomial_interval(values, LEVEL)), n


def test_too_few_reps_decide_nothing() -> None:
    far_below = [0.1] * (MIN_REPS - 1)
    assert median_interval(far_below) == (-np.inf, np.inf)
    assert verdict(far_below, BOUND, at_least=True) == "undecided"
    assert verdict([0.1] * MIN_REPS, BOUND, at_least=True) == "not met"


@pytest.mark.parametrize(("walk", "noise"), [(0.0, 0.1), (0.05, 0.08), (0.15, 0.05)])
@pytest.mark.parametrize("reps", [MIN_REPS, 10])
def test_a_ratio_exactly_on_the_bound_is_rarely_decided(walk: float, noise: float, reps: int) -> None:
    rng = np.random.default_rng(int(walk * 100) + reps)
    decided = {"met": 0, "not met": 0, "undecided": 0}
    for _ in range(SIMS):
        decided[verdict(_bench_reps(rng, BOUND, reps, walk, noise), BOUND, at_least=True)] += 1
    print(f"on the bound, walk {walk}, noise {noise}, {reps} reps: {decided} of {SIMS}")  # the docs' figures
    one_side = (1 - LEVEL) / 2
    assert decided["not met"] <= _limit(SIMS, one_side), decided
    assert decided["met"] <= _limit(SIMS, one_side), decided


def test_an_at_most_goal_is_judged_the_same_way_round() -> None:
    rng = np.random.default_rng(11)
    wrong = sum(
        verdict(list(1.0 + rng.normal(0, 0.8, size=10)), 1.0, at_least=False) == "not met"
        for _ in range(SIMS)
    )
    assert wrong <= _limit(SIMS, (1 - LEVEL) / 2)
    assert verdict([0.2, 0.3, 0.1, 0.4, 0.2, 0.3], 1.0, at_least=False) == "met"
    assert verdict([1.8, 2.3, 1.1, 1.4, 2.2, 1.3], 1.0, at_least=False) == "not met"


def test_a_ratio_well_below_the_bound_is_called_not_met_in_most_runs() -> None:
    rng = np.random.default_rng(5)
    calls = [verdict(_bench_reps(rng, 0.75, 10, 0.05, 0.08), BOUND, at_least=True) for _ in range(200)]
    print(f"a true 0.75x: not met in {calls.count('not met')} of {len(calls)}")
    assert calls.count("not met") >= 0.8 * len(calls)
    assert "met" not in calls


def test_the_naive_rule_fails_the_same_simulation() -> None:
    rng = np.random.default_rng(13)
    naive = sum(np.median(_bench_reps(rng, BOUND, 10, 0.05, 0.08)) < BOUND for _ in range(SIMS))
    print(f"the naive rule on the bound: not met in {naive} of {SIMS}")
    assert naive > _limit(SIMS, (1 - LEVEL) / 2)
