"""Training at scale: the folds and permutation importance on bounded samples, the single-core fits
started first. What is sampled is recorded; what is fitted is the same model."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ml_matching.contract import default_feature_set, list_versions
from ml_matching.training import steps
from ml_matching.training.config import GradientBoostingParams, RandomForestParams, TrainConfig
from ml_matching.training.data import Dataset, parse_dataset
from ml_matching.training.export import export_onnx
from ml_matching.training.synth import synthesize
from tests.training.conftest import FAST_CONFIG

FS = default_feature_set()
Cli = Callable[..., tuple[int, str, str]]
QUIET = lambda _: None  # noqa: E731


def _dataset(rows: int, seed: int = 5) -> Dataset:
    body = synthesize(rows, FS, seed=seed)
    body.pop("bayes")
    return parse_dataset(json.dumps(body).encode(), ".json", FS, where="synth", source="synth")


def test_the_folds_run_on_a_stratified_sample_and_the_sidecar_and_card_say_so(
    tmp_path: Path, cli: Cli, data_file: Path
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**FAST_CONFIG, "cv_rows": 150, "importance_rows": 50}))
    store = tmp_path / "store"
    code, _, err = cli("fit", "--data", data_file, "--artifacts", store, "--config", config)
    assert code == 0, err
    assert "cross-validation on a stratified sample of 150 of 320 training rows" in err
    (version,) = list_versions(store)
    sidecar = json.loads((store / version / "model.json").read_text())
    assert sidecar["metrics"]["crossValidation"]["rows"] == 150
    assert sidecar["baseline"]["metrics"]["crossValidation"]["rows"] == 150
    assert sidecar["featureImportance"]["permutationRows"] == 50
    card = (store / version / "card.md").read_text()
    assert "3-fold cross-validation on a sample of 150 of the 320 training rows, `cv_rows`" in card
    assert "Permutation importance was measured on 50 held-out rows" in card


def test_the_sample_keeps_the_outcome_rate_and_zero_means_every_row() -> None:
    data = _dataset(3000)
    s = steps.split(data, TrainConfig(cv_rows=1000))
    assert len(s.y_cv) == 1000 and len(s.y_train) == 2400
    assert abs(int(s.y_cv.sum()) - s.y_train.mean() * 1000) <= 1  # stratified: the rate to a row
    rows = {r.tobytes() for r in s.x_train}
    assert all(r.tobytes() in rows for r in s.x_cv)  # drawn from the training part, never held out
    everything = steps.split(data, TrainConfig(cv_rows=0))
    assert np.array_equal(everything.x_cv, everything.x_train)


def test_a_rare_outcome_the_sample_would_thin_out_keeps_every_training_row() -> None:
    data = _dataset(400)
    y = np.zeros_like(data.y)
    y[:12] = 1  # 12 successes: about 10 to train on, about 1 in a sample of 40, too few for 3 folds
    rare = dataclasses.replace(data, y=y)
    s = steps.split(rare, TrainConfig(folds=3, cv_rows=40))
    assert np.array_equal(s.y_cv, s.y_train)


def test_a_fit_started_on_a_thread_is_the_fit_of_the_folds_batch() -> None:
    # 2,500 training rows: enough for the single-core boosting's fit to start on its own thread.
    config = TrainConfig(
        folds=3,
        cv_rows=600,
        random_forest=RandomForestParams(n_estimators=10, max_depth=4, n_jobs=-1),
        gradient_boosting=GradientBoostingParams(n_estimators=10, max_depth=3),
    )
    s = steps.split(_dataset(3125), config)
    with steps.fits_started(["random_forest", "gradient_boosting"], s, config, distributed=False) as fitting:
        assert set(fitting) == {"gradient_boosting"}  # the forest spreads over the cores itself
        threaded = steps.evaluate(
            "gradient_boosting", FS, s, config, QUIET, fitting=fitting["gradient_boosting"]
        )
    batched = steps.evaluate("gradient_boosting", FS, s, config, QUIET)
    assert export_onnx(threaded.estimator, len(FS)).data == export_onnx(batched.estimator, len(FS)).data
    assert threaded.metrics == batched.metrics


@pytest.mark.parametrize(("rows", "distributed"), [(1000, False), (3125, True)])
def test_small_fits_and_fits_on_a_cluster_stay_in_the_folds_batch(rows: int, distributed: bool) -> None:
    config = TrainConfig(folds=3)
    s = steps.split(_dataset(rows), config)
    with steps.fits_started(["gradient_boosting"], s, config, distributed=distributed) as fitting:
        assert fitting == {}
