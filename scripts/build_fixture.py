"""Rebuild the small artifact store the runtime tests use: ``python scripts/build_fixture.py [DIR]``.

Three versions with fixed seeds and fixed version names, so the ONNX bytes are reproducible: a
small RandomForest and a small GradientBoosting on 600 synthetic rows of the 19 default features,
and a small RandomForest on another feature set (5 features, ranges other than [0, 1], one without
bounds) for the tests that swap to a model with other fields. The runtime-only test environment has
no scikit-learn, so this store is committed under ``tests/fixtures/store``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
from pathlib import Path

import msgspec
import numpy as np

from ml_matching.contract import FeatureSet, default_feature_set, feature_set_from_obj, write_active
from ml_matching.training.config import GradientBoostingParams, RandomForestParams, TrainConfig
from ml_matching.training.data import load_dataset
from ml_matching.training.pipeline import fit_and_publish
from ml_matching.training.synth import synthesize

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "store"
CONFIG = TrainConfig(
    folds=3,
    random_forest=RandomForestParams(n_estimators=12, max_depth=5, n_jobs=1),
    gradient_boosting=GradientBoostingParams(n_estimators=15, max_depth=3),
)
# Fixed "training times" give the fixture fixed version names.
STAMPS = {
    "random_forest": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    "gradient_boosting": dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
}
OTHER_STAMP = dt.datetime(2026, 1, 3, tzinfo=dt.UTC)
OTHER_FEATURES = feature_set_from_obj(
    [
        {"name": "audienceOverlap", "description": "share of the audiences in common", "min": 0, "max": 1},
        {"name": "pastCollaborations", "description": "collaborations so far", "min": 0, "max": 50},
        {"name": "priceRatio", "description": "asked price / budget", "min": 0, "max": 5},
        {"name": "replyHours", "description": "median hours to reply", "min": 0},
        {"name": "sentiment", "description": "audience sentiment, unbounded score"},
    ]
)


def _other_data(n: int) -> dict[str, object]:
    rng = np.random.default_rng(11)
    cols = {
        "audienceOverlap": rng.uniform(0, 1, n),
        "pastCollaborations": rng.integers(0, 51, n).astype(float),
        "priceRatio": rng.uniform(0, 5, n),
        "replyHours": rng.exponential(12, n),
        "sentiment": rng.normal(0, 2, n),
    }
    z = 3 * cols["audienceOverlap"] - 0.8 * cols["priceRatio"] + 0.4 * cols["sentiment"] + 0.5
    y = rng.uniform(size=n) < 1 / (1 + np.exp(-z))
    rows = [{k: round(float(v[i]), 4) for k, v in cols.items()} for i in range(n)]
    return {"features": rows, "outcomes": [bool(v) for v in y]}


def _fit(
    tmp: Path, store: Path, name: str, body: object, fs: FeatureSet, algorithm: str, when: dt.datetime
) -> str:
    data_file = tmp / f"{name}.json"
    data_file.write_bytes(msgspec.json.encode(body))
    data = load_dataset(data_file, fs)
    results, _ = fit_and_publish(data, fs, [algorithm], store, CONFIG, activate=False, now=when)
    return results[0].version


def build(out: Path) -> list[str]:
    fs = default_feature_set()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        store = tmp / "store"
        body = synthesize(600, fs, seed=7)
        body.pop("bayes")
        versions = [_fit(tmp, store, "fixture", body, fs, a, when) for a, when in STAMPS.items()]
        versions.append(
            _fit(tmp, store, "other", _other_data(600), OTHER_FEATURES, "random_forest", OTHER_STAMP)
        )
        write_active(store, versions[0])
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(store, out)
    return versions


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    print("\n".join(build(target)))
