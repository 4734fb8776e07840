"""The estimators ml-matching trains, with the original service's defaults, and the logistic baseline."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
from sklearn.base import ClassifierMixin
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ml_matching.contract import ALGORITHMS
from ml_matching.training.config import TrainConfig

BASELINE = "logistic_regression"


def hyperparameters(algorithm: str, config: TrainConfig) -> dict[str, Any]:
    """The constructor arguments of ``algorithm`` under ``config`` (``random_state`` included)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    params: dict[str, Any] = msgspec.to_builtins(getattr(config, algorithm))
    return {**params, "random_state": config.seed}


def make_estimator(algorithm: str, config: TrainConfig) -> ClassifierMixin:
    """A fresh, unfitted estimator of ``algorithm``."""
    params = hyperparameters(algorithm, config)
    cls = RandomForestClassifier if algorithm == "random_forest" else GradientBoostingClassifier
    return cls(**params)


def is_multithreaded(algorithm: str, config: TrainConfig) -> bool:
    """Whether the estimator already spreads over cores (then folds run one after another)."""
    return algorithm == "random_forest" and config.random_forest.n_jobs != 1


def in_tree_order(fitted: Any) -> Any:
    """Make ``fitted`` predict the same bits on every call; return it.

    A forest predicting on several threads adds its trees' probabilities in the order the threads
    finish, so one row's probability can change in its last bit from one call to the next (and
    with it a metric, or a calibrator fitted on those probabilities). With ``n_jobs=1`` it adds them
    in tree order; predicting costs little next to fitting. What was fitted, and what the sidecar
    records as hyperparameters, is unchanged.
    """
    if isinstance(fitted, RandomForestClassifier):
        fitted.set_params(n_jobs=1)
    return fitted


def make_baseline(config: TrainConfig) -> Pipeline:
    """Standardised logistic regression; standardising keeps the solver well-conditioned."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=config.seed))


def baseline_weights(baseline: Pipeline) -> tuple[float, npt.NDArray[np.float64]]:
    """Fold the scaler into the logistic weights: ``p = sigmoid(b + w . x)`` on raw features."""
    scaler: StandardScaler = baseline[0]
    logistic: LogisticRegression = baseline[-1]
    w = logistic.coef_[0] / scaler.scale_
    b = float(logistic.intercept_[0] - np.dot(w, scaler.mean_))
    return b, np.asarray(w, dtype=np.float64)


def weighted_proba(
    intercept: float, weights: npt.NDArray[np.float64], x: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The baseline's probability from its folded weights, as every runtime computes it."""
    return np.asarray(1.0 / (1.0 + np.exp(-(intercept + x @ weights))), dtype=np.float64)
