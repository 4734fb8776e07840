"""The normal-mixture boundary against independent computations: the mixture martingale integrated
numerically (quad) and solved for its 1/α crossing (brentq); ρ against a numerical minimisation; the
variance plumbing and fixed-n widths against statsmodels; Ville's inequality on Gaussian walks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from ml_matching.trainer.sequential import (
    mixture_radius,
    mixture_rho2,
    paired_cs,
    split_cs,
    split_cs_from_sums,
)

weightstats = pytest.importorskip("statsmodels.stats.weightstats")


def _log_mixture(s: float, n: float, rho2: float) -> float:
    """log ∫ exp(λ s - λ² n / 2) N(λ; 0, ρ²) dλ, by quadrature around the integrand's peak."""
    peak = s / (n + 1 / rho2)
    width = 12 / math.sqrt(n + 1 / rho2)
    shift = peak * s - peak**2 * n / 2 - peak**2 / (2 * rho2)  # factored out against overflow

    def integrand(lam: float) -> float:
        log_value = lam * s - lam**2 * n / 2 - lam**2 / (2 * rho2) - shift
        return math.exp(log_value) / math.sqrt(2 * math.pi * rho2)

    value, _ = integrate.quad(integrand, peak - width, peak + width, epsabs=0, epsrel=1e-12, limit=200)
    return math.log(value) + shift


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.001])
@pytest.mark.parametrize("n", [10, 300, 1_000, 25_000])
def test_the_radius_is_where_the_integrated_mixture_reaches_one_over_alpha(alpha: float, n: int) -> None:
    rho2 = mixture_rho2(1_000, alpha)
    crossing = optimize.brentq(
        lambda s: _log_mixture(s, n, rho2) - math.log(1 / alpha), 0.0, 50 * math.sqrt(n), xtol=1e-12
    )
    assert float(mixture_radius(n, alpha, rho2)) == pytest.approx(crossing / n, rel=1e-7)


@pytest.mark.parametrize("alpha", [0.05, 0.001])
@pytest.mark.parametrize("n_target", [200, 1_000, 20_000])
def test_rho_makes_the_radius_nearly_narrowest_at_the_target(alpha: float, n_target: int) -> None:
    best = optimize.minimize_scalar(
        lambda log_rho2: float(mixture_radius(n_target, alpha, math.exp(log_rho2))),
        bounds=(-25, 5),
        method="bounded",
        options={"xatol": 1e-10},
    )
    ours = float(mixture_radius(n_target, alpha, mixture_rho2(n_target, alpha)))
    assert best.fun <= ours <= best.fun * 1.001


def test_gaussian_walks_cross_the_boundary_at_most_alpha_of_the_time() -> None:
    """Ville's inequality with a known answer: standard normal steps, the exact mixture martingale.
    2,000 walks × 4,000 steps at α = 0.05: at most 100 expected; 99.9 % band of Binomial(2000, .05) ≤ 132."""
    rng = np.random.default_rng(21)
    rho2 = mixture_rho2(1_000, 0.05)
    radius = mixture_radius(np.arange(1, 4_001), 0.05, rho2)
    crossed = 0
    for _ in range(4):
        means = np.cumsum(rng.standard_normal((500, 4_000)), axis=1) / np.arange(1, 4_001)
        crossed += int(np.any(np.abs(means) >= radius, axis=1).sum())
    assert crossed <= 132, crossed
    assert crossed >= 20  # and it is not absurdly conservative: the boundary does get crossed


def test_the_variances_are_statsmodels_pooled_and_welch() -> None:
    """Half-width / r(N) = τ̂ / √N: the larger of the pooled standard error and statsmodels' separate-
    variance (Welch) one; Welch's wins when the small arm is much more spread."""
    rng = np.random.default_rng(22)
    control = rng.binomial(1, 0.3, 2_000).astype(np.float64)
    chosen = []
    for candidate in (rng.binomial(1, 0.3, 150).astype(np.float64), rng.normal(0.3, 3.0, 150)):
        cs = split_cs(control, candidate, 0.05)
        radius = float(mixture_radius(cs.n, 0.05, mixture_rho2(1_000, 0.05)))
        se = (cs.upper - cs.lower) / 2 / radius / math.sqrt(cs.n)
        welch = weightstats.CompareMeans.from_data(candidate, control).std_meandiff_separatevar
        pooled = np.concatenate([control, candidate]).std(ddof=1) * math.sqrt(1 / 2_000 + 1 / 150)
        assert se == pytest.approx(max(pooled, welch), rel=1e-9)
        assert cs.estimate == pytest.approx(candidate.mean() - control.mean(), rel=1e-12)
        chosen.append("welch" if welch > pooled else "pooled")
    assert chosen[1] == "welch"


def test_the_cs_is_wider_than_the_fixed_n_interval_at_every_n() -> None:
    """At every n the CS must be wider than statsmodels' fixed-n z interval (which is valid at one n
    only); at 20,000 outcomes the ratio is the price of peeking."""
    rng = np.random.default_rng(23)
    control, candidate = rng.binomial(1, 0.3, 10_000), rng.binomial(1, 0.3, 10_000)
    ratios = []
    for n in (60, 200, 1_000, 5_000, 10_000):
        cs = split_cs(control[:n], candidate[:n], 0.05)
        low, high = weightstats.CompareMeans.from_data(candidate[:n], control[:n]).zconfint_diff(0.05)
        ratios.append((cs.upper - cs.lower) / (high - low))
    assert min(ratios) > 1.0 and ratios[-1] < 3.0, ratios


def test_the_paired_cs_is_the_one_sample_mixture_cs() -> None:
    rng = np.random.default_rng(24)
    d = rng.normal(0.01, 0.2, 3_000)
    cs = paired_cs(d, 13.8, 0.05)
    half = d.std(ddof=1) * float(mixture_radius(d.size, 0.05, mixture_rho2(1_000, 0.05)))
    assert (cs.lower, cs.upper) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-10)
    z = stats.norm.ppf(0.975) * d.std(ddof=1) / math.sqrt(d.size)
    assert cs.upper - cs.lower > 2 * z


def test_sums_and_arrays_give_the_same_cs() -> None:
    rng = np.random.default_rng(25)
    control, candidate = rng.random(500), rng.random(80)
    cs = split_cs(control, candidate, 0.05)
    sums = [(a.size, a.sum(), (a * a).sum()) for a in (control, candidate)]
    estimate, lower, upper = split_cs_from_sums(sums[0], sums[1], 0.05)
    assert (float(estimate), float(lower), float(upper)) == pytest.approx(
        (cs.estimate, cs.lower, cs.upper), rel=1e-12
    )
