"""``fit``: validate, train, evaluate, export, check parity, then publish every version at once."""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from sklearn.inspection import permutation_importance
from sklearn.model_selection import train_test_split

from runtime.features import FeatureSet
from runtime.sidecar import (
    SCHEMA_VERSION,
    Baseline,
    BaselineMetrics,
    CrossValidation,
    Importance,
    ModelMetrics,
    OnnxInfo,
    Parity,
    Sidecar,
    TrainingData,
    encode_sidecar,
)
from runtime.store import MODEL_FILE, SIDECAR_FILE, publish, version_stamp, write_active
from training import estimators as est
from training.config import TrainConfig
from training.data import Dataset
from training.evaluate import cross_validate, metrics, overfitting, positive_proba
from training.export import (
    INPUT_NAME,
    LABEL_OUTPUT,
    PROBABILITIES_OUTPUT,
    check_parity,
    export_onnx,
    onnx_session,
)
from training.rows import feature_stats, golden_inputs, golden_rows, random_rows

Progress = Callable[[str], None]
_LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "joblib", "msgspec")


@dataclass(frozen=True)
class Split:
    x_train: npt.NDArray[np.float64]
    y_train: npt.NDArray[np.int64]
    x_hold: npt.NDArray[np.float64]
    y_hold: npt.NDArray[np.int64]


@dataclass(frozen=True)
class FitResult:
    """One published version."""

    version: str
    algorithm: str
    path: Path
    sidecar: Sidecar


def fit_and_publish(
    data: Dataset,
    fs: FeatureSet,
    algorithms: Sequence[str],
    root: Path,
    config: TrainConfig,
    *,
    activate: bool = True,
    progress: Progress = lambda _: None,
    now: dt.datetime | None = None,
) -> tuple[list[FitResult], str | None]:
    """Train each algorithm and publish one version each; return them and the version made active.

    Every model is trained, exported and parity-checked before anything is written, so a failure
    (e.g. :class:`ParityError`) leaves the store untouched.
    """
    split = _split(data, config)
    baseline = _fit_baseline(fs, split, config, progress)
    now = now or dt.datetime.now(dt.UTC)
    training_data = _training_data(data, fs)  # the same for every algorithm: summarise once
    drafts = [_train(a, data, fs, split, baseline, training_data, config, now, progress) for a in algorithms]
    results = [_publish(root, now, draft) for draft in drafts]
    active = None
    if activate:
        best = max(results, key=lambda r: r.sidecar.metrics.cross_validation.mean.roc_auc)
        write_active(root, best.version)
        active = best.version
    return results, active


def _split(data: Dataset, config: TrainConfig) -> Split:
    xt, xh, yt, yh = train_test_split(
        data.x, data.y, test_size=config.holdout_fraction, stratify=data.y, random_state=config.seed
    )
    return Split(xt, yt, xh, yh)


def _cross_validate(
    model: Any, split: Split, config: TrainConfig, label: str, progress: Progress, fold_jobs: int
) -> CrossValidation:
    return cross_validate(
        model, split.x_train, split.y_train, folds=config.folds, seed=config.seed,
        threshold=config.decision_threshold, n_jobs=fold_jobs, label=label, progress=progress,
    )  # fmt: skip


@dataclass(frozen=True)
class _Baseline:
    sidecar: Baseline
    intercept: float
    weights: npt.NDArray[np.float64]


def _fit_baseline(fs: FeatureSet, split: Split, config: TrainConfig, progress: Progress) -> _Baseline:
    model = est.make_baseline(config)
    cv = _cross_validate(model, split, config, est.BASELINE, progress, fold_jobs=1)
    model.fit(split.x_train, split.y_train)
    b, w = est.baseline_weights(model)
    hold = metrics(split.y_hold, est.weighted_proba(b, w, split.x_hold), config.decision_threshold)
    progress(f"{est.BASELINE}: holdout roc_auc={hold.roc_auc:.4f} accuracy={hold.accuracy:.4f}")
    sidecar = Baseline(
        algorithm=est.BASELINE,
        intercept=b,
        coefficients=dict(zip(fs.names, map(float, w), strict=True)),
        metrics=BaselineMetrics(cross_validation=cv, holdout=hold),
    )
    return _Baseline(sidecar, b, w)


@dataclass(frozen=True)
class _Draft:
    sidecar_for: Callable[[str], Sidecar]
    onnx: bytes


def _train(
    algorithm: str,
    data: Dataset,
    fs: FeatureSet,
    split: Split,
    baseline: _Baseline,
    training_data: TrainingData,
    config: TrainConfig,
    now: dt.datetime,
    progress: Progress,
) -> _Draft:
    model = est.make_estimator(algorithm, config)
    # Folds run side by side unless the estimator already uses every core.
    fold_jobs = 1 if est.is_multithreaded(algorithm, config) else -1
    cv = _cross_validate(model, split, config, algorithm, progress, fold_jobs=fold_jobs)
    model.fit(split.x_train, split.y_train)
    t = config.decision_threshold
    train_m = metrics(split.y_train, positive_proba(model, split.x_train), t)
    hold_m = metrics(split.y_hold, positive_proba(model, split.x_hold), t)
    progress(f"{algorithm}: holdout roc_auc={hold_m.roc_auc:.4f} accuracy={hold_m.accuracy:.4f}")
    model_metrics = ModelMetrics(
        cross_validation=cv,
        holdout=hold_m,
        holdout_fraction=config.holdout_fraction,
        train=train_m,
        overfitting=overfitting(train_m, cv, config.overfitting_threshold),
    )
    exported = export_onnx(model, len(fs))
    session = onnx_session(exported.data)
    random = random_rows(fs, data.x, config.parity_random_rows, config.seed)
    hold32 = split.x_hold.astype(np.float32)
    parity = check_parity(model, session, np.concatenate([hold32, random]), config.parity_tolerance)
    progress(f"{algorithm}: parity over {parity.rows} rows, max |dp| = {parity.max_abs_diff:.2e}")
    golden_x = golden_inputs(fs, hold32, random, config.golden_rows)
    golden = golden_rows(
        fs,
        golden_x,
        positive_proba(model, golden_x.astype(np.float64)),
        est.weighted_proba(baseline.intercept, baseline.weights, golden_x.astype(np.float64)),
    )
    importance = _importance(model, fs, split, config)

    def sidecar_for(version: str) -> Sidecar:
        return Sidecar(
            schema_version=SCHEMA_VERSION,
            version=version,
            created_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            algorithm=algorithm,
            hyperparameters=est.hyperparameters(algorithm, config),
            random_seed=config.seed,
            features=fs.features,
            onnx=_onnx_info(exported.data, exported.opset, exported.ml_opset, len(fs)),
            decision_threshold=config.decision_threshold,
            metrics=model_metrics,
            feature_importance=importance,
            baseline=baseline.sidecar,
            parity=Parity(parity.rows, parity.max_abs_diff, config.parity_tolerance, ort.__version__),
            golden_rows=golden,
            training_data=training_data,
            libraries=_libraries(),
        )

    return _Draft(sidecar_for, exported.data)


def _importance(model: object, fs: FeatureSet, split: Split, config: TrainConfig) -> Importance:
    perm = permutation_importance(
        model, split.x_hold, split.y_hold, scoring="roc_auc", n_repeats=5, random_state=config.seed
    )
    impurity = getattr(model, "feature_importances_")  # noqa: B009 (fitted attribute, typed Any)
    return Importance(
        impurity=dict(zip(fs.names, map(float, impurity), strict=True)),
        permutation=dict(zip(fs.names, map(float, perm.importances_mean), strict=True)),
        permutation_std=dict(zip(fs.names, map(float, perm.importances_std), strict=True)),
    )


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


def _training_data(data: Dataset, fs: FeatureSet) -> TrainingData:
    return TrainingData(
        rows=data.rows,
        positive_rate=float(data.y.mean()),
        sha256=data.sha256,
        features=feature_stats(fs, data.x),
    )


def _libraries() -> dict[str, str]:
    libs = {name: dist_version(name) for name in _LIBRARIES}
    return {"python": platform.python_version(), "platform": sys.platform, **libs}


def _publish(root: Path, now: dt.datetime, draft: _Draft) -> FitResult:
    sidecars: dict[str, Sidecar] = {}

    def files(version: str) -> dict[str, bytes]:
        sidecars[version] = draft.sidecar_for(version)
        return {MODEL_FILE: draft.onnx, SIDECAR_FILE: encode_sidecar(sidecars[version])}

    version = publish(root, version_stamp(now), files)
    sidecar = sidecars[version]
    return FitResult(version=version, algorithm=sidecar.algorithm, path=root / version, sidecar=sidecar)
