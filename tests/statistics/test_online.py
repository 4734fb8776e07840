"""Per-arm metrics against independent implementations: scikit-learn for log loss, Brier and AUC, a
pairwise O(m·n) DeLong, a loop for ECE; and the DeLong interval's coverage measured by simulation."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from scipy import stats

from ml_matching.trainer.online import (
    BOUNDS,
    LOSS_CLIP,
    LOWER_IS_BETTER,
    ArmMetrics,
    arm_metrics,
    ece,
    roc_auc_delong,
    unit_values,
)

metrics = pytest.importorskip("sklearn.metrics")


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(2.0, 14 / 3, n)
    y = (rng.random(n) < p).astype(np.float64)
    return p, y


def _delong_pairwise(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """DeLong et al. (1988) as printed: the kernel ψ(x, y) = 1, ½, 0 over every (positive, negative)."""
    pos, neg = p[y == 1], p[y == 0]
    kernel = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = kernel.mean(axis=1), kernel.mean(axis=0)
    return float(kernel.mean()), float(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_log_loss_brier_and_success_match_sklearn(seed: int) -> None:
    p, y = _data(2_000, seed)
    p[:5] = [0.0, 1.0, 1e-9, 1 - 1e-9, 0.5]  # the clip must act exactly as sklearn's
    y[:4] = [1, 0, 1, 0]
    clipped = np.clip(p, LOSS_CLIP, 1 - LOSS_CLIP)
    got = arm_metrics(p, y)
    assert got.log_loss == pytest.approx(metrics.log_loss(y, clipped, labels=[0, 1]), rel=1e-12)
    assert got.brier == pytest.approx(metrics.brier_score_loss(y, p), rel=1e-12)
    assert got.success_rate == pytest.approx(y.mean(), rel=1e-15)
    assert got.n == 2_000 and got.invalid == 0


@pytest.mark.parametrize("seed", [4, 5])
def test_auc_matches_sklearn_and_delong_matches_the_pairwise_formula(seed: int) -> None:
    p, y = _data(600, seed)
    p = np.round(p, 2)  # ties, which count one half
    auc, variance = roc_auc_delong(p, y)  # type: ignore[misc]
    assert auc == pytest.approx(metrics.roc_auc_score(y, p), rel=1e-12)
    oracle_auc, oracle_var = _delong_pairwise(p, y)
    assert (auc, variance) == pytest.approx((oracle_auc, oracle_var), rel=1e-10)
    got = arm_metrics(p, y)
    half = 1.959963984540054 * math.sqrt(variance)
    assert (got.roc_auc_low, got.roc_auc_high) == pytest.approx((auc - half, auc + half), rel=1e-12)


def test_the_delong_interval_covers_the_true_auc_95_percent_of_the_time() -> None:
    """Binormal scores (positives N(1, 1), negatives N(0, 1): AUC = Φ(1/√2)), 400 data sets of 150 rows:
    the 95 % interval misses in 20 of 400 expected; 99.9 % binomial band [7, 38]."""
    rng = np.random.default_rng(8)
    truth = stats.norm.cdf(1 / math.sqrt(2))
    misses = 0
    for _ in range(400):
        y = (rng.random(150) < 0.3).astype(np.float64)
        score = stats.norm.cdf(rng.normal(y, 1.0))  # a probability-like score, same ranks
        got = arm_metrics(score, y)
        assert got.roc_auc_low is not None and got.roc_auc_high is not None
        misses += not got.roc_auc_low <= truth <= got.roc_auc_high
    assert 7 <= misses <= 38, misses


def test_ece_matches_a_direct_loop() -> None:
    p, y = _data(3_000, 9)
    p[:3] = [0.0, 1.0, 0.1]  # the edges: 1.0 belongs to the last bin, 0.1 to the second
    expected = 0.0
    for b in range(10):
        low, high = b / 10, (b + 1) / 10
        inside = [(pi, yi) for pi, yi in zip(p, y, strict=True) if low <= pi < high or (b == 9 and pi == 1.0)]
        if inside:
            gap = abs(sum(yi for _, yi in inside) / len(inside) - sum(pi for pi, _ in inside) / len(inside))
            expected += len(inside) / len(p) * gap
    assert ece(p, y) == pytest.approx(expected, rel=1e-12)


def test_unit_values_are_the_metrics_per_prediction() -> None:
    p, y = _data(500, 10)
    assert unit_values("logLoss", p, y).mean() == pytest.approx(arm_metrics(p, y).log_loss, rel=1e-15)
    assert np.array_equal(unit_values("successRate", p, y), y)
    assert np.allclose(unit_values("brier", p, y), (p - y) ** 2)
    assert unit_values("logLoss", [0.0], [1]).item() == pytest.approx(BOUNDS["logLoss"])
    assert LOWER_IS_BETTER == {"logLoss": True, "brier": True, "successRate": False}
    with pytest.raises(ValueError, match="Expected metric"):
        unit_values("accuracy", p, y)


def test_invalid_rows_are_nan_and_left_out_never_an_error() -> None:
    p = np.array([0.2, np.nan, 1.5, 0.7, 0.4, np.inf])
    y = np.array([1, 0, 1, 2, 0, 1], dtype=np.float64)
    assert np.isnan(unit_values("brier", p, y)).tolist() == [False, True, True, True, False, True]
    got = arm_metrics(p, y)
    assert (got.n, got.invalid) == (2, 4)
    assert got.log_loss == pytest.approx(-(math.log(0.2) + math.log(0.6)) / 2)
    assert arm_metrics([], []) == ArmMetrics(0)
    one_class = arm_metrics([0.2, 0.3], [1, 1])
    assert one_class.roc_auc is None and one_class.roc_auc_low is None and one_class.log_loss is not None
    single_positive = arm_metrics([0.2, 0.3, 0.9], [0, 0, 1])
    assert single_positive.roc_auc == 1.0 and single_positive.roc_auc_low is None
    with pytest.raises(ValueError, match="same length"):
        arm_metrics([0.1], [1, 0])


def test_the_metrics_encode_as_camel_case_json() -> None:
    encoded = msgspec.json.decode(msgspec.json.encode(arm_metrics([0.2, 0.8, 0.6], [0, 1, 0])))
    assert set(encoded) == {
        "n", "invalid", "successRate", "logLoss", "brier", "ece", "rocAuc", "rocAucLow", "rocAucHigh",
    }  # fmt: skip
