"""``fit --dask``: the folds and the trees on a Dask cluster, the same model."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from ml_matching.contract import list_versions
from ml_matching.training import cluster
from tests.support import free_port
from tests.training.conftest import FAST_CONFIG

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

Cli = Callable[..., tuple[int, str, str]]
#: What must not depend on where the training ran (the rest names the version or the machine).
SAME = (
    "onnx",
    "metrics",
    "calibration",
    "featureImportance",
    "baseline",
    "parity",
    "goldenRows",
    "explanation",
)


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A real cluster: a scheduler and two worker processes of one thread each, on 127.0.0.1."""
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as local:
        yield local.scheduler_address


@pytest.fixture
def config(tmp_path: Path) -> Path:
    # The forest on every core (so its trees go through joblib too), and calibrated: the calibrator
    # is fitted on the folds' predictions, which must be the same bits wherever they were made.
    # The folds on a sample, which must be the same rows.
    path = tmp_path / "config.json"
    forest = {**FAST_CONFIG["random_forest"], "n_jobs": -1}
    samples = {"cv_rows": 300}
    path.write_text(json.dumps({**FAST_CONFIG, "random_forest": forest, "calibrate": "sigmoid", **samples}))
    return path


def _fit(cli: Cli, data: Path, store: Path, config: Path, *extra: str) -> tuple[int, str, str]:
    return cli("fit", "--data", data, "--artifacts", store, "--config", config, "--json", *extra)


def _published(store: Path) -> dict[str, tuple[bytes, dict[str, Any]]]:
    out = {}
    for v in list_versions(store):
        sidecar = json.loads((store / v / "model.json").read_text())
        out[sidecar["algorithm"]] = (store / v / "model.onnx").read_bytes(), sidecar
    return out


def test_a_dask_fit_gives_a_byte_identical_model_and_the_same_metrics(
    tmp_path: Path, cli: Cli, data_file: Path, config: Path, scheduler: str
) -> None:
    code, _, err = _fit(cli, data_file, tmp_path / "local", config, "--model", "all")
    assert code == 0, err
    code, _, err = _fit(cli, data_file, tmp_path / "dask", config, "--model", "all", "--dask", scheduler)
    assert code == 0, err
    port = scheduler.rsplit(":", 1)[1]
    assert f"training on Dask at tcp://127.0.0.1:{port} (2 workers, 2 threads)" in err

    local, on_dask = _published(tmp_path / "local"), _published(tmp_path / "dask")
    assert set(local) == set(on_dask) == {"random_forest", "gradient_boosting"}
    for algorithm, (onnx, sidecar) in local.items():
        dask_onnx, dask_sidecar = on_dask[algorithm]
        assert dask_onnx == onnx, f"{algorithm}: model.onnx differs on Dask"
        for key in SAME:
            assert dask_sidecar[key] == sidecar[key], f"{algorithm}: {key} differs on Dask"
        assert sidecar["calibration"]["method"] == "sigmoid"
        assert sidecar["metrics"]["crossValidation"]["rows"] == 300
        # Where it ran is recorded: the scheme of the scheduler's address and the versions.
        libraries = dask_sidecar["libraries"]
        assert libraries["dask-scheduler"] == "tcp"
        assert libraries["dask"] == version("dask") and libraries["distributed"] == version("distributed")
        assert "127.0.0.1" not in json.dumps(dask_sidecar)
        assert not {"dask", "distributed", "dask-scheduler"} & set(sidecar["libraries"])


@pytest.mark.parametrize("address", ["http://scheduler:8786", "tcp://", "tcp://scheduler:port", "scheduler"])
def test_a_bad_address_is_refused_naming_it(
    tmp_path: Path,
    cli: Cli,
    data_file: Path,
    fast_config: Path,
    address: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = _fit(cli, data_file, tmp_path / "store", fast_config, "--dask", address)
    assert code == 2 and f"error: Dask scheduler address {address!r}: expected" in err
    monkeypatch.setenv(cluster.ENVIRONMENT, address)
    code, _, err = _fit(cli, data_file, tmp_path / "store", fast_config)
    assert code == 2 and f"error: {cluster.ENVIRONMENT}={address!r}: expected" in err
    assert not (tmp_path / "store").exists()


def test_the_environment_names_the_scheduler_when_the_flag_does_not(
    tmp_path: Path, cli: Cli, data_file: Path, fast_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)
    address = f"tcp://127.0.0.1:{free_port()}"  # nobody listens there
    monkeypatch.setenv(cluster.ENVIRONMENT, address)
    code, _, err = _fit(cli, data_file, tmp_path / "store", fast_config)
    assert code == 1 and f"error: no Dask scheduler answers at {address}" in err
    assert not (tmp_path / "store").exists()  # nothing trained, nothing written
    # The flag wins over the variable.
    code, _, err = _fit(cli, data_file, tmp_path / "store", fast_config, "--dask", "http://elsewhere:1")
    assert code == 2 and "error: Dask scheduler address 'http://elsewhere:1'" in err


def test_without_the_dask_extra_the_install_command_is_named(
    tmp_path: Path, cli: Cli, data_file: Path, fast_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # what `import distributed` finds uninstalled
    code, _, err = _fit(cli, data_file, tmp_path / "store", fast_config, "--dask", "tcp://scheduler:8786")
    assert code == 2 and "pip install 'ml-matching[dask]'" in err and "distributed is missing" in err
