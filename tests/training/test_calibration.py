"""Calibrated probabilities: chosen on the folds, better on the held-out rows, inside model.onnx."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml_matching.contract import default_feature_set, list_versions
from ml_matching.training import calibration as cal
from ml_matching.training import estimators as est
from ml_matching.training import steps
from ml_matching.training.config import GradientBoostingParams, RandomForestParams, TrainConfig
from ml_matching.training.data import Dataset, parse_dataset
from ml_matching.training.evaluate import cross_validate
from ml_matching.training.export import export_onnx
from ml_matching.training.synth import synthesize

Cli = Callable[..., tuple[int, str, str]]
FS = default_feature_set()


@pytest.fixture(scope="module")
def synthetic() -> Dataset:
    body = synthesize(3000, FS, seed=5)
    body.pop("bayes")
    return parse_dataset(json.dumps(body).encode(), ".json", FS, where="synthetic", source="synthetic")


Trained = tuple[steps.Evaluated, steps.Checked]


@pytest.fixture(scope="module")
def train(synthetic: Dataset) -> Callable[[str, str], Trained]:
    """Evaluate and export ``algorithm`` with ``calibrate`` on the synthetic data (each pair once)."""
    done: dict[tuple[str, str], Trained] = {}

    def run(algorithm: str, calibrate: str) -> Trained:
        if (algorithm, calibrate) not in done:
            config = TrainConfig(calibrate=calibrate, folds=3, random_forest=RandomForestParams(n_jobs=1))
            s = steps.split(synthetic, config)
            evaluated = steps.evaluate(algorithm, FS, s, config, lambda _: None)
            checked = steps.export_and_check(evaluated, FS, synthetic, s, config, lambda _: None)
            done[algorithm, calibrate] = evaluated, checked
        return done[algorithm, calibrate]

    return run


@pytest.mark.parametrize("algorithm", ["random_forest", "gradient_boosting"])
def test_auto_never_worsens_the_held_out_calibration(
    train: Callable[[str, str], Trained], algorithm: str
) -> None:
    evaluated, checked = train(algorithm, "auto")
    c = evaluated.calibration
    assert c.holdout_after.ece <= c.holdout_before.ece
    assert c.chosen_by.startswith("auto: ") and set(c.cv_brier) == {"none", "sigmoid", "isotonic"}
    # model.onnx alone gives the calibrated probability (the parity gate passed on it).
    assert checked.parity.max_abs_diff <= checked.parity.tolerance


def test_a_forest_is_calibrated_and_its_error_falls(train: Callable[[str, str], Trained]) -> None:
    # A random forest's averaged votes shy away from 0 and 1: Platt scaling is worth it there.
    c = train("random_forest", "auto")[0].calibration
    assert c.method == "sigmoid"
    assert c.holdout_after.ece < 0.75 * c.holdout_before.ece
    assert c.holdout_after.brier < c.holdout_before.brier
    assert c.holdout_after.log_loss < c.holdout_before.log_loss


def test_calibration_keeps_one_forest(train: Callable[[str, str], Trained]) -> None:
    plain = train("random_forest", "none")[1]
    calibrated = train("random_forest", "sigmoid")[1]
    assert plain.info.bytes <= calibrated.info.bytes <= 1.10 * plain.info.bytes


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
@pytest.mark.parametrize("algorithm", ["random_forest", "gradient_boosting"])
def test_calibrating_on_the_folds_predictions_is_what_calibrated_classifier_cv_fits(
    synthetic: Dataset, algorithm: str, method: str
) -> None:
    # fit calibrates on the cross-validation's out-of-fold predictions instead of letting
    # CalibratedClassifierCV fit the same folds again: the same model, to the bit.
    config = TrainConfig(
        folds=3,
        random_forest=RandomForestParams(n_estimators=20, n_jobs=1),
        gradient_boosting=GradientBoostingParams(n_estimators=20),
    )
    s = steps.split(synthetic, config)
    model = est.make_estimator(algorithm, config)
    crossed = cross_validate(
        model, s.x_train, s.y_train, folds=3, seed=config.seed, threshold=0.5, n_jobs=1, label="",
        progress=lambda _: None, final=(s.x_train, s.y_train),
    )  # fmt: skip
    ours = cal.calibrate(model, crossed.fitted, method, crossed.oof_response, s.y_train, 3, config.seed)
    theirs = cal.calibrated(est.make_estimator(algorithm, config), method, 3, config.seed)
    theirs.fit(s.x_train, s.y_train)
    assert np.array_equal(ours.predict_proba(s.x_hold), theirs.predict_proba(s.x_hold))
    assert export_onnx(ours, len(FS)).data == export_onnx(theirs, len(FS)).data


def _gain(mean: float, se: float) -> cal.CrossValidatedBrier:
    return cal.CrossValidatedBrier({"none": 0.14, "sigmoid": 0.14 - mean, "isotonic": 0.15}, mean, se)


def test_auto_takes_sigmoid_only_beyond_the_noise() -> None:
    assert cal.choose("auto", _gain(0.006, 0.001)).method == "sigmoid"
    within = cal.choose("auto", _gain(0.0005, 0.0005))
    assert within.method == "none" and "1.0 standard errors (sigmoid when > 2)" in within.chosen_by
    assert cal.choose("auto", _gain(-0.001, 0.0005)).method == "none"
    asked = cal.choose("isotonic", _gain(0.006, 0.001))
    assert (asked.method, asked.chosen_by) == ("isotonic", "requested")


def test_expected_calibration_error() -> None:
    y = np.array([1, 0] * 50)
    assert cal.expected_calibration_error(y, np.full(100, 0.9)) == pytest.approx(0.4)
    assert cal.expected_calibration_error(y, np.full(100, 0.5)) == pytest.approx(0.0)
    # Two bins, each its own error, weighted by its share of the rows.
    p = np.array([0.05] * 50 + [0.95] * 50)
    y = np.array([0] * 45 + [1] * 5 + [1] * 40 + [0] * 10)
    assert cal.expected_calibration_error(y, p) == pytest.approx(0.5 * 0.05 + 0.5 * 0.15)


def test_isotonic_is_refused_with_the_reason_and_nothing_written(
    tmp_path: Path, cli: Cli, data_file: Path, fast_config: Path
) -> None:
    store = tmp_path / "store"
    code, out, err = cli(
        "fit", "--data", data_file, "--artifacts", store, "--config", fast_config, "--calibrate", "isotonic"
    )
    assert code == 1 and out == ""
    assert "isotonic calibration refused" in err and "sklearn-onnx issue #200" in err
    assert "--calibrate sigmoid or none" in err
    assert not store.exists() or (list_versions(store) == [] and not any(os.scandir(store)))


def test_the_sidecar_keeps_the_choice_and_the_figures(fitted_copy: Path) -> None:
    store = fitted_copy
    (version,) = list_versions(store)
    doc: dict[str, Any] = json.loads((store / version / "model.json").read_text())
    c = doc["calibration"]
    assert c["method"] in ("none", "sigmoid") and c["bins"] == 10
    for side in ("holdoutBefore", "holdoutAfter"):
        assert set(c[side]) == {"brier", "logLoss", "ece"}
    if c["method"] == "none":
        assert c["holdoutBefore"] == c["holdoutAfter"]
