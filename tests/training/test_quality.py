"""Model quality against the best possible (Bayes-optimal) and on real data no one here wrote."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_breast_cancer

from ml_matching.contract import default_feature_set
from ml_matching.training.synth import synthesize

pytestmark = pytest.mark.slow


def test_ensembles_come_close_to_bayes_optimal_and_beat_the_baseline(tmp_path: Path, cli: Any) -> None:
    body = synthesize(5000, default_feature_set(), seed=42)
    bayes = body.pop("bayes")
    data = tmp_path / "d.json"
    data.write_text(json.dumps(body))
    code, out, err = cli("fit", "--data", data, "--artifacts", tmp_path / "store", "--model", "all", "--json")
    assert code == 0, err
    versions = json.loads(out)["versions"]
    for v in versions:
        holdout = v["metrics"]["holdout"]
        assert bayes["accuracy"] - holdout["accuracy"] <= 0.03, (v["algorithm"], holdout, bayes)
        assert bayes["rocAuc"] - holdout["rocAuc"] <= 0.03, (v["algorithm"], holdout, bayes)
        # The linear baseline cannot express the interaction and thresholds (README: "Quality").
        baseline = v["metrics"]["baselineHoldout"]
        assert holdout["rocAuc"] - baseline["rocAuc"] >= 0.05
        assert holdout["accuracy"] - baseline["accuracy"] >= 0.05


def test_breast_cancer_through_the_cli(tmp_path: Path, cli: Any) -> None:
    bunch = load_breast_cancer()
    names = [n.replace(" ", "_") for n in bunch.feature_names]
    features = tmp_path / "features.json"
    features.write_text(json.dumps({"features": [{"name": n} for n in names]}))
    data = tmp_path / "cancer.csv"
    with data.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*names, "outcome"])
        for x, y in zip(bunch.data, bunch.target, strict=True):
            w.writerow([repr(float(v)) for v in x] + [int(y)])
    code, out, err = cli(
        "fit",
        "--data",
        data,
        "--features",
        features,
        "--artifacts",
        tmp_path / "store",
        "--model",
        "all",
        "--json",
    )
    assert code == 0, err
    for v in json.loads(out)["versions"]:
        assert v["metrics"]["cv"]["accuracy"] >= 0.93, v
        assert cli("verify", v["path"])[0] == 0
