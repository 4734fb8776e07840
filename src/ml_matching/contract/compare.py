"""The one row-by-row comparison behind the golden rows, the parity gate and every later check."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: How far a re-scored golden row (or contribution) may be from the value recorded at training.
GOLDEN_TOLERANCE = 1e-5


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two runs of the same rows compared: the farthest row and how far (NaN counts as farthest)."""

    rows: int
    worst_row: int
    max_abs_diff: float
    expected: float
    got: float

    def within(self, tolerance: float) -> bool:
        return self.max_abs_diff <= tolerance  # False for NaN too


def compare(expected: npt.ArrayLike, got: npt.ArrayLike) -> Comparison:
    """Compare two equally long sequences of probabilities (or any values) row by row.

    The one place that finds "the worst row past a tolerance": golden rows at load, the parity gate at
    export, and every later check that compares two runtimes.
    """
    want = np.asarray(expected, dtype=np.float64).reshape(-1)
    have = np.asarray(got, dtype=np.float64).reshape(-1)
    if want.shape != have.shape:
        raise ValueError(f"compared {want.size} expected values with {have.size}")
    diff = np.abs(want - have)
    nan = np.isnan(diff)
    worst = int(np.argmax(nan)) if nan.any() else int(np.argmax(diff)) if diff.size else 0
    gap = float(diff[worst]) if diff.size else 0.0
    return Comparison(
        rows=int(diff.size),
        worst_row=worst,
        max_abs_diff=gap,
        expected=float(want[worst]) if diff.size else 0.0,
        got=float(have[worst]) if diff.size else 0.0,
    )
