"""Calibrated probabilities: can a score of 80 be read as 80 %?

``fit --calibrate none|sigmoid|isotonic|auto`` (default ``auto``). ``auto`` compares ``none``
and ``sigmoid`` by their Brier score on the cross-validation folds: the model's out-of-fold
probabilities, as they are (``none``), or after a Platt scaling that is itself fitted out-of-fold
(``sigmoid``); sigmoid wins only by more than the folds' noise (see :func:`choose`). Isotonic is
measured there too but only used when asked for.

A calibrated model is scikit-learn's ``CalibratedClassifierCV(ensemble=False)``: the calibrator is
fitted on out-of-fold predictions and one estimator, fitted on every training row, does the
scoring, so the exported ONNX graph is the uncalibrated one plus a few operators. Those
out-of-fold predictions are the cross-validation's (the same folds), so :func:`calibrate` assembles
the fitted model from them rather than fitting every fold a second time, as
``CalibratedClassifierCV.fit`` would (at 100k rows, about a tenth of ``fit --model all``); the
model is the same to the bit (``tests/training/test_calibration.py``). What calibration did is
measured on the held-out split before and after (Brier score, log loss, expected calibration
error over 10 equal-width bins) and kept in the sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV, _CalibratedClassifier, _SigmoidCalibration
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.preprocessing import label_binarize

from ml_matching.contract import Calibration, CalibrationFigures

ECE_BINS = 10
Vector = npt.NDArray[np.float64]


def expected_calibration_error(y: npt.NDArray[Any], p: Vector, bins: int = ECE_BINS) -> float:
    """Σ over equal-width probability bins of (rows in bin / rows) · |outcome rate − mean p|."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += float(inside.mean()) * abs(float(y[inside].mean()) - float(p[inside].mean()))
    return total


def figures(y: npt.NDArray[Any], p: Vector) -> CalibrationFigures:
    return CalibrationFigures(
        brier=float(brier_score_loss(y, p)),
        log_loss=float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        ece=expected_calibration_error(y, p),
    )


def score_input(algorithm: str, p: Vector) -> Vector:
    """What scikit-learn's calibrator reads: the decision function (log-odds) of gradient boosting,
    the positive-class probability of a random forest (which has no decision function)."""
    if algorithm == "gradient_boosting":
        q = np.clip(p, 1e-15, 1 - 1e-15)
        return np.asarray(np.log(q / (1 - q)), dtype=np.float64)
    return p


@dataclass(frozen=True)
class CrossValidatedBrier:
    """The Brier score of the out-of-fold probabilities per calibration, and how sure sigmoid's gain
    over none is: the paired per-row difference of squared errors, its mean and standard error."""

    brier: dict[str, float]
    sigmoid_gain: float
    sigmoid_gain_se: float


def cv_brier(algorithm: str, y: npt.NDArray[Any], oof: Vector, folds: int, seed: int) -> CrossValidatedBrier:
    """The Brier score of the out-of-fold probabilities as they are and after each calibration,
    the calibrators themselves fitted out-of-fold on the same folds."""
    f = score_input(algorithm, oof).reshape(-1, 1)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # Platt scaling is a one-feature logistic regression without a penalty to speak of.
    platt = cross_val_predict(LogisticRegression(C=1e6), f, y, cv=cv, method="predict_proba")[:, 1]
    iso = cross_val_predict(IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1), f, y, cv=cv)
    gain = (oof - y) ** 2 - (platt - y) ** 2
    return CrossValidatedBrier(
        brier={
            "none": float(brier_score_loss(y, oof)),
            "sigmoid": float(brier_score_loss(y, platt)),
            "isotonic": float(brier_score_loss(y, np.clip(iso, 0, 1))),
        },
        sigmoid_gain=float(gain.mean()),
        sigmoid_gain_se=float(gain.std(ddof=1) / np.sqrt(len(gain))),
    )


@dataclass(frozen=True)
class Choice:
    method: str
    chosen_by: str
    cv_brier: dict[str, float]


#: ``auto`` takes sigmoid only when its Brier gain on the folds is this many standard errors above 0.
SURE = 2.0


def choose(requested: str, cv: CrossValidatedBrier) -> Choice:
    """``requested`` as is; for ``auto``, sigmoid when it lowers the cross-validated Brier score by
    more than ``SURE`` standard errors, else none.

    Why not simply the lower of the two: on data a model already fits well (gradient boosting on
    the synthetic set) sigmoid's gain on the folds is a few hundred-thousandths, within the noise,
    and the held-out calibration error went up about as often as down. A tie goes to the model
    without a calibrator.
    """
    if requested != "auto":
        return Choice(requested, "requested", cv.brier)
    z = cv.sigmoid_gain / cv.sigmoid_gain_se if cv.sigmoid_gain_se > 0 else 0.0
    method = "sigmoid" if z > SURE else "none"
    why = (
        f"auto: sigmoid's cross-validated Brier score {cv.brier['sigmoid']:.4f} vs none's "
        f"{cv.brier['none']:.4f}, a gain of {z:.1f} standard errors (sigmoid when > {SURE:g})"
    )
    return Choice(method, why, cv.brier)


def calibrated(estimator: ClassifierMixin, method: str, folds: int, seed: int) -> ClassifierMixin:
    """``estimator`` wrapped to give calibrated probabilities (``none``: itself)."""
    if method == "none":
        return estimator
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return CalibratedClassifierCV(estimator, method=method, cv=cv, ensemble=False)


def calibrate(
    estimator: ClassifierMixin,
    fitted: ClassifierMixin,
    method: str,
    response: Vector,
    y: npt.NDArray[Any],
    folds: int,
    seed: int,
) -> ClassifierMixin:
    """What ``calibrated(estimator, method, folds, seed).fit(x, y)`` gives, from the estimator
    already fitted on ``x`` and its out-of-fold ``response`` on the same folds (``none``: ``fitted``).

    Mirrors ``CalibratedClassifierCV.fit`` with ``ensemble=False`` for two classes: one calibrator,
    fitted on the positive class's response, beside the estimator fitted on every row. The pair
    and the sigmoid calibrator are scikit-learn's private classes, what skl2onnx converts; a test
    compares the result with ``CalibratedClassifierCV.fit``'s, so a release that changes them fails it.
    """
    if method == "none":
        return fitted
    model = calibrated(estimator, method, folds, seed)
    classes = np.unique(y)
    positive = label_binarize(y, classes=classes)[:, 0]
    calibrator = (
        IsotonicRegression(out_of_bounds="clip") if method == "isotonic" else _SigmoidCalibration()
    ).fit(response, positive)
    pair = _CalibratedClassifier(fitted, [calibrator], classes=classes, method=method)
    model.calibrated_classifiers_ = [pair]
    model.classes_ = classes
    model.n_features_in_ = fitted.n_features_in_
    return model


def base_estimator(model: Any) -> Any:
    """The one fitted forest or boosting of ``model`` (itself when it is not calibrated)."""
    if isinstance(model, CalibratedClassifierCV):
        return model.calibrated_classifiers_[0].estimator
    return model


def record(choice: Choice, y_hold: npt.NDArray[Any], before: Vector, after: Vector) -> Calibration:
    """The sidecar's account of calibration: what was chosen, why, and the held-out figures."""
    return Calibration(
        method=choice.method,
        chosen_by=choice.chosen_by,
        cv_brier=choice.cv_brier,
        bins=ECE_BINS,
        holdout_before=figures(y_hold, before),
        holdout_after=figures(y_hold, after),
    )
