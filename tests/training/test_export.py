from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from ml_matching.training.config import TrainConfig
from ml_matching.training.errors import ParityError
from ml_matching.training.estimators import baseline_weights, make_baseline, weighted_proba
from ml_matching.training.export import check_parity, export_onnx, onnx_session
from tests.training.conftest import FAST_CONFIG

RNG = np.random.default_rng(0)
X = RNG.uniform(size=(300, 5)).astype(np.float32)
Y = (X[:, 0] + X[:, 1] * X[:, 2] > 0.7).astype(int)


@pytest.fixture(scope="module")
def forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(X, Y)


def test_export_has_plain_tensor_outputs(forest: RandomForestClassifier) -> None:
    exported = export_onnx(forest, 5)
    session = onnx_session(exported.data)
    assert [(i.name, i.shape, i.type) for i in session.get_inputs()] == [
        ("input", [None, 5], "tensor(float)")
    ]
    assert [(o.name, o.type) for o in session.get_outputs()] == [
        ("label", "tensor(int64)"),
        ("probabilities", "tensor(float)"),
    ]
    assert exported.opset > 0 and exported.ml_opset > 0
    assert export_onnx(forest, 5).data == exported.data  # conversion is deterministic


def test_parity_holds_within_tolerance(forest: RandomForestClassifier) -> None:
    result = check_parity(forest, onnx_session(export_onnx(forest, 5).data), X, 1e-5)
    assert result.rows == 300 and result.max_abs_diff <= 1e-5


class _Drifted:
    """scikit-learn's answer nudged on one row, as a broken converter would be."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def predict_proba(self, x: Any) -> Any:
        p = self.inner.predict_proba(x).copy()
        p[7, 1] += 1e-3
        return p


def test_parity_failure_names_the_row_and_gap(forest: RandomForestClassifier) -> None:
    session = onnx_session(export_onnx(forest, 5).data)
    with pytest.raises(ParityError, match=r"row 7: .*\|diff\|=1\.000e-03 > tolerance 1e-05"):
        check_parity(_Drifted(forest), session, X, 1e-5)


def test_a_failed_parity_gate_publishes_nothing(tmp_path: Path, data_file: Path, cli: Any) -> None:
    # float32 ONNX against float64 scikit-learn differ by ~1e-8: a tolerance of 1e-15 is a real failure.
    config = tmp_path / "strict.json"
    config.write_text(json.dumps({**FAST_CONFIG, "parity_tolerance": 1e-15}))
    code, out, err = cli(
        "fit", "--data", data_file, "--artifacts", tmp_path / "store", "--config", config, "--model", "all"
    )  # fmt: skip
    assert code == 1 and out == ""
    assert re.search(r"ONNX export differs from scikit-learn on row \d+: .* > tolerance 1e-15", err), err
    assert not (tmp_path / "store").exists()


def test_folded_baseline_matches_scikit_learn() -> None:
    model = make_baseline(TrainConfig()).fit(X.astype(np.float64) * 10 + 3, Y)
    b, w = baseline_weights(model)
    x = X.astype(np.float64) * 10 + 3
    assert np.abs(weighted_proba(b, w, x) - model.predict_proba(x)[:, 1]).max() < 1e-12


def test_golden_rows_reproduce_in_onnxruntime(
    tmp_path: Path, cli: Any, data_file: Path, fast_config: Path
) -> None:
    store = tmp_path / "store"
    assert cli("fit", "--data", data_file, "--artifacts", store, "--config", fast_config, "--json")[0] == 0
    (folder,) = [p for p in store.iterdir() if p.is_dir()]
    sidecar = json.loads((folder / "model.json").read_text())
    session = onnx_session((folder / "model.onnx").read_bytes())
    names = [f["name"] for f in sidecar["features"]]
    x = np.array([[g["features"][n] for n in names] for g in sidecar["goldenRows"]], dtype=np.float32)
    got = session.run(["probabilities"], {"input": x})[0][:, 1]
    want = np.array([g["probability"] for g in sidecar["goldenRows"]])
    assert np.abs(got - want).max() <= 1e-5
    assert np.array_equal(
        x.astype(np.float64), np.array([[g["features"][n] for n in names] for g in sidecar["goldenRows"]])
    )
    baseline = sidecar["baseline"]
    w = np.array([baseline["coefficients"][n] for n in names])
    assert (
        np.abs(
            weighted_proba(baseline["intercept"], w, x.astype(np.float64))
            - [g["baselineProbability"] for g in sidecar["goldenRows"]]
        ).max()
        < 1e-12
    )
