"""Per-arm metrics of an online experiment, over matured outcomes.

An outcome is *matured* when it arrived, or when its prediction's horizon passed without one; the
caller applies that rule before calling here (:mod:`ml_matching.trainer.experiment_view` counts a
prediction past its horizon as ``y = 0``, not a success, the same rule for every arm). Every function
takes the served (or shadow) probability ``p`` and the outcome ``y`` of those predictions, in the
order they matured.

- :func:`unit_values` turns each prediction into the value whose mean is a metric: these feed the
  sequential tests of :mod:`ml_matching.trainer.sequential`. A row whose ``p`` is not a finite number
  in [0, 1] or whose ``y`` is not 0 or 1 gets ``NaN``, which those tests leave out: a bad row holds a
  decision back, it never aborts one.
- :func:`arm_metrics` reports an arm: success rate, log loss, Brier score, calibration (ECE) and
  ROC-AUC with its DeLong interval. ECE and AUC are reported only: they are not means of per-unit
  values, so no sequential test is run on them.

Only numpy, scipy and msgspec are imported, so the trainer can compute these without the train extra.
"""

from __future__ import annotations

import math
import statistics
from typing import Final, Literal

import msgspec
import numpy as np
from numpy.typing import ArrayLike, NDArray

Metric = Literal["logLoss", "brier", "successRate"]

#: Probabilities are clipped to [LOSS_CLIP, 1 - LOSS_CLIP] before the log loss, as scikit-learn's
#: ``log_loss`` does with its ``eps``: one confident miss then costs at most -log(1e-6) ≈ 13.8 nats.
LOSS_CLIP: Final = 1e-6

#: Whether a smaller value of the metric is better.
LOWER_IS_BETTER: Final[dict[str, bool]] = {"logLoss": True, "brier": True, "successRate": False}

#: Every unit value of the metric lies in [0, bound], so a paired difference lies in [-bound, bound].
BOUNDS: Final[dict[str, float]] = {"logLoss": -math.log(LOSS_CLIP), "brier": 1.0, "successRate": 1.0}

#: Equal-width bins of the expected calibration error.
ECE_BINS: Final = 10

#: The two-sided normal quantile of the reported 95 % DeLong interval (the standard library's: SciPy
#: is imported where it is used, so that a trainer starts without it until it computes metrics).
_Z95: Final = statistics.NormalDist().inv_cdf(0.975)


class ArmMetrics(msgspec.Struct, rename="camel", frozen=True):
    """An arm's metrics over its matured outcomes (``None`` where there is nothing to compute)."""

    n: int
    invalid: int = 0
    success_rate: float | None = None
    log_loss: float | None = None
    brier: float | None = None
    ece: float | None = None
    roc_auc: float | None = None
    roc_auc_low: float | None = None
    roc_auc_high: float | None = None


def unit_values(metric: str, p: ArrayLike, y: ArrayLike) -> NDArray[np.float64]:
    """The per-prediction values whose mean is ``metric``.

    Parameters
    ----------
    metric : {"logLoss", "brier", "successRate"}
        ``logLoss``: ``-y log p - (1 - y) log(1 - p)`` in nats, ``p`` clipped to
        [:data:`LOSS_CLIP`, 1 - :data:`LOSS_CLIP`]; ``brier``: ``(p - y)²``; ``successRate``: ``y``.
    p, y : array_like
        Predicted probabilities and outcomes (0 or 1), of the same length.

    Returns
    -------
    numpy.ndarray
        One float per row; ``NaN`` for a row whose ``p`` or ``y`` is invalid.

    Raises
    ------
    ValueError
        If ``metric`` is not one of the three, or ``p`` and ``y`` differ in length.
    """
    if metric not in LOWER_IS_BETTER:
        raise ValueError(f"Expected metric to be one of {sorted(LOWER_IS_BETTER)}, got {metric!r}")
    pa, ya = _pair(p, y)
    valid = _valid(pa, ya)
    ps, ys = np.where(valid, pa, 0.5), np.where(valid, ya, 0.0)  # placeholders, masked below
    if metric == "logLoss":
        clipped = np.clip(ps, LOSS_CLIP, 1.0 - LOSS_CLIP)
        values = -(ys * np.log(clipped) + (1.0 - ys) * np.log1p(-clipped))
    elif metric == "brier":
        values = (ps - ys) ** 2
    else:
        values = ys.copy()
    return np.where(valid, values, np.nan)


def arm_metrics(p: ArrayLike, y: ArrayLike) -> ArmMetrics:
    """Success rate, log loss, Brier score, ECE and ROC-AUC (with a 95 % DeLong interval) of one arm.

    Parameters
    ----------
    p, y : array_like
        The arm's probabilities and matured outcomes (0 or 1). Invalid rows (``p`` not finite or
        outside [0, 1], ``y`` not 0 or 1) are left out and counted in ``invalid``.

    Returns
    -------
    ArmMetrics
        ``n`` valid rows; every metric is ``None`` when ``n`` is 0, and the AUC and its interval are
        ``None`` while one class is absent (the interval also while a class has a single row).
    """
    pa, ya = _pair(p, y)
    valid = _valid(pa, ya)
    pv, yv = pa[valid], ya[valid]
    n, invalid = int(pv.size), int(pa.size - pv.size)
    if n == 0:
        return ArmMetrics(0, invalid)
    auc = roc_auc_delong(pv, yv)
    low = high = None
    if auc is not None and math.isfinite(auc[1]):
        half = _Z95 * math.sqrt(auc[1])
        low, high = max(0.0, auc[0] - half), min(1.0, auc[0] + half)
    return ArmMetrics(
        n, invalid, float(yv.mean()), float(unit_values("logLoss", pv, yv).mean()),
        float(unit_values("brier", pv, yv).mean()), ece(pv, yv), None if auc is None else auc[0], low, high,
    )  # fmt: skip


def ece(p: NDArray[np.float64], y: NDArray[np.float64], bins: int = ECE_BINS) -> float:
    """Expected calibration error: Σ_b (n_b / n) |mean(y_b) - mean(p_b)| over ``bins`` equal-width bins.

    A probability of exactly 1 falls in the last bin. ``p`` and ``y`` must be valid and non-empty.
    """
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.bincount(which, weights=y, minlength=bins) - np.bincount(which, weights=p, minlength=bins)
    # Σ_b (n_b / n) |Σy_b / n_b - Σp_b / n_b| = Σ_b |Σy_b - Σp_b| / n: empty bins add nothing.
    return float(np.abs(gap).sum() / count.sum())


def roc_auc_delong(p: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float] | None:
    """ROC-AUC and its DeLong variance (DeLong, DeLong & Clarke-Pearson 1988), by midranks.

    The structural components are computed from midranks in O(n log n) (Sun & Xu 2014, "Fast
    implementation of DeLong's algorithm"): for the m positives, V10 = (rank among all - rank among
    positives) / n_neg; for the n_neg negatives, V01 = 1 - (rank among all - rank among negatives) / m;
    var(AUC) = var(V10) / m + var(V01) / n_neg (sample variances). Ties count one half.

    Returns
    -------
    tuple of float, or None
        ``(auc, variance)``; ``None`` when a class is absent; the variance is ``NaN`` while a class has
        a single row (its sample variance is undefined).
    """
    positive = y == 1
    m, k = int(positive.sum()), int((~positive).sum())
    if m == 0 or k == 0:
        return None
    from scipy import stats

    ranks = stats.rankdata(p)
    v10 = (ranks[positive] - stats.rankdata(p[positive])) / k
    v01 = 1.0 - (ranks[~positive] - stats.rankdata(p[~positive])) / m
    auc = float(v10.mean())
    if m < 2 or k < 2:
        return auc, math.nan
    return auc, float(v10.var(ddof=1) / m + v01.var(ddof=1) / k)


def _pair(p: ArrayLike, y: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    pa = np.asarray(p, dtype=np.float64).reshape(-1)
    ya = np.asarray(y, dtype=np.float64).reshape(-1)
    if pa.shape != ya.shape:
        raise ValueError(f"Expected p and y of the same length, got {pa.size} and {ya.size}")
    return pa, ya


def _valid(p: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.bool_]:
    with np.errstate(invalid="ignore"):  # NaN compares False, which is what we want
        valid: NDArray[np.bool_] = np.isfinite(p) & (p >= 0.0) & (p <= 1.0) & ((y == 0.0) | (y == 1.0))
    return valid
