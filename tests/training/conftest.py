from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ml_matching.contract import default_feature_set
from ml_matching.training.synth import synthesize

# Small, fast models for tests that check plumbing rather than quality.
FAST_CONFIG = {
    "folds": 3,
    "parity_random_rows": 1000,
    "random_forest": {"n_estimators": 10, "max_depth": 4, "n_jobs": 1},
    "gradient_boosting": {"n_estimators": 10, "max_depth": 3},
}


@pytest.fixture(scope="session")
def synth_body() -> dict[str, Any]:
    body = synthesize(400, default_feature_set(), seed=3)
    body.pop("bayes")
    return body


@pytest.fixture(scope="session")
def fitted_store(tmp_path_factory: pytest.TempPathFactory, synth_body: dict[str, Any]) -> Path:
    """A store with one version fitted (FAST_CONFIG) on ``synth_body`` as ``outcomes.json``, once
    per test process: a fit is about 3 s of CPU, and many tests only read or change what such a fit
    wrote. They take a copy of it (:func:`fitted_copy`)."""
    from ml_matching.cli import main

    root = tmp_path_factory.mktemp("fitted")
    data, config = root / "outcomes.json", root / "fast.json"
    data.write_text(json.dumps(synth_body))
    config.write_text(json.dumps(FAST_CONFIG))
    assert (
        main(["fit", "--data", str(data), "--artifacts", str(root / "store"), "--config", str(config)]) == 0
    )
    return root / "store"


@pytest.fixture
def fitted_copy(tmp_path: Path, fitted_store: Path) -> Path:
    """This test's own copy of :func:`fitted_store`, at ``tmp_path/store``."""
    return Path(shutil.copytree(fitted_store, tmp_path / "store"))


@pytest.fixture
def data_file(tmp_path: Path, synth_body: dict[str, Any]) -> Path:
    path = tmp_path / "outcomes.json"
    path.write_text(json.dumps(synth_body))
    return path


@pytest.fixture
def fast_config(tmp_path: Path) -> Path:
    path = tmp_path / "fast.json"
    path.write_text(json.dumps(FAST_CONFIG))
    return path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``ml-matching`` in-process: returns (exit code, stdout, stderr)."""
    from ml_matching.cli import main

    def run(*args: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run
