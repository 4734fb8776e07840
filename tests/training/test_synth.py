from __future__ import annotations

import numpy as np
import pytest

from ml_matching.contract import Feature, FeatureSet, default_feature_set
from ml_matching.training.synth import synthesize, true_logit

FS = default_feature_set()


def test_same_seed_same_sample_other_seed_other_sample() -> None:
    assert synthesize(100, FS, seed=1) == synthesize(100, FS, seed=1)
    assert synthesize(100, FS, seed=1)["outcomes"] != synthesize(100, FS, seed=2)["outcomes"]


def test_ground_truth_has_the_documented_effects() -> None:
    base = {n: np.array([0.5]) for n in FS.names}

    def p(**change: float) -> float:
        z = true_logit({**base, **{k: np.array([v]) for k, v in change.items()}})
        return float(1 / (1 + np.exp(-z[0])))

    assert p(budgetAlignment=0.29) < p(budgetAlignment=0.31) - 0.3  # threshold effect

    def z(**change: float) -> float:
        return float(true_logit({**base, **{k: np.array([v]) for k, v in change.items()}})[0])

    # Interaction: on the logit scale, audience matters more when the niche aligns.
    assert z(nicheAlignment=0.9, audienceMatch=0.9) - z(nicheAlignment=0.9) > z(audienceMatch=0.9) - z() + 1
    assert p(locationMatch=0.0) == p(locationMatch=1.0)  # a feature that carries no signal


def test_bayes_figures_are_those_of_the_true_probabilities() -> None:
    body = synthesize(3000, FS, seed=42)
    x = {n: np.array([r[n] for r in body["features"]]) for n in FS.names}
    p = 1 / (1 + np.exp(-true_logit(x)))
    y = np.array(body["outcomes"])
    assert body["bayes"]["accuracy"] == pytest.approx(np.mean((p > 0.5) == y))
    assert 0.8 < body["bayes"]["rocAuc"] < 1


def test_needs_the_signal_features() -> None:
    with pytest.raises(ValueError, match="needs features"):
        synthesize(10, FeatureSet((Feature("a"),)), seed=0)
