"""Rebuild the small artifact store the runtime tests use: ``python scripts/build_fixture.py [DIR]``.

Two versions (a small RandomForest and a small GradientBoosting) trained on 600 synthetic rows with
fixed seeds and fixed version names, so the ONNX bytes are reproducible. The runtime-only test
environment has no scikit-learn, so this store is committed under ``tests/fixtures/store``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
from pathlib import Path

import msgspec

from runtime.features import default_feature_set
from runtime.store import write_active
from training.config import GradientBoostingParams, RandomForestParams, TrainConfig
from training.data import load_dataset
from training.pipeline import fit_and_publish
from training.synth import synthesize

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


def build(out: Path) -> list[str]:
    fs = default_feature_set()
    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / "fixture.json"
        body = synthesize(600, fs, seed=7)
        body.pop("bayes")
        data_file.write_bytes(msgspec.json.encode(body))
        data = load_dataset(data_file, fs)
        store = Path(tmp) / "store"
        versions = []
        for algorithm, when in STAMPS.items():
            results, _ = fit_and_publish(data, fs, [algorithm], store, CONFIG, activate=False, now=when)
            versions.append(results[0].version)
        write_active(store, versions[0])
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(store, out)
    return versions


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    print("\n".join(build(target)))
