"""Anytime-valid tests of an online experiment: they stay correct however often someone looks.

- :func:`split_cs`: candidate arm vs control arm (different units): an asymptotic confidence sequence
  (CS) for the difference of means, with the pooled (null) variance.
- :func:`paired_cs`: a shadow vs its champion on the same predictions: a CS for the mean of the
  per-prediction differences, which are bounded.
- :func:`verdict`: harm, non-inferior, superior or inconclusive, from a CS, a margin and a direction.
- :func:`srm_sequential`: an anytime-valid sample-ratio-mismatch p-value against the design weights.

Every CS is two-sided at level ``1 - alpha``: with probability at least ``1 - alpha`` (asymptotically,
for the normal-mixture ones) it contains the true value at every time at once, so a decision taken at
any look, or at a look chosen by peeking, keeps its error rate. The functions work on running sums
(``*_from_sums``), so a caller that has them, such as ``bench/simulate.py``, gets the CS after every
outcome in one vectorised call; the array entry points compute those sums and call the same code.

Nothing here raises on data: empty arrays, ``NaN`` values (left out) or too few outcomes give an
unbounded CS (``lower`` and ``upper`` ``None``, JSON ``null``; ``-inf`` / ``inf`` in the ``*_from_sums``
arrays), which :func:`verdict` reads as ``"inconclusive"``. Bad *settings* (an ``alpha`` outside (0, 1),
a negative margin) raise ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Literal

import msgspec
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

Test = Literal["nonInferiority", "superiority"]
Verdict = Literal["harm", "noninferior", "superior", "inconclusive"]
Floats = NDArray[np.float64]

#: The number of outcomes at which the normal-mixture CS is made narrowest (``n_target``): the
#: order of a ramp step's matured outcomes. Its width at other n grows slowly (bench/simulate.py).
N_TARGET: Final = 1_000
#: Below this many finite values in an arm (or pairs), the CLT approximation is not trusted: the
#: CS is unbounded.
MIN_N: Final = 30
#: The Dirichlet prior of the SRM test is ``SRM_CONCENTRATION × design weights`` (Lindon & Malek's
#: default of 100, as in their ``savvi`` package).
SRM_CONCENTRATION: Final = 100.0
#: The decisions :func:`verdict_codes` returns, by code.
VERDICTS: Final[tuple[Verdict, ...]] = ("inconclusive", "harm", "noninferior", "superior")

SPLIT_METHOD: Final = "asymptotic-cs-normal-mixture-pooled"
PAIRED_METHOD: Final = "asymptotic-cs-normal-mixture"
PAIRED_EB_METHOD: Final = "empirical-bernstein-cs"
SRM_METHOD: Final = "dirichlet-multinomial-mixture"


class ConfidenceSequence(msgspec.Struct, rename="camel", frozen=True):
    """A two-sided confidence sequence at one time: ``lower <= Δ <= upper`` with level ``1 - alpha``.

    ``None`` (JSON ``null``) is "no bound yet" for ``lower`` / ``upper``, and "no data" for ``estimate``,
    so the JSON decodes back into this type.
    """

    estimate: float | None
    lower: float | None
    upper: float | None
    n: int
    alpha: float
    method: str
    n_control: int | None = None
    n_candidate: int | None = None


class SrmResult(msgspec.Struct, rename="camel", frozen=True):
    """An anytime-valid sample-ratio-mismatch p-value (the running minimum of ``1 / BF``).

    ``log_bayes_factor`` is at the last counts; ``None`` when infinite (units on an arm of weight 0).
    """

    p_value: float
    reject: bool
    n: int
    log_bayes_factor: float | None
    alpha: float
    method: str = SRM_METHOD


def mixture_rho2(n_target: float, alpha: float) -> float:
    """ρ² of the normal mixture that makes the CS narrowest near ``n_target`` outcomes.

    ρ² = (-2 log α + log(1 - 2 log α)) / n_target: Waudby-Smith et al.'s (2024) closed-form
    approximation of the minimiser of the width at n_target (tests/statistics check it against a
    numerical minimisation: within 0.1 % of the narrowest width).
    """
    _check_alpha(alpha)
    ell = -2.0 * math.log(alpha)
    return (ell + math.log1p(ell)) / n_target


def mixture_radius(n: ArrayLike, alpha: float, rho2: float) -> Floats:
    """Half-width, for a mean of ``n`` unit-variance terms, of the two-sided normal-mixture boundary.

    r(n) = sqrt( (n ρ² + 1) / (n² ρ²) · log( (n ρ² + 1) / α² ) ). It is where the mixture of
    exp(λ S_n - λ² n / 2) over λ ~ N(0, ρ²), which equals exp(ρ² S_n² / (2 (1 + n ρ²))) / sqrt(1 + n ρ²),
    reaches 1/α with S_n = n r; by Ville's inequality that happens at any n with probability <= α
    (Robbins 1970; Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric, nonasymptotic
    confidence sequences", Ann. Statist. 2021; Waudby-Smith et al. 2024). ``inf`` at n = 0.
    """
    na = np.asarray(n, dtype=np.float64)
    grown = na * rho2 + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        radius = np.sqrt(grown / (na * na * rho2) * np.log(grown / (alpha * alpha)))
    return np.where(na > 0, radius, np.inf)


def split_cs_from_sums(
    control: tuple[ArrayLike, ArrayLike, ArrayLike],
    candidate: tuple[ArrayLike, ArrayLike, ArrayLike],
    alpha: float,
    n_target: float = N_TARGET,
    min_n: int = MIN_N,
) -> tuple[Floats, Floats, Floats]:
    """``(estimate, lower, upper)`` of Δ = mean(candidate) - mean(control) from each arm's ``(n, Σx, Σx²)``.

    The arrays broadcast, so running sums give the CS after every outcome. See :func:`split_cs`.
    """
    n_c, s_c, q_c = (np.asarray(a, dtype=np.float64) for a in control)
    n_t, s_t, q_t = (np.asarray(a, dtype=np.float64) for a in candidate)
    total = n_c + n_t
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = s_t / n_t - s_c / n_c
        inverse = 1.0 / n_c + 1.0 / n_t
        pooled = _variance(total, s_c + s_t, q_c + q_t) * total * inverse
        welch = total * (_variance(n_c, s_c, q_c) / n_c + _variance(n_t, s_t, q_t) / n_t)
        tau = np.sqrt(np.maximum(pooled, welch))
        radius = tau * mixture_radius(total, alpha, mixture_rho2(n_target, alpha))
        # No variation at all (every value equal so far) says nothing about the spread: no bound.
        usable = (np.minimum(n_c, n_t) >= max(min_n, 2)) & (tau > 0)
    return _bounds(estimate, radius, usable)


def split_cs(
    control: ArrayLike, candidate: ArrayLike, alpha: float, n_target: float = N_TARGET, min_n: int = MIN_N
) -> ConfidenceSequence:
    """Asymptotic confidence sequence for Δ = mean(candidate values) - mean(control values).

    Units are randomised to the arms, so Δ̂ - Δ is, to first order, a mean of independent influence
    terms with variance τ² / N, where N = n_control + n_candidate and τ² = N (σ²_c / n_c + σ²_t / n_t).
    The CS is Δ̂ ± τ̂ · r(N), with r the normal-mixture boundary of :func:`mixture_radius` (Waudby-Smith,
    Arbour, Sinha, Kennedy & Ramdas, "Time-uniform central limit theory and asymptotic confidence
    sequences", Ann. Statist. 2024: their Gaussian-mixture asymptotic CS, applied as in their randomised-
    experiment section), ρ from :func:`mixture_rho2` at ``n_target``.

    τ̂² uses the pooled (null) variance: σ̂²₀ = the variance of both arms' values together, so
    τ̂²₀ = σ̂²₀ N (1/n_c + 1/n_t). Under "no difference" it is the right variance, and it does not
    shrink by chance when a 5-10 % canary arm has few units (per-arm variances made 11 % false
    rejections at 10 % in issue #19's simulation). When the arms' variances really differ (a candidate
    whose values are more spread), τ̂²₀ could be too small, so τ̂² = max(τ̂²₀, Welch's per-arm τ̂²): the
    CS is never narrower than either.

    Parameters
    ----------
    control, candidate : array_like
        Each arm's unit values (:func:`ml_matching.trainer.online.unit_values`); ``NaN`` are left out.
    alpha : float
        Two-sided: the probability that the CS ever misses Δ, on either side, at any time, is at most
        ``alpha`` (not split by hand: the symmetric mixture covers both sides, so each one-sided
        error, such as a false harm, is at most ``alpha`` and in practice about ``alpha / 2``).
    n_target : float
        Total outcomes at which the CS is narrowest (default :data:`N_TARGET`).
    min_n : int
        Finite values needed in each arm before the CS is bounded (default :data:`MIN_N`).

    Returns
    -------
    ConfidenceSequence
        ``n`` = both arms' finite values; unbounded (``-inf, inf``) with fewer than ``min_n`` in an arm
        or no variation at all.
    """
    c, t = _finite(control), _finite(candidate)
    estimate, lower, upper = split_cs_from_sums(_sums(c), _sums(t), alpha, n_target, min_n)
    return _cs(estimate, lower, upper, c.size + t.size, alpha, SPLIT_METHOD, c.size, t.size)


def paired_cs_from_sums(
    n: ArrayLike, s: ArrayLike, q: ArrayLike, alpha: float, n_target: float = N_TARGET, min_n: int = MIN_N
) -> tuple[Floats, Floats, Floats]:
    """``(estimate, lower, upper)`` of the mean difference from ``(n, Σd, Σd²)``; see :func:`paired_cs`."""
    na, sa, qa = (np.asarray(a, dtype=np.float64) for a in (n, s, q))
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = sa / na
        sigma = np.sqrt(_variance(na, sa, qa))
        radius = sigma * mixture_radius(na, alpha, mixture_rho2(n_target, alpha))
        usable = (na >= max(min_n, 2)) & (sigma > 0)
    return _bounds(estimate, radius, usable)


def paired_cs(
    diff: ArrayLike,
    bound: float,
    alpha: float,
    n_target: float = N_TARGET,
    min_n: int = MIN_N,
    method: Literal["asymptotic", "empirical-bernstein"] = "asymptotic",
) -> ConfidenceSequence:
    """Confidence sequence for the mean of paired differences d_i = value_shadow - value_champion.

    Default (``"asymptotic"``): d̄ ± σ̂_d · r(n), the same normal-mixture CS as :func:`split_cs`, on one
    sample. Why not a bounded-variable CS by default: d lies in [-B, B] with B = -log(1e-6) ≈ 13.8 for
    log loss, while real differences spread over a few hundredths; every nonasymptotic CS for bounded
    means (empirical Bernstein, betting) pays for that range through a width term of order B log(1/α) / n,
    and in bench/simulate.py's paired figure the empirical-Bernstein CS needed several times the
    outcomes of this one. The boundedness is what makes the CLT-based CS sound here: bounded d has every
    moment, which is more than the strong approximation behind Waudby-Smith et al.'s asymptotic CS asks.
    The CS is also cut to [-B, B].

    ``"empirical-bernstein"``: the predictable plug-in empirical-Bernstein CS (Waudby-Smith & Ramdas,
    "Estimating means of bounded random variables by betting", JRSS-B 2024: PrPl-EB), exact at every
    n for any distribution on [-B, B], computed along the sequence (so the order of ``diff`` matters:
    keep the order outcomes matured in) and intersected over time. α is split, α/2 per side.

    Parameters
    ----------
    diff : array_like
        Per-prediction differences, in the order they matured; ``NaN`` are left out.
    bound : float
        B, with every difference in [-B, B] (:data:`ml_matching.trainer.online.BOUNDS`); values
        outside are clipped to it.
    alpha : float
        Two-sided level, as in :func:`split_cs`.
    n_target, min_n : float, int
        As in :func:`split_cs`; ``min_n`` pairs are needed before the CS is bounded.
    method : {"asymptotic", "empirical-bernstein"}
        The CS, as above.

    Returns
    -------
    ConfidenceSequence
    """
    if not bound > 0:
        raise ValueError(f"Expected a positive bound, got {bound!r}")
    if method not in ("asymptotic", "empirical-bernstein"):
        raise ValueError(f"Expected method 'asymptotic' or 'empirical-bernstein', got {method!r}")
    d = np.clip(_finite(diff), -bound, bound)
    if method == "empirical-bernstein":
        if d.size < max(min_n, 1):
            return _cs(d.mean() if d.size else math.nan, -math.inf, math.inf, d.size, alpha, PAIRED_EB_METHOD)
        est, lo, hi = paired_eb_path(d, bound, alpha)
        return _cs(est[-1], lo[-1], hi[-1], d.size, alpha, PAIRED_EB_METHOD)
    estimate, low, high = paired_cs_from_sums(d.size, d.sum(), (d * d).sum(), alpha, n_target, min_n)
    lower, upper = float(low), float(high)
    if math.isfinite(lower):  # cut to [-B, B]; an unbounded CS stays unbounded (no information)
        lower, upper = max(lower, -bound), min(upper, bound)
    return _cs(estimate, lower, upper, d.size, alpha, PAIRED_METHOD)


def paired_eb_path(d: ArrayLike, bound: float, alpha: float, c: float = 0.5) -> tuple[Floats, Floats, Floats]:
    """The empirical-Bernstein CS after each of ``d`` (finite, in [-B, B]): ``(estimate, lower, upper)``.

    On x = (d + B) / 2B in [0, 1] (Waudby-Smith & Ramdas 2024, PrPl-EB), with μ̂_t = (1/2 + Σx)/(t+1),
    σ̂²_t = (1/4 + Σ(x_i - μ̂_i)²)/(t+1), λ_t = min(sqrt(2 log(2/α) / (σ̂²_{t-1} t log(1+t))), c),
    ψ(λ) = (-log(1-λ) - λ)/4 and v_i = 4 (x_i - μ̂_{i-1})²: the CS is
    Σλx/Σλ ± (log(2/α) + Σ v ψ(λ)) / Σλ, intersected with the earlier ones, mapped back to d.
    """
    x = (np.asarray(d, dtype=np.float64) + bound) / (2.0 * bound)
    t = np.arange(1, x.size + 1, dtype=np.float64)
    mean = (0.5 + np.cumsum(x)) / (t + 1.0)
    var = (0.25 + np.cumsum((x - mean) ** 2)) / (t + 1.0)
    mean_before, var_before = np.r_[0.5, mean[:-1]], np.r_[0.25, var[:-1]]
    log_term = math.log(2.0 / alpha)
    lam = np.minimum(np.sqrt(2.0 * log_term / (var_before * t * np.log1p(t))), c)
    psi = (-np.log1p(-lam) - lam) / 4.0
    weight = np.cumsum(lam)
    centre = np.cumsum(lam * x) / weight
    radius = (log_term + np.cumsum(4.0 * (x - mean_before) ** 2 * psi)) / weight
    lower = np.maximum.accumulate(np.maximum(centre - radius, 0.0))
    upper = np.minimum.accumulate(np.minimum(centre + radius, 1.0))
    estimate = np.cumsum(x) / t
    return (2.0 * bound * estimate - bound, 2.0 * bound * lower - bound, 2.0 * bound * upper - bound)


def verdict_codes(
    lower: ArrayLike, upper: ArrayLike, lower_is_better: bool, margin: float, test: Test
) -> NDArray[np.int8]:
    """:func:`verdict` on arrays of bounds: codes into :data:`VERDICTS` (0 inconclusive ... 3 superior)."""
    if not margin >= 0:
        raise ValueError(f"Expected a margin >= 0, got {margin!r}")
    if test not in ("nonInferiority", "superiority"):
        raise ValueError(f"Expected test 'nonInferiority' or 'superiority', got {test!r}")
    lo, hi = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    # Oriented so that "worse" is positive: a loss as it is, a success rate negated.
    worse_low, worse_high = (lo, hi) if lower_is_better else (-hi, -lo)
    harm = worse_low > margin  # NaN compares False: inconclusive
    noninferior = worse_high < margin
    superior = (worse_high < 0) if test == "superiority" else np.zeros_like(harm)
    return np.select([harm, superior, noninferior], [1, 3, 2], 0).astype(np.int8)


def verdict(result: ConfidenceSequence, lower_is_better: bool, margin: float, test: Test) -> Verdict:
    """The decision a confidence sequence supports, for a candidate Δ = candidate - control.

    Parameters
    ----------
    result : ConfidenceSequence
        From :func:`split_cs` or :func:`paired_cs`.
    lower_is_better : bool
        True for a loss (log loss, Brier), False for a success rate
        (:data:`ml_matching.trainer.online.LOWER_IS_BETTER`).
    margin : float
        The non-inferiority margin, >= 0, in the metric's units.
    test : {"nonInferiority", "superiority"}
        ``"superior"`` is only returned for ``"superiority"``.

    Returns
    -------
    {"harm", "noninferior", "superior", "inconclusive"}
        With "worse" the harmful direction (Δ > 0 for a loss, Δ < 0 for a success rate):

        - ``harm``: the whole CS is worse than the margin (loss: ``lower > margin``);
        - ``superior`` (superiority only): the whole CS is better than 0 (loss: ``upper < 0``);
        - ``noninferior``: the whole CS is better than the margin (loss: ``upper < margin``);
        - ``inconclusive``: otherwise, including an unbounded or ``NaN`` CS.

    Raises
    ------
    ValueError
        If ``margin`` is negative or not a number, or ``test`` is unknown: settings, not data.
    """
    lower = -math.inf if result.lower is None else result.lower
    upper = math.inf if result.upper is None else result.upper
    return VERDICTS[int(verdict_codes(lower, upper, lower_is_better, margin, test))]


def srm_log_bayes_factor(
    counts: ArrayLike, weights: Sequence[float], concentration: float = SRM_CONCENTRATION
) -> Floats:
    """log BF of a Dirichlet-multinomial mixture against the multinomial of the design weights.

    BF_n = [Γ(A) / Γ(A + n)] Π_j Γ(a_j + x_j) / Γ(a_j)  /  Π_j π_j^{x_j}, with a = A π, A = ``concentration``,
    π the normalised weights, x the counts (last axis: one column per arm; earlier axes broadcast, so
    a path of cumulative counts gives the whole path). It is the likelihood ratio of the sequence of
    assignments, a nonnegative martingale with mean 1 under "assignment follows π" (Lindon & Malek,
    "Anytime-valid inference for multinomial count data", NeurIPS 2022). An arm of weight 0 with
    units makes it infinite; one without units is left out.
    """
    x = np.asarray(counts, dtype=np.float64)
    pi = _design(weights, x.shape[-1])
    empty = pi == 0
    impossible = np.any(x[..., empty] > 0, axis=-1)
    x, pi = x[..., ~empty], pi[~empty]
    a = concentration * pi
    n = x.sum(axis=-1)
    log_mixture = special.gammaln(concentration) - special.gammaln(concentration + n)
    log_mixture = log_mixture + (special.gammaln(a + x) - special.gammaln(a)).sum(axis=-1)
    log_null = (x * np.log(pi)).sum(axis=-1)
    return np.where(impossible, np.inf, log_mixture - log_null)


def srm_sequential(
    counts: Sequence[int],
    weights: Sequence[float],
    alpha: float = 0.001,
    previous_p_value: float = 1.0,
    concentration: float = SRM_CONCENTRATION,
) -> SrmResult:
    """Anytime-valid sample-ratio-mismatch test of cumulative unit ``counts`` per arm against ``weights``.

    p_n = min(previous_p_value, 1, 1 / BF_n) (:func:`srm_log_bayes_factor`). By Ville's inequality
    P(some BF_n >= 1/α) <= α, so "reject when p <= α" may be read after every unit. The guarantee is for
    the running minimum over every look: pass the last p-value computed *under the same weights* as
    ``previous_p_value`` (the controller keeps it in its decisions log), or use :func:`srm_sequential_path`
    on the history. Start again at 1 when the weights change (a ramp step): counts must be of units
    assigned under ``weights``.

    Parameters
    ----------
    counts : sequence of int
        Units per arm so far, in the order of ``weights``.
    weights : sequence of float
        Design weights (any positive scale, e.g. basis points); an arm of weight 0 must get no units.
    alpha : float
        The level the test is read at (issue #19: 0.001).
    previous_p_value : float
        The running minimum so far (1 at the start).
    concentration : float
        A in the prior Dirichlet(A π); larger looks for smaller mismatches, later.

    Returns
    -------
    SrmResult
    """
    _check_alpha(alpha)
    log_bf = float(srm_log_bayes_factor(np.asarray(counts), weights, concentration))
    p_value = min(previous_p_value, _p_value(log_bf))
    return SrmResult(p_value, p_value <= alpha, int(sum(counts)), _finite_or_none(log_bf), alpha)


def srm_sequential_path(
    counts_over_time: ArrayLike,
    weights: Sequence[float],
    alpha: float = 0.001,
    concentration: float = SRM_CONCENTRATION,
) -> SrmResult:
    """:func:`srm_sequential` after the last row of ``counts_over_time`` (T × arms, cumulative), with the
    running minimum of the p-value over every row."""
    _check_alpha(alpha)
    path = np.atleast_2d(np.asarray(counts_over_time, dtype=np.float64))
    if path.size == 0:
        return SrmResult(1.0, False, 0, 0.0, alpha)
    log_bf = srm_log_bayes_factor(path, weights, concentration)
    p_value = _p_value(float(np.max(log_bf)))
    return SrmResult(p_value, p_value <= alpha, int(path[-1].sum()), _finite_or_none(log_bf[-1]), alpha)


def _p_value(log_bf: float) -> float:
    """min(1, 1 / BF) without overflow (an infinite BF, units on an arm of weight 0, gives 0)."""
    return 1.0 if log_bf <= 0 else math.exp(-log_bf)


def _variance(n: Floats, s: Floats, q: Floats) -> Floats:
    """Sample variance from (n, Σx, Σx²), never below 0 (roundoff), NaN below two values."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n >= 2, np.maximum(q - s * s / n, 0.0) / (n - 1.0), np.nan)


def _bounds(estimate: Floats, radius: Floats, usable: NDArray[np.bool_]) -> tuple[Floats, Floats, Floats]:
    lower = np.where(usable, estimate - radius, -np.inf)
    upper = np.where(usable, estimate + radius, np.inf)
    return estimate, lower, upper


def _finite(values: ArrayLike) -> Floats:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    return a[np.isfinite(a)]


def _sums(a: Floats) -> tuple[int, float, float]:
    return a.size, float(a.sum()), float((a * a).sum())


def _cs(
    estimate: ArrayLike, lower: ArrayLike, upper: ArrayLike, n: int, alpha: float, method: str,
    n_control: int | None = None, n_candidate: int | None = None,
) -> ConfidenceSequence:  # fmt: skip
    return ConfidenceSequence(
        _finite_or_none(estimate), _finite_or_none(lower), _finite_or_none(upper), n, alpha, method,
        n_control, n_candidate,
    )  # fmt: skip


def _finite_or_none(value: ArrayLike) -> float | None:
    number = float(np.asarray(value, dtype=np.float64))
    return number if math.isfinite(number) else None


def _design(weights: Sequence[float], arms: int) -> Floats:
    pi = np.asarray(weights, dtype=np.float64)
    if pi.shape != (arms,) or not np.all(np.isfinite(pi)) or np.any(pi < 0) or pi.sum() <= 0:
        raise ValueError(f"Expected {arms} weights >= 0 with a positive sum, got {list(weights)}")
    normalised: Floats = pi / pi.sum()
    return normalised


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"Expected alpha in (0, 1), got {alpha!r}")
