"""Input drift: are the rows being scored still like the rows the served version was trained on?

A :class:`DriftWindow` keeps the last ``size`` scored rows of one version (a ring buffer; appending
is a copy under a lock, so the request path pays microseconds). :meth:`DriftWindow.report`
computes, on demand, per feature:

- the population stability index against the sidecar's training histogram, on the same bin edges:
  ``PSI = Σ (a − e) · ln(a / e)`` over the bins, with ``a`` and ``e`` the shares of the window's and
  the training data's values in each bin (values beyond the edges counted in the end bins), each
  floored at ``EPSILON`` so an empty bin does not divide by zero;
- the share of values outside the training data's observed min/max.

Read as usual: below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 shifted. Nothing is computed
before ``min_rows`` rows (the default 500: fewer give noisy shares). The Node client computes the
same from the same sidecar histograms (``model.drift()``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ml_matching.contract import FeatureStats, LoadedModel

EPSILON = 1e-4
STABLE, SHIFTED = 0.1, 0.25


def reading(psi: float | None) -> str:
    """``stable``, ``moderate`` or ``shifted`` (``insufficient`` before enough rows)."""
    if psi is None:
        return "insufficient"
    return "stable" if psi < STABLE else "moderate" if psi <= SHIFTED else "shifted"


def psi(expected_counts: npt.ArrayLike, actual_counts: npt.ArrayLike) -> float:
    """The population stability index of two histograms on the same bins."""
    e = np.asarray(expected_counts, dtype=np.float64)
    a = np.asarray(actual_counts, dtype=np.float64)
    e = np.maximum(e / max(e.sum(), 1.0), EPSILON)
    a = np.maximum(a / max(a.sum(), 1.0), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def binned(values: npt.NDArray[np.float32], edges: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Counts of ``values`` in the bins of ``edges``; values beyond them go to the end bins."""
    inner = np.searchsorted(edges, values.astype(np.float64), side="right") - 1
    return np.bincount(np.clip(inner, 0, len(edges) - 2), minlength=len(edges) - 1).astype(np.int64)


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    psi: float | None
    reading: str
    out_of_range: float | None
    rows: int
    training_min: float
    training_max: float
    edges: tuple[float, ...]
    training_counts: tuple[int, ...]
    window_counts: tuple[int, ...]


@dataclass(frozen=True)
class DriftReport:
    version: str
    rows: int
    window: int
    min_rows: int
    features: tuple[FeatureDrift, ...]


class DriftWindow:
    """The last ``size`` rows one version scored, and their drift from its training data."""

    def __init__(self, model: LoadedModel, size: int, min_rows: int) -> None:
        self.model = model
        self.size = size
        self.min_rows = min_rows
        self._rows = np.zeros((size, len(model.feature_set)), dtype=np.float32)
        self._next = 0
        self._count = 0
        self._lock = threading.Lock()

    def add(self, x: npt.NDArray[np.float32]) -> None:
        """Remember scored rows ``x`` (float32 ``[k, n]``), the oldest leaving first."""
        k = len(x)
        if k >= self.size:
            x, k = x[-self.size :], self.size
        with self._lock:
            end = self._next + k
            if end <= self.size:
                self._rows[self._next : end] = x
            else:
                split = self.size - self._next
                self._rows[self._next :] = x[:split]
                self._rows[: k - split] = x[split:]
            self._next = end % self.size
            self._count = min(self._count + k, self.size)

    def snapshot(self) -> npt.NDArray[np.float32]:
        with self._lock:
            return self._rows[: self._count].copy()

    def report(self) -> DriftReport:
        rows = self.snapshot()
        enough = len(rows) >= self.min_rows
        stats = self.model.sidecar.training_data.features
        features = tuple(
            feature_drift(name, stats[name], rows[:, j], enough)
            for j, name in enumerate(self.model.feature_set.names)
        )
        return DriftReport(self.model.version, len(rows), self.size, self.min_rows, features)


def feature_drift(
    name: str, stats: FeatureStats, column: npt.NDArray[np.float32], enough: bool
) -> FeatureDrift:
    """One feature's window ``column`` against its training ``stats`` (PSI only when ``enough``)."""
    hist = stats.histogram
    counts = binned(column, np.array(hist.edges, dtype=np.float64))
    value = outside = None
    if enough:
        value = psi(hist.counts, counts)
        # Compared in float32, as the model sees them (like the runtime's range check).
        outside = float(np.mean((column < np.float32(stats.min)) | (column > np.float32(stats.max))))
    return FeatureDrift(
        name=name,
        psi=value,
        reading=reading(value),
        out_of_range=outside,
        rows=len(column),
        training_min=stats.min,
        training_max=stats.max,
        edges=hist.edges,
        training_counts=hist.counts,
        window_counts=tuple(int(c) for c in counts),
    )
