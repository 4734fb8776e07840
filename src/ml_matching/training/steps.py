"""The named steps of a training, which ``fit`` and the trainer service compose.

    split → fit_baseline → evaluate → export_and_check → golden → build_sidecar → (publish)

Each step takes what the earlier ones made and returns an immutable result; nothing is written to
the store until a complete sidecar exists (see :mod:`training.pipeline`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import platform
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from sklearn.model_selection import train_test_split

from ml_matching.contract import (
    MODEL_FILE,
    SCHEMA_VERSION,
    Baseline,
    BaselineMetrics,
    Calibration,
    Explanation,
    ExplanationParity,
    FeatureSet,
    FileInfo,
    GoldenRow,
    Importance,
    ModelMetrics,
    OnnxInfo,
    Parity,
    Sidecar,
    TrainingData,
    pin,
    version_stamp,
)
from ml_matching.training import calibration as cal
from ml_matching.training import estimators as est
from ml_matching.training import explain as xp
from ml_matching.training.config import TrainConfig
from ml_matching.training.data import Dataset
from ml_matching.training.errors import DataError, ParityError
from ml_matching.training.evaluate import (
    CrossValidated,
    cross_validate,
    fit_final,
    metrics,
    overfitting,
    positive_proba,
)
from ml_matching.training.export import (
    INPUT_NAME,
    LABEL_OUTPUT,
    PROBABILITIES_OUTPUT,
    check_parity,
    export_onnx,
    onnx_session,
)
from ml_matching.training.importance import permutation_scores
from ml_matching.training.rows import (
    feature_stats,
    golden_inputs,
    golden_rows,
    random_rows,
    stratified_sample,
)

Progress = Callable[[str], None]
ISOTONIC_TRAP = (
    "skl2onnx converts isotonic regression to the nearest threshold where scikit-learn interpolates "
    "between thresholds (sklearn-onnx issue #200), so the exported model.onnx would give other "
    "probabilities than the model that was measured; use --calibrate sigmoid or none"
)
#: Rows in float64, as scikit-learn fits them (the model itself sees float32: contract.Rows32).
Rows64 = npt.NDArray[np.float64]
_LIBRARIES = (
    "scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "scipy", "joblib", "msgspec",
    "matplotlib", "markdown-it-py", "ml-matching",
)  # fmt: skip


@dataclass(frozen=True)
class Split:
    """The stratified held-out split, and the rows cross-validation runs on: the training part, or
    a stratified sample of it (``config.cv_rows``)."""

    x_train: Rows64
    y_train: npt.NDArray[np.int64]
    x_hold: Rows64
    y_hold: npt.NDArray[np.int64]
    x_cv: Rows64
    y_cv: npt.NDArray[np.int64]


def split(data: Dataset, config: TrainConfig) -> Split:
    """Split off ``config.holdout_fraction`` of the rows, stratified by outcome; sample the
    cross-validation's rows from the rest."""
    for value, word in ((1, "true"), (0, "false")):  # before the split, which fails on a lone row
        n = int(np.sum(data.y == value))
        if n < config.folds + 1:
            raise DataError(_too_few(n, word, config.folds, f"at least {config.folds + 1} are needed"))
    rows, held = len(data.y), math.ceil(config.holdout_fraction * len(data.y))  # as scikit-learn rounds
    if held < 2 or rows - held < 2:  # stratified: each part needs a row of each outcome
        raise DataError(
            f"holdout_fraction {config.holdout_fraction:g} of {rows} rows holds out {held} and trains on "
            f"{rows - held}: each part needs at least 2 (one of each outcome)"
        )
    xt, xh, yt, yh = train_test_split(
        data.x, data.y, test_size=config.holdout_fraction, stratify=data.y, random_state=config.seed
    )
    _enough_of_each_outcome(yt, yh, config.folds)
    keep = stratified_sample(yt, config.cv_rows, config.seed)
    return Split(xt, yt, xh, yh, xt[keep], yt[keep])


def _enough_of_each_outcome(y_train: npt.NDArray[Any], y_hold: npt.NDArray[Any], folds: int) -> None:
    """Every cross-validation fold and the held-out part must hold both outcomes: with one, ROC-AUC
    is undefined, and a model would be published with metrics nobody can compare."""
    for value, word in ((1, "true"), (0, "false")):
        train, hold = int(np.sum(y_train == value)), int(np.sum(y_hold == value))
        if train < folds or hold < 1:
            raise DataError(_too_few(train + hold, word, folds, f"the split gave them {train} and {hold}"))


def _too_few(n: int, word: str, folds: int, detail: str) -> str:
    return (
        f"{n} {word} outcome{'' if n == 1 else 's'} {'is' if n == 1 else 'are'} too few: each of the "
        f"{folds} cross-validation folds needs one, and the held-out part another ({detail})"
    )


def _cross_validate(
    model: Any, s: Split, config: TrainConfig, label: str, progress: Progress, jobs: int, refit: bool = False
) -> CrossValidated:
    """Cross-validate on the split's CV rows; with ``refit``, also fit on every training row."""
    return cross_validate(
        model, s.x_cv, s.y_cv, folds=config.folds, seed=config.seed,
        threshold=config.decision_threshold, n_jobs=jobs, label=label, progress=progress,
        final=(s.x_train, s.y_train) if refit else None,
    )  # fmt: skip


@dataclass(frozen=True)
class FittedBaseline:
    """The logistic baseline with its weights folded onto the raw features."""

    sidecar: Baseline
    intercept: float
    weights: Rows64

    def proba(self, x: npt.NDArray[Any]) -> Rows64:
        return est.weighted_proba(self.intercept, self.weights, x.astype(np.float64))


def fit_baseline(fs: FeatureSet, s: Split, config: TrainConfig, progress: Progress) -> FittedBaseline:
    """Cross-validate and fit the logistic baseline; measure it on the held-out split."""
    model = est.make_baseline(config)
    cv = _cross_validate(model, s, config, est.BASELINE, progress, jobs=1).cv
    model.fit(s.x_train, s.y_train)
    b, w = est.baseline_weights(model)
    hold = metrics(s.y_hold, est.weighted_proba(b, w, s.x_hold), config.decision_threshold)
    progress(f"{est.BASELINE}: holdout roc_auc={hold.roc_auc:.4f} accuracy={hold.accuracy:.4f}")
    sidecar = Baseline(
        algorithm=est.BASELINE,
        intercept=b,
        coefficients=dict(zip(fs.names, map(float, w), strict=True)),
        metrics=BaselineMetrics(cross_validation=cv, holdout=hold),
    )
    return FittedBaseline(sidecar, b, w)


@dataclass(frozen=True)
class Evaluated:
    """A fitted estimator (calibrated when chosen) with its metrics, importances and calibration;
    ``hold_before``/``hold_after`` are its held-out probabilities without and with calibration."""

    algorithm: str
    estimator: Any
    metrics: ModelMetrics
    importance: Importance
    calibration: Calibration
    hold_before: Rows64
    hold_after: Rows64
    train_rows: int


#: Folds of a one-core estimator run side by side (on threads) from this many training rows, and
#: its final fit starts beside them (:func:`start_fits`); smaller fits run one after another.
SIDE_BY_SIDE_FROM_ROWS = 2_000


def evaluate(
    algorithm: str,
    fs: FeatureSet,
    s: Split,
    config: TrainConfig,
    progress: Progress,
    *,
    distributed: bool = False,
    fitting: Future[Any] | None = None,
) -> Evaluated:
    """Cross-validate ``algorithm`` and fit it on the training part (one batch), choose its
    calibration on the folds and fit the calibrator on their predictions, measure it on the
    held-out split.

    ``distributed``: joblib's active backend is a Dask cluster (:mod:`training.cluster`), so the
    folds go there side by side whatever the estimator; locally they run one after another when
    the estimator already uses every core, or when the fit is small. ``fitting``: the fit on the
    training part, already under way (:func:`start_fits`); else it joins the folds' batch.
    """
    model = est.make_estimator(algorithm, config)
    # The batch's largest fit: the final one when it is in the batch, else a fold of the CV rows.
    largest = len(s.y_train) if fitting is None else len(s.y_cv)
    side_by_side = largest >= SIDE_BY_SIDE_FROM_ROWS and not est.is_multithreaded(algorithm, config)
    jobs = -1 if distributed or side_by_side else 1
    crossed = _cross_validate(model, s, config, algorithm, progress, jobs=jobs, refit=fitting is None)
    fitted = crossed.fitted if fitting is None else fitting.result()
    oof_brier = cal.cv_brier(algorithm, s.y_cv, crossed.oof, config.folds, config.seed)
    choice = cal.choose(config.calibrate, oof_brier)
    final = cal.calibrate(
        model, fitted, choice.method, crossed.oof_response, s.y_cv, config.folds, config.seed
    )
    t = config.decision_threshold
    after = positive_proba(final, s.x_hold)
    before = positive_proba(cal.base_estimator(final), s.x_hold)
    calibration = cal.record(choice, s.y_hold, before, after)
    progress(
        f"{algorithm}: calibration {choice.method} ({choice.chosen_by}): held-out ECE "
        f"{calibration.holdout_before.ece:.4f} -> {calibration.holdout_after.ece:.4f}"
    )
    # Before calibration, like the folds it is compared with: the gap is the forest's, not the calibrator's.
    train_m = metrics(s.y_train, positive_proba(cal.base_estimator(final), s.x_train), t)
    hold_m = metrics(s.y_hold, after, t)
    progress(f"{algorithm}: holdout roc_auc={hold_m.roc_auc:.4f} accuracy={hold_m.accuracy:.4f}")
    model_metrics = ModelMetrics(
        cross_validation=crossed.cv,
        holdout=hold_m,
        holdout_fraction=config.holdout_fraction,
        train=train_m,
        overfitting=overfitting(train_m, crossed.cv, config.overfitting_threshold),
    )
    importance = _importance(final, fs, s, config)
    return Evaluated(algorithm, final, model_metrics, importance, calibration, before, after, len(s.y_train))


def _importance(model: Any, fs: FeatureSet, s: Split, config: TrainConfig) -> Importance:
    # On this machine even with a cluster: the shuffled copies are scored in a few calls
    # (training.importance), and the rows are a bounded sample of the held-out split.
    keep = stratified_sample(s.y_hold, config.importance_rows, config.seed)
    x, y = s.x_hold[keep], s.y_hold[keep]
    lost = permutation_scores(model, x, y, repeats=5, seed=config.seed)
    impurity = cal.base_estimator(model).feature_importances_
    return Importance(
        impurity=dict(zip(fs.names, map(float, impurity), strict=True)),
        permutation=dict(zip(fs.names, map(float, lost.mean(axis=1)), strict=True)),
        permutation_std=dict(zip(fs.names, map(float, lost.std(axis=1)), strict=True)),
        permutation_rows=len(y),
    )


def start_fits(
    algorithms: Sequence[str], s: Split, config: TrainConfig, distributed: bool
) -> dict[str, Future[Any]]:
    """Start, each on a thread of its own, the fit on the training part of every algorithm whose
    estimator uses one core; return them by algorithm (for :func:`evaluate`'s ``fitting``).

    Such a fit depends on nothing but the split, and at 100k rows gradient boosting's takes over a
    minute on one core, longer than the rest of its training on the other: started first, it
    runs beside the forest's training, the folds and the checks. Threads suffice: the trees are
    built without the GIL. Small fits, and fits on a cluster, stay in the folds' batch.
    """
    single = [a for a in algorithms if not est.is_multithreaded(a, config)]
    if distributed or len(s.y_train) < SIDE_BY_SIDE_FROM_ROWS:
        return {}
    return {a: _in_background(fit_final, est.make_estimator(a, config), s.x_train, s.y_train) for a in single}


def _in_background(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """``fn(*args)`` on a daemon thread. Not a thread pool's: Python joins those at exit, so a
    training that failed meanwhile would not end (nor a trainer's job process) before the fit did,
    and nothing is lost when an unwanted fit is cut short."""
    future: Future[Any] = Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to whoever waits for the fit
            future.set_exception(exc)

    threading.Thread(target=run, name="fit", daemon=True).start()
    return future


@dataclass(frozen=True)
class Checked:
    """The exported ONNX model and its explainer graph, the rows they were checked on, the parity."""

    onnx: bytes
    info: OnnxInfo
    parity: Parity
    hold32: npt.NDArray[np.float32]
    random32: npt.NDArray[np.float32]
    explainer: xp.Explainer
    explain_onnx: bytes
    explain_parity: ExplanationParity


def export_and_check(
    model: Evaluated, fs: FeatureSet, data: Dataset, s: Split, config: TrainConfig, progress: Progress
) -> Checked:
    """Export to ONNX and check it against scikit-learn on the held-out rows plus random in-range rows.

    Raises
    ------
    ParityError
        A row differs by more than ``config.parity_tolerance``; nothing may be published.
    """
    exported = export_onnx(model.estimator, len(fs))
    session = onnx_session(exported.data)
    random32 = random_rows(fs, data.x, config.parity_random_rows, config.seed)
    hold32 = s.x_hold.astype(np.float32)
    rows = np.concatenate([hold32, random32])
    try:
        parity = check_parity(model.estimator, session, rows, config.parity_tolerance)
    except ParityError as exc:
        if model.calibration.method == "isotonic":
            raise ParityError(f"isotonic calibration refused: {exc}. {ISOTONIC_TRAP}") from None
        raise
    progress(f"{model.algorithm}: parity over {parity.rows} rows, max |dp| = {parity.max_abs_diff:.2e}")
    explained = xp.explainer(model.estimator)
    graph = xp.explain_graph(exported.data, explained, exported.ml_opset)
    explain_parity = xp.check_explainer(graph, explained, model.estimator, rows, config.parity_tolerance)
    progress(
        f"{model.algorithm}: explanations ({explained.scale}) over {explain_parity.rows} rows, max |d| = "
        f"{explain_parity.max_abs_diff:.2e}, sums within {explain_parity.sum_max_abs_diff:.2e}"
    )
    info = _onnx_info(exported.data, exported.opset, exported.ml_opset, len(fs))
    recorded = Parity(parity.rows, parity.max_abs_diff, config.parity_tolerance, ort.__version__)
    return Checked(exported.data, info, recorded, hold32, random32, explained, graph, explain_parity)


def _onnx_info(data: bytes, opset: int, ml_opset: int, n: int) -> OnnxInfo:
    return OnnxInfo(
        file=MODEL_FILE,
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        opset=opset,
        ml_opset=ml_opset,
        input_name=INPUT_NAME,
        input_dtype="float32",
        input_shape=(None, n),
        label_output=LABEL_OUTPUT,
        probabilities_output=PROBABILITIES_OUTPUT,
        classes=(0, 1),
        positive_class_index=1,
    )


def golden(
    model: Evaluated, baseline: FittedBaseline, fs: FeatureSet, checked: Checked, config: TrainConfig
) -> tuple[GoldenRow, ...]:
    """Golden rows: inputs (exact float32 values) with the probabilities scikit-learn gave them."""
    x = golden_inputs(fs, checked.hold32, checked.random32, config.golden_rows)
    return golden_rows(fs, x, positive_proba(model.estimator, x.astype(np.float64)), baseline.proba(x))


def explanation(checked: Checked, golden_rows_: tuple[GoldenRow, ...], fs: FeatureSet) -> Explanation:
    """The sidecar's ``explanation``: the explainer's scale and base, with the golden rows' credits."""
    x = np.array([[row.features[n] for n in fs.names] for row in golden_rows_], dtype=np.float32)
    return xp.record(checked.explainer, checked.explain_parity, x)


def version_files(checked: Checked) -> dict[str, bytes]:
    """The files of the version besides its sidecar."""
    return {MODEL_FILE: checked.onnx, xp.EXPLAIN_FILE: checked.explain_onnx}


def file_infos(files: dict[str, bytes]) -> dict[str, FileInfo]:
    """The sidecar's ``files``: every file but model.onnx (pinned in ``onnx``), with its hash."""
    return {name: pin(name, data) for name, data in sorted(files.items()) if name != MODEL_FILE}


def training_data(data: Dataset, fs: FeatureSet) -> TrainingData:
    """Rows, positive rate, hash and per-feature statistics of the data trained on."""
    return TrainingData(
        rows=data.rows,
        positive_rate=float(data.y.mean()),
        sha256=data.sha256,
        features=feature_stats(fs, data.x),
        source=data.source,
        generator=data.generator,
    )


def _sampled(cv_rows: int | None, train_rows: int) -> str:
    if cv_rows is None or cv_rows >= train_rows:
        return ""
    return f" (the folds learned from {cv_rows:,} of the {train_rows:,} training rows, which widens the gap)"


def warnings(model: Evaluated, baseline: FittedBaseline) -> tuple[str, ...]:
    """One line per flag worth a person's attention; ``fit`` prints each, the sidecar keeps them."""
    out = []
    o = model.metrics.overfitting
    if o.flagged:
        out.append(
            f"overfitting: train {o.metric} {o.train:.4f} is {o.gap:.4f} above cross-validated "
            f"{o.cv:.4f} (threshold {o.threshold:g}); more rows or a shallower model may help"
            + _sampled(model.metrics.cross_validation.rows, model.train_rows)
        )
    mine, theirs = model.metrics.holdout.roc_auc, baseline.sidecar.metrics.holdout.roc_auc
    if theirs > mine:
        out.append(
            f"baseline: the logistic baseline's held-out ROC-AUC {theirs:.4f} beats this model's "
            f"{mine:.4f}; on this data a line does as well (few rows, or a nearly linear signal)"
        )
    return tuple(out)


def build_sidecar(
    model: Evaluated,
    baseline: FittedBaseline,
    checked: Checked,
    golden_rows_: tuple[GoldenRow, ...],
    summary: TrainingData,
    fs: FeatureSet,
    config: TrainConfig,
    now: dt.datetime,
    files: dict[str, bytes],
    provenance: dict[str, str] | None = None,
) -> Sidecar:
    """The complete sidecar of a version trained at ``now`` (named after it; publishing may add ``-N``).

    ``provenance``: more of what produced it, kept in ``libraries`` (where it ran: see
    :class:`training.cluster.Compute`).
    """
    return Sidecar(
        schema_version=SCHEMA_VERSION,
        version=version_stamp(now),
        created_at=now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        algorithm=model.algorithm,
        hyperparameters=est.hyperparameters(model.algorithm, config),
        random_seed=config.seed,
        features=fs.features,
        onnx=checked.info,
        decision_threshold=config.decision_threshold,
        metrics=model.metrics,
        feature_importance=model.importance,
        baseline=baseline.sidecar,
        parity=checked.parity,
        golden_rows=golden_rows_,
        training_data=summary,
        libraries={**_libraries(), **(provenance or {})},
        warnings=warnings(model, baseline),
        files=file_infos(files),
        calibration=model.calibration,
        explanation=explanation(checked, golden_rows_, fs),
    )


def _libraries() -> dict[str, str]:
    """What produced the artifact: Python, the platform, and each library's installed version."""
    return {
        "python": platform.python_version(),
        "platform": sys.platform,
        **{n: _version(n) for n in _LIBRARIES},
    }


def _version(name: str) -> str:
    try:
        return dist_version(name)
    except PackageNotFoundError:  # e.g. ml-matching run from a checkout that was never installed
        return "not installed"
