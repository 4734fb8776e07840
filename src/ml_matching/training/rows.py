"""Rows derived from the training data: per-feature statistics, random in-range rows, golden rows,
stratified samples."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ml_matching.contract import FeatureSet, FeatureStats, GoldenRow, Histogram

HISTOGRAM_BINS = 10
#: A sample keeps at least this many rows of each outcome (all it has, when fewer): enough for every
#: cross-validation fold and for a ROC-AUC, however rare the outcome.
MIN_PER_OUTCOME = 100


def stratified_sample(y: npt.NDArray[np.int64], rows: int, seed: int) -> npt.NDArray[np.intp]:
    """Indices, in order, of a sample of about ``rows`` of ``y``'s rows with its outcome rate.

    Each outcome gets its share of ``rows`` (largest remainders round), but at least
    ``MIN_PER_OUTCOME`` rows, so the sample may exceed ``rows`` by that much; every row when ``rows``
    is 0 or there are no more rows than ``rows``.
    """
    if rows == 0 or len(y) <= rows:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    outcomes, counts = np.unique(y, return_counts=True)
    exact = rows * counts / len(y)
    shares = np.floor(exact).astype(int)
    shares[np.argsort(exact - shares)[::-1][: rows - shares.sum()]] += 1
    chosen = [
        rng.choice(np.flatnonzero(y == outcome), min(count, max(share, MIN_PER_OUTCOME)), replace=False)
        for outcome, count, share in zip(outcomes, counts, shares, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def feature_bounds(
    fs: FeatureSet, x: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Declared bounds where the feature set has them, else the observed ones."""
    lo = np.array([f.min if f.min is not None else x[:, j].min() for j, f in enumerate(fs.features)])
    hi = np.array([f.max if f.max is not None else x[:, j].max() for j, f in enumerate(fs.features)])
    return lo, hi


def feature_stats(fs: FeatureSet, x: npt.NDArray[np.float64]) -> dict[str, FeatureStats]:
    """Observed min, max, mean and a 10-bin histogram over the feature's range, per feature."""
    lo, hi = feature_bounds(fs, x)
    out: dict[str, FeatureStats] = {}
    for j, name in enumerate(fs.names):
        col = x[:, j]
        top = hi[j] if hi[j] > lo[j] else lo[j] + 1.0  # a constant column still gets a valid range
        counts, edges = np.histogram(col, bins=HISTOGRAM_BINS, range=(lo[j], top))
        out[name] = FeatureStats(
            min=float(col.min()),
            max=float(col.max()),
            mean=float(col.mean()),
            histogram=Histogram(edges=tuple(map(float, edges)), counts=tuple(map(int, counts))),
        )
    return out


def random_rows(fs: FeatureSet, x: npt.NDArray[np.float64], n: int, seed: int) -> npt.NDArray[np.float32]:
    """``n`` float32 rows drawn uniformly within each feature's bounds."""
    lo, hi = feature_bounds(fs, x)
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, size=(n, len(fs))).astype(np.float32)


def golden_inputs(
    fs: FeatureSet, holdout: npt.NDArray[np.float32], random: npt.NDArray[np.float32], n: int
) -> npt.NDArray[np.float32]:
    """Golden inputs: the bounds' corners, then held-out rows and random rows in turn."""
    lo, hi = feature_bounds(fs, holdout.astype(np.float64))
    corners = np.array([lo, hi], dtype=np.float32)
    rest = n - len(corners)
    picks = [holdout[: (rest + 1) // 2], random[: rest // 2]]
    return np.concatenate([corners, *picks])[:n]


def golden_rows(
    fs: FeatureSet,
    x: npt.NDArray[np.float32],
    proba: npt.NDArray[np.float64],
    baseline: npt.NDArray[np.float64],
) -> tuple[GoldenRow, ...]:
    """Pair each input (as exact float32 values) with its expected probabilities."""
    return tuple(
        GoldenRow(
            features=dict(zip(fs.names, map(float, row), strict=True)),
            probability=float(p),
            baseline_probability=float(b),
        )
        for row, p, b in zip(x, proba, baseline, strict=True)
    )
