"""The input-drift monitor: ``GET /monitoring/drift`` and its gauges, on rows sent through /predict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.runtime import create_app
from ml_matching.runtime.drift import psi, reading
from ml_matching.runtime.settings import Settings
from tests.conftest import FEATURE_NAMES, GB_VERSION, RF_VERSION
from tests.prometheus import value
from tests.runtime.test_metrics import scrape

Client = TestClient[Litestar]
SHIFTED = "engagementRate"


def training_like(store: Path, n: int, seed: int = 0) -> np.ndarray:
    """``n`` rows drawn from the served version's training histograms (a bin by its count, then
    uniformly inside it), features independent."""
    features = json.loads((store / RF_VERSION / "model.json").read_text())["trainingData"]["features"]
    rng = np.random.default_rng(seed)
    columns = []
    for name in FEATURE_NAMES:
        hist = features[name]["histogram"]
        edges, counts = np.array(hist["edges"]), np.array(hist["counts"], dtype=float)
        bins = rng.choice(len(counts), size=n, p=counts / counts.sum())
        columns.append(rng.uniform(edges[bins], edges[bins + 1]))
    return np.column_stack(columns)


def send(client: Client, rows: np.ndarray) -> None:
    for start in range(0, len(rows), 50):  # the test settings' MAX_BATCH_ROWS
        chunk = [dict(zip(FEATURE_NAMES, r.tolist(), strict=True)) for r in rows[start : start + 50]]
        assert client.post("/predict/batch", json={"instances": chunk}).status_code == 200


def drift(client: Client) -> dict[str, Any]:
    response = client.get("/monitoring/drift")
    assert response.status_code == 200, response.text
    return dict(response.json())


def by_feature(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in report["features"]}


def test_rows_like_the_training_data_read_stable(client: Client, store: Path) -> None:
    send(client, training_like(store, 2000))
    report = drift(client)
    assert report["version"] == RF_VERSION and report["rows"] == 2000 and report["window"] == 10_000
    for name, f in by_feature(report).items():
        assert f["psi"] < 0.1 and f["reading"] == "stable", (name, f["psi"])
        assert f["outOfRange"] < 0.05  # new rows fall just past the observed extremes now and then
        assert sum(f["bins"]["window"]) == 2000 and len(f["bins"]["edges"]) == len(f["bins"]["training"]) + 1


def test_one_shifted_feature_reads_shifted_and_only_that_one(client: Client, store: Path) -> None:
    rows = training_like(store, 2000)
    j = FEATURE_NAMES.index(SHIFTED)
    rows[:, j] = np.minimum(rows[:, j] + 0.3, 1.0)  # shifted by +0.3, held in the feature's [0, 1]
    send(client, rows)
    features = by_feature(drift(client))
    assert features[SHIFTED]["psi"] > 0.25 and features[SHIFTED]["reading"] == "shifted"
    assert features[SHIFTED]["outOfRange"] > 0.2  # everything pushed past the training maximum
    for name, f in features.items():
        if name != SHIFTED:
            assert f["psi"] < 0.1, (name, f["psi"])
    m = scrape(client)
    assert value(m, "ml_matching_feature_psi", feature=SHIFTED) == pytest.approx(features[SHIFTED]["psi"])
    assert value(m, "ml_matching_feature_psi", feature="brandFit") < 0.1
    ratio = value(m, "ml_matching_feature_out_of_range_ratio", feature=SHIFTED)
    assert ratio == pytest.approx(features[SHIFTED]["outOfRange"])


def test_nothing_is_read_before_drift_min_rows(client: Client, store: Path, row: dict[str, float]) -> None:
    send(client, training_like(store, 450))
    client.post("/predict", json=row)
    report = drift(client)
    assert report["rows"] == 451 and report["minRows"] == 500
    for f in report["features"]:
        assert f["psi"] is None and f["outOfRange"] is None and f["reading"] == "insufficient"
    assert not [k for k in scrape(client) if k[0] == "ml_matching_feature_psi"]


def test_the_window_keeps_the_latest_rows_and_resets_on_a_swap(store: Path, admin: dict[str, str]) -> None:
    settings = Settings(models_dir=store, admin_token=admin["Authorization"].split()[1], max_batch_rows=50,
                        drift_window=600, drift_min_rows=100)  # fmt: skip
    with TestClient(create_app(settings)) as c:
        shifted = training_like(store, 600, seed=1)
        shifted[:, 0] = 1.0
        send(c, shifted)
        assert by_feature(drift(c))[FEATURE_NAMES[0]]["reading"] == "shifted"
        send(c, training_like(store, 600, seed=2))  # the shifted rows have all left the window
        report = drift(c)
        assert report["rows"] == 600 and by_feature(report)[FEATURE_NAMES[0]]["reading"] == "stable"
        assert c.post(f"/models/{GB_VERSION}/load", headers=admin).status_code == 200
        report = drift(c)
        assert report["version"] == GB_VERSION and report["rows"] == 0
        assert not [k for k in scrape(c) if k[0] == "ml_matching_feature_psi"]
        send(c, shifted)  # a reading again, then the same version loaded again: its window starts over
        assert [k for k in scrape(c) if k[0] == "ml_matching_feature_psi"]
        assert c.post(f"/models/{GB_VERSION}/load", headers=admin).status_code == 200
        assert drift(c)["rows"] == 0
        assert not [k for k in scrape(c) if k[0] == "ml_matching_feature_psi"]


def test_drift_answers_503_while_nothing_serves(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(models_dir=tmp_path / "empty"))) as c:
        response = c.get("/monitoring/drift")
        assert response.status_code == 503 and response.json()["error"] == "model_not_ready"


def test_psi_and_its_reading() -> None:
    even = [100] * 10
    assert psi(even, even) == 0.0
    assert psi(even, [0, 0, 0] + [100] * 7) > 0.25
    assert reading(0.05) == "stable" and reading(0.2) == "moderate" and reading(0.3) == "shifted"
    assert reading(None) == "insufficient"
