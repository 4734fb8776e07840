"""Training at scale: the folds and permutation importance on bounded samples, the single-core fits
started first. What is sampled is recorded; what is fitted is the same model."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml_matching.contract import default_feature_set, list_versions
from ml_matching.training import steps
from ml_matching.training.calibration import base_estimator
from ml_matching.training.config import GradientBoostingParams, RandomForestParams, TrainConfig
from ml_matching.training.data import Dataset, parse_dataset
from ml_matching.training.estimators import make_estimator
from ml_matching.training.evaluate import fit_final
from ml_matching.training.export import export_onnx
from ml_matching.training.rows import MIN_PER_OUTCOME, stratified_sample
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
    tmp_path: Path, cli: Cli
) -> None:
    body = synthesize(3125, FS, seed=5)  # 2,500 rows to train on, 625 held out
    body.pop("bayes")
    data = tmp_path / "outcomes.json"
    data.write_text(json.dumps(body))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**FAST_CONFIG, "cv_rows": 1000, "importance_rows": 300}))
    store = tmp_path / "store"
    code, _, err = cli("fit", "--data", data, "--artifacts", store, "--config", config)
    assert code == 0, err
    assert "cross-validation on a stratified sample of 1000 of 2500 training rows" in err
    (version,) = list_versions(store)
    sidecar = json.loads((store / version / "model.json").read_text())
    assert sidecar["metrics"]["crossValidation"]["rows"] == 1000
    assert sidecar["baseline"]["metrics"]["crossValidation"]["rows"] == 1000
    assert sidecar["featureImportance"]["permutationRows"] == 300
    card = (store / version / "card.md").read_text()
    assert "3-fold cross-validation on a sample of 1,000 of the 2,500 training rows, `cv_rows`" in card
    assert "Permutation importance was measured on a sample of 300 of the 625 held-out rows" in card


def test_the_sample_keeps_the_outcome_rate_and_zero_means_every_row() -> None:
    data = _dataset(3000)
    s = steps.split(data, TrainConfig(cv_rows=1000))
    assert len(s.y_cv) == 1000 and len(s.y_train) == 2400
    assert abs(int(s.y_cv.sum()) - s.y_train.mean() * 1000) <= 1  # stratified: the rate to a row
    rows = {r.tobytes() for r in s.x_train}
    assert all(r.tobytes() in rows for r in s.x_cv)  # drawn from the training part, never held out
    everything = steps.split(data, TrainConfig(cv_rows=0))
    assert np.array_equal(everything.x_cv, everything.x_train)


def test_a_rare_outcome_keeps_enough_rows_in_the_sample() -> None:
    data = _dataset(400)
    y = np.zeros_like(data.y)
    y[:12] = 1  # 12 successes, about 10 to train on: a sample of 40 would give them 1, too few for 3 folds
    s = steps.split(dataclasses.replace(data, y=y), TrainConfig(folds=3, cv_rows=40))
    assert s.y_cv.sum() == s.y_train.sum(), "every success is kept"
    assert (s.y_cv == 0).sum() == MIN_PER_OUTCOME < (s.y_train == 0).sum(), (
        "the other outcome is still sampled"
    )


@pytest.mark.parametrize("rows", [1, 2, 999, 1000, 1001])
def test_a_sample_of_any_size_keeps_both_outcomes_and_never_fails(rows: int) -> None:
    y = np.zeros(1001, dtype=np.int64)
    y[[17, 500]] = 1  # two successes among 1,001 rows: a proportional sample of 1,000 would keep both,
    keep = stratified_sample(y, rows, seed=1)  # one of 999 might lose one, one of 2 would lose both
    assert np.all(np.diff(keep) > 0), "indices in order, none twice"
    assert y[keep].sum() == 2
    assert len(keep) == (1001 if rows >= 1001 else max(rows - 2, MIN_PER_OUTCOME) + 2)


def test_a_fit_started_on_a_thread_is_the_fit_of_the_folds_batch() -> None:
    # 2,500 training rows: enough for the single-core boosting's fit to start on its own thread.
    config = TrainConfig(
        folds=3,
        cv_rows=600,
        random_forest=RandomForestParams(n_estimators=10, max_depth=4, n_jobs=-1),
        gradient_boosting=GradientBoostingParams(n_estimators=10, max_depth=3),
    )
    s = steps.split(_dataset(3125), config)
    fitting = steps.start_fits(["random_forest", "gradient_boosting"], s, config, distributed=False)
    assert set(fitting) == {"gradient_boosting"}  # the forest spreads over the cores itself
    threaded = steps.evaluate("gradient_boosting", FS, s, config, QUIET, fitting=fitting["gradient_boosting"])
    batched = steps.evaluate("gradient_boosting", FS, s, config, QUIET)
    assert export_onnx(threaded.estimator, len(FS)).data == export_onnx(batched.estimator, len(FS)).data
    assert threaded.metrics == batched.metrics


def test_the_fit_started_is_the_model_evaluated() -> None:
    config = TrainConfig(folds=3, gradient_boosting=GradientBoostingParams(n_estimators=10, max_depth=3))
    s = steps.split(_dataset(3125), config)
    other = GradientBoostingParams(n_estimators=4, max_depth=2)
    given: Future[Any] = Future()
    given.set_result(
        fit_final(
            make_estimator("gradient_boosting", TrainConfig(gradient_boosting=other)), s.x_train, s.y_train
        )
    )
    model = steps.evaluate("gradient_boosting", FS, s, config, QUIET, fitting=given)
    assert base_estimator(model.estimator) is given.result(), "the batch did not fit another"


def test_a_failed_fit_is_raised_where_the_model_is_needed() -> None:
    config = TrainConfig(folds=3)
    s = steps.split(_dataset(3125), config)
    broken = dataclasses.replace(s, x_train=np.full_like(s.x_train, np.nan))  # scikit-learn refuses NaN
    fitting = steps.start_fits(["gradient_boosting"], broken, config, distributed=False)
    with pytest.raises(ValueError, match="NaN"):
        fitting["gradient_boosting"].result(timeout=60)


@pytest.mark.parametrize(("rows", "distributed"), [(1000, False), (3125, True)])
def test_small_fits_and_fits_on_a_cluster_stay_in_the_folds_batch(rows: int, distributed: bool) -> None:
    config = TrainConfig(folds=3)
    s = steps.split(_dataset(rows), config)
    assert steps.start_fits(["gradient_boosting"], s, config, distributed=distributed) == {}
