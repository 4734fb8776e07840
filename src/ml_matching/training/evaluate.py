"""Metrics, stratified k-fold cross-validation and the overfitting check."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from joblib import Parallel, delayed
from sklearn.base import ClassifierMixin, clone
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold

from ml_matching.contract import CrossValidation, Metrics, Overfitting
from ml_matching.training.estimators import in_tree_order

Progress = Callable[[str], None]
_FIELDS = Metrics.__struct_fields__


def metrics(y: npt.NDArray[Any], p: npt.NDArray[np.float64], threshold: float) -> Metrics:
    """Metrics of positive-class probabilities ``p`` against 0/1 outcomes ``y``."""
    pred = (p >= threshold).astype(int)
    return Metrics(
        accuracy=float(accuracy_score(y, pred)),
        precision=float(precision_score(y, pred, zero_division=0)),
        recall=float(recall_score(y, pred, zero_division=0)),
        f1=float(f1_score(y, pred, zero_division=0)),
        roc_auc=float(roc_auc_score(y, p)),
        log_loss=float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        brier=float(brier_score_loss(y, p)),
    )


def positive_proba(estimator: ClassifierMixin, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Probability of class 1 (the estimator's classes are 0 and 1)."""
    return np.asarray(estimator.predict_proba(x)[:, 1], dtype=np.float64)


def ranking_scores(
    estimator: ClassifierMixin, x: npt.NDArray[Any], proba: npt.NDArray[np.float64] | None = None
) -> npt.NDArray[np.float64]:
    """What the rows are ranked by, as scikit-learn's ``roc_auc`` scorer ranks them: the decision
    function where the estimator has one (near p = 1 the probability rounds distinct scores into
    ties), else the probability of class 1 (``proba``, when already computed)."""
    decision = getattr(estimator, "decision_function", None)
    if decision is not None:
        return np.asarray(decision(x), dtype=np.float64)
    return positive_proba(estimator, x) if proba is None else proba


def cross_validate(
    estimator: ClassifierMixin,
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.int64],
    *,
    folds: int,
    seed: int,
    threshold: float,
    n_jobs: int,
    label: str,
    progress: Progress,
    final: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]] | None = None,
) -> CrossValidated:
    """Stratified k-fold CV of ``x``, ``y``; one progress line per fold. ``n_jobs`` runs folds side by side.

    With ``final`` (rows and outcomes: every training row, of which ``x`` may be a sample), the
    estimator is also fitted on them, as one more task of the same batch: it does not depend on
    the folds, so it need not wait for them (on 2 cores, 5 folds and the final fit take 3 rounds
    instead of 4). It goes first, being the longest. The batch runs on this machine's threads (the
    trees are built without the GIL, and a thread costs nothing to start where a process imports
    scikit-learn, about a second of CPU), unless another joblib backend is active: a Dask cluster
    (:mod:`training.cluster`).
    """
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y)
    tasks = [delayed(fit_final)(clone(estimator), *final)] if final is not None else []
    tasks += [delayed(_fold)(clone(estimator), x, y, train, test) for train, test in splits]
    results = Parallel(n_jobs=n_jobs, prefer="threads")(tasks)
    fitted = results.pop(0) if final is not None else None
    oof = np.empty(len(y), dtype=np.float64)
    response = np.empty(len(y), dtype=np.float64)
    per_fold = []
    for i, (test, p, r) in enumerate(results, start=1):
        oof[test], response[test] = p, r
        m = metrics(y[test], p, threshold)
        per_fold.append(m)
        progress(f"{label}: fold {i}/{folds} roc_auc={m.roc_auc:.4f} accuracy={m.accuracy:.4f}")
    return CrossValidated(summarise(tuple(per_fold), len(y)), oof, response, fitted)


@dataclass(frozen=True)
class CrossValidated:
    """The folds' metrics, and every training row's probability (``oof``) and decision function
    (``oof_response``, the probability for a model without one: what scikit-learn's calibrator
    reads) from the fold that held it out; ``fitted``: the estimator fitted on every row, when
    asked for."""

    cv: CrossValidation
    oof: npt.NDArray[np.float64]
    oof_response: npt.NDArray[np.float64]
    fitted: Any = None


def fit_final(est: ClassifierMixin, x: Any, y: Any) -> ClassifierMixin:
    """``est`` fitted on ``x``, ``y``, predicting in tree order (see :func:`in_tree_order`)."""
    return in_tree_order(est.fit(x, y))


def _fold(
    est: ClassifierMixin, x: Any, y: Any, train: Any, test: Any
) -> tuple[Any, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    in_tree_order(est.fit(x[train], y[train]))
    p = positive_proba(est, x[test])
    return test, p, ranking_scores(est, x[test], p)


def summarise(per_fold: tuple[Metrics, ...], rows: int) -> CrossValidation:
    """Mean and (population) standard deviation of each metric over the folds of ``rows`` rows."""
    table = np.array([[getattr(m, f) for f in _FIELDS] for m in per_fold])
    mean = Metrics(**dict(zip(_FIELDS, map(float, table.mean(axis=0)), strict=True)))
    std = Metrics(**dict(zip(_FIELDS, map(float, table.std(axis=0)), strict=True)))
    return CrossValidation(folds=len(per_fold), per_fold=per_fold, mean=mean, std=std, rows=rows)


def overfitting(train: Metrics, cv: CrossValidation, threshold: float) -> Overfitting:
    """Train accuracy minus mean CV accuracy, flagged above ``threshold``."""
    gap = train.accuracy - cv.mean.accuracy
    return Overfitting(
        metric="accuracy",
        train=train.accuracy,
        cv=cv.mean.accuracy,
        gap=gap,
        threshold=threshold,
        flagged=bool(gap > threshold and not math.isclose(gap, threshold)),
    )
