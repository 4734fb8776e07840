"""Whether a goal is met, judged from a figure's paired values over the reps of one bench run.

Each rep gives one paired value (a configuration against the plain runs beside it). The verdict
comes from a 95 % confidence interval for the *median* of those values, taken from their order
statistics (``scipy.stats.quantile_test``): it assumes nothing of their distribution, only that the
reps are independent, which holds here because each rep pairs its configuration with plain runs of
its own. A goal is

- **met** when the whole interval lies on the goal's side of the bound,
- **not met** when the whole interval lies on the other side,
- **undecided** otherwise, and always below :data:`MIN_REPS` reps (the interval is then unbounded:
  with 5 values, even the lowest and highest cover the median only 94 % of the time).

The chance of calling a goal not met when its true median is exactly on the bound is at most 2.5 %
(one side of a 95 % interval), whatever the noise; ``tests/statistics/test_bench_verdict.py``
measures it by simulation, with the bench's own pairing and a drifting machine, and checks the
interval against an independent binomial construction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats

#: The confidence level of the interval a verdict is read from.
LEVEL = 0.95
#: The fewest reps whose order statistics bound the median at LEVEL (fewer: scipy gives NaN).
MIN_REPS = 6

MET, NOT_MET, UNDECIDED = "met", "not met", "undecided"


def median_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """The distribution-free ``level`` confidence interval for the median of ``values``
    (``(-inf, inf)`` when there are too few of them to bound it: scipy's NaN)."""
    ci = stats.quantile_test(list(values), p=0.5).confidence_interval(level)
    low, high = float(ci.low), float(ci.high)
    return (-math.inf if math.isnan(low) else low), (math.inf if math.isnan(high) else high)


def verdict(values: Sequence[float], bound: float, at_least: bool, level: float = LEVEL) -> str:
    """``met``, ``not met`` or ``undecided`` for the goal "the median is at least (or at most) ``bound``"."""
    low, high = median_interval(values, level)
    if at_least:
        return MET if low >= bound else NOT_MET if high < bound else UNDECIDED
    return MET if high <= bound else NOT_MET if low > bound else UNDECIDED
