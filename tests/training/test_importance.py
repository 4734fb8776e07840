"""Permutation importance scored in a few calls gives scikit-learn's own numbers, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.inspection import permutation_importance

from ml_matching.training.importance import permutation_scores

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = make_classification(n_samples=500, n_features=7, n_informative=4, random_state=3)
    return x[:350], y[:350], x[350:], y[350:]


@pytest.mark.parametrize(
    "model",
    [
        CalibratedClassifierCV(
            RandomForestClassifier(n_estimators=15, max_depth=6, n_jobs=1, random_state=1),
            method="sigmoid",
            cv=3,
            ensemble=False,
        ),
        GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=1),
    ],
    ids=["calibrated forest", "boosting"],
)
@pytest.mark.parametrize(
    "max_values", [1, 3_000, 10**9], ids=["a call a copy", "a few copies a call", "one call"]
)
@pytest.mark.parametrize("seed", [0, 42])
def test_the_same_scores_as_scikit_learn(
    data: tuple[np.ndarray, ...], model: object, max_values: int, seed: int
) -> None:
    x_train, y_train, x, y = data
    model.fit(x_train, y_train)  # type: ignore[attr-defined]
    theirs = permutation_importance(model, x, y, scoring="roc_auc", n_repeats=4, random_state=seed, n_jobs=1)
    ours = permutation_scores(model, x, y, repeats=4, seed=seed, max_values=max_values)
    assert ours.shape == (7, 4)
    np.testing.assert_array_equal(ours, theirs.importances)
    assert np.abs(ours).max() > 0.01  # the informative features lose something when shuffled


def test_boosting_is_ranked_by_its_decision_function_as_scikit_learn_ranks_it() -> None:
    # Strong boosting pushes some shuffled rows' probabilities to the same float (1.0, or next to
    # it) that its raw scores still tell apart: ranked by the probability, they tie, and 3 of
    # these 35 scores move (by about 1e-16).
    x, y = make_classification(
        n_samples=3000, n_features=7, n_informative=4, class_sep=2.0, flip_y=0.01, random_state=3
    )
    model = GradientBoostingClassifier(n_estimators=200, learning_rate=1.0, max_depth=5, random_state=42)
    model.fit(x[:2000], y[:2000])
    held_x, held_y = x[2000:], y[2000:]
    theirs = permutation_importance(model, held_x, held_y, scoring="roc_auc", n_repeats=5, random_state=42)
    np.testing.assert_array_equal(
        permutation_scores(model, held_x, held_y, repeats=5, seed=42), theirs.importances
    )
