"""Synthetic collaboration outcomes with a known ground truth.

Each feature is drawn uniformly from [0, 1]. The true success probability is
``p = sigmoid(z)`` with (``c(x) = x - 0.5``)::

    z = -1.0
        + 3.0 [brandFit > 0.4]                           # threshold: the persona fits the brand
        + 2.5 c(nicheAlignment) + 2.0 c(audienceMatch)
        + 10 c(nicheAlignment) c(audienceMatch)          # interaction: both high, or both low, helps
        - 4.0 [budgetAlignment < 0.3]                    # threshold: the brand cannot afford it
        - 3.0 [lastActiveScore < 0.15]                   # threshold: the influencer has gone quiet
        + 2.5 [postingConsistency > 0.6 and contentEngagement > 0.6]

and the outcome is a Bernoulli draw from ``p``. The other features carry no signal. A linear model
cannot express the interaction or the thresholds, so it scores measurably worse than tree ensembles.
The Bayes-optimal classifier predicts ``p > 0.5``; its accuracy and ROC-AUC on the drawn sample are
the best any model can reach on that sample.

Another feature set (one without those seven features) gets a truth of the same kind on its first
features, each drawn uniformly over its declared range and scaled to ``u`` in [0, 1] (a bound it
lacks: its other bound ± 1, or [0, 1])::

    z = -0.5 + 3.0 [u0 > 0.5] + 10 c(u1) c(u2) + 2.0 c(u3)     # terms for the features there are
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import mannwhitneyu

from ml_matching.contract import FeatureSet

Array = npt.NDArray[np.float64]


def true_logit(x: dict[str, Array]) -> Array:
    """The ground-truth logit of the module docstring, from columns by feature name."""

    def c(name: str) -> Array:
        return x[name] - 0.5

    z = (
        -1.0
        + 3.0 * (x["brandFit"] > 0.4)
        + 2.5 * c("nicheAlignment")
        + 2.0 * c("audienceMatch")
        + 10.0 * c("nicheAlignment") * c("audienceMatch")
        - 4.0 * (x["budgetAlignment"] < 0.3)
        - 3.0 * (x["lastActiveScore"] < 0.15)
        + 2.5 * ((x["postingConsistency"] > 0.6) & (x["contentEngagement"] > 0.6))
    )
    return np.asarray(z, dtype=np.float64)


def generic_logit(u: Array) -> Array:
    """The truth of another feature set, from its columns scaled to [0, 1] (see the module docstring)."""
    z = np.full(len(u), -0.5)
    n = u.shape[1]
    if n > 0:
        z += 3.0 * (u[:, 0] > 0.5)
    if n > 2:
        z += 10.0 * (u[:, 1] - 0.5) * (u[:, 2] - 0.5)
    if n > 3:
        z += 2.0 * (u[:, 3] - 0.5)
    return z


def _ranges(fs: FeatureSet) -> tuple[Array, Array]:
    lo = [f.min if f.min is not None else (f.max - 1.0 if f.max is not None else 0.0) for f in fs.features]
    hi = [f.max if f.max is not None else lo[j] + 1.0 for j, f in enumerate(fs.features)]
    return np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64)


def synthesize(rows: int, feature_set: FeatureSet, seed: int = 42) -> dict[str, Any]:
    """Draw ``rows`` outcomes; return the original service's ``/train`` body plus the Bayes-optimal figures.

    The result has ``features`` (list of objects), ``outcomes`` (list of bools), ``generator`` (what
    drew them: the training data's provenance in the sidecar and the model card) and ``bayes``
    (``accuracy`` and ``rocAuc`` of the true probabilities on this very sample).
    """
    if rows < 2:
        raise ValueError(f"rows must be >= 2, got {rows}")
    rng = np.random.default_rng(seed)
    lo, hi = _ranges(feature_set)
    u = rng.uniform(0.0, 1.0, size=(rows, len(feature_set)))
    # Rounded to 4 decimals, as a product would store scores; keeps files small and exact.
    x = np.clip(np.round(lo + u * (hi - lo), 4), lo, hi)
    if set(_SIGNAL) <= set(feature_set.names):
        z = true_logit({name: x[:, j] for j, name in enumerate(feature_set.names)})
    else:
        z = generic_logit((x - lo) / (hi - lo))
    p = 1.0 / (1.0 + np.exp(-z))
    y = rng.uniform(size=rows) < p
    return {
        "features": [dict(zip(feature_set.names, map(float, row), strict=True)) for row in x],
        "outcomes": [bool(v) for v in y],
        "generator": f"ml-matching synth --rows {rows} --seed {seed}",
        "bayes": bayes_figures(p, y),
    }


def bayes_figures(p: Array, y: npt.NDArray[np.bool_]) -> dict[str, float]:
    """Accuracy and ROC-AUC of the true probabilities ``p`` on outcomes ``y``."""
    positives, negatives = int(y.sum()), int(y.size - y.sum())
    auc = math.nan  # undefined with one outcome only
    if positives and negatives:
        # The Mann-Whitney U of the positives' scores over the negatives' is the pairs they rank
        # above (ties count half): ROC-AUC times the pairs. scipy.stats, not sklearn.metrics, which
        # would import all of scikit-learn for it: 1.2-1.5 s more CPU per `ml-matching synth` here.
        auc = mannwhitneyu(p[y], p[~y]).statistic / (positives * negatives)
    return {
        "accuracy": float(np.mean((p > 0.5) == y)),
        "rocAuc": float(auc),
        "positiveRate": float(np.mean(y)),
    }


_SIGNAL = (
    "brandFit",
    "nicheAlignment",
    "audienceMatch",
    "budgetAlignment",
    "lastActiveScore",
    "postingConsistency",
    "contentEngagement",
)
