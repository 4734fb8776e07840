from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ml_matching.contract import Feature, FeatureSet, default_feature_set
from ml_matching.training.synth import bayes_figures, synthesize, true_logit

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
    # synth counts pairs with scipy's Mann-Whitney U; scikit-learn integrates the ROC curve.
    assert body["bayes"]["rocAuc"] == pytest.approx(roc_auc_score(y, p), rel=1e-12)


def test_tied_scores_count_half_a_pair_as_roc_auc_does() -> None:
    p = np.array([0.2, 0.5, 0.5, 0.5, 0.9, 0.1])
    y = np.array([False, True, False, True, True, False])
    assert bayes_figures(p, y)["rocAuc"] == pytest.approx(roc_auc_score(y, p), rel=1e-12)
    assert math.isnan(bayes_figures(p, np.ones(6, dtype=bool))["rocAuc"])  # one outcome: undefined


def test_another_feature_set_gets_a_truth_of_its_own_within_its_ranges() -> None:
    fs = FeatureSet(
        (
            Feature("followers", min=0, max=1_000_000),
            Feature("replyRate", min=0, max=1),
            Feature("priceFit", min=-1, max=1),
            Feature("tenure", min=2),  # no maximum: drawn over [2, 3]
            Feature("noise"),  # no bounds: drawn over [0, 1]
        )
    )
    body = synthesize(4000, fs, seed=5)
    x = np.array([[row[f.name] for f in fs.features] for row in body["features"]])
    assert (x.min(axis=0) >= [0, 0, -1, 2, 0]).all() and (x.max(axis=0) <= [1e6, 1, 1, 3, 1]).all()
    assert x[:, 0].max() > 0.9e6  # the whole declared range is used
    assert body["generator"] == "ml-matching synth --rows 4000 --seed 5"
    # The truth is the documented one: a threshold on the first feature's middle, and so on.
    y = np.array(body["outcomes"])
    high = x[:, 0] > 500_000
    assert y[high].mean() - y[~high].mean() > 0.4
    assert 0.75 < body["bayes"]["rocAuc"] < 1
