"""Every endpoint through Litestar's TestClient."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.contract.ids import is_prediction_id
from ml_matching.runtime import create_app
from ml_matching.runtime.settings import Settings
from ml_matching.runtime.versions import SIDECARS_KEPT
from tests.conftest import FEATURE_NAMES, GB_VERSION, OTHER_VERSION, RF_VERSION, SEED_ROW, copy_version
from tests.runtime.conftest import TOKEN
from tests.runtime.corrupt import CORRUPTIONS, EXPLAINER_CORRUPTIONS, MODEL_CORRUPTIONS
from tests.support import running_service

Client = TestClient[Litestar]


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["statusCode"] == status and isinstance(body["error"], str)
    return str(body["detail"])


# --- health -------------------------------------------------------------------------------------


def test_health_reports_the_served_model(client: Client) -> None:
    body = client.get("/health").json()
    assert body["status"] == "healthy" and body["service"] == "ml-matching"
    assert body["modelLoaded"] is True and body["modelVersion"] == RF_VERSION
    assert body["timestamp"].endswith("+00:00")
    assert client.get("/health/ready").json() == {"status": "ready", "modelVersion": RF_VERSION}


def test_an_empty_store_starts_unready_and_says_how_to_train(tmp_path: Path, row: dict[str, float]) -> None:
    with TestClient(create_app(Settings(models_dir=tmp_path / "nothing-here"))) as c:
        health = c.get("/health").json()
        assert health["modelLoaded"] is False and health["modelVersion"] is None
        _error(c.get("/health/ready"), 503)
        detail = _error(c.post("/predict", json=row), 503)
        assert "ml-matching fit" in detail
        assert c.get("/models").json() == []


def test_a_mistyped_pinned_version_is_named_not_a_reason_to_train(store: Path, row: dict[str, float]) -> None:
    with TestClient(create_app(Settings(models_dir=store, model_version="20260101_000001"))) as c:
        detail = _error(c.get("/health/ready"), 503)
        assert detail == (
            f"nothing serves: the pinned MODEL_VERSION 20260101_000001 is not in the store {store} "
            f"(it holds {RF_VERSION}, {GB_VERSION}, {OTHER_VERSION})"
        )
        assert _error(c.post("/predict", json=row), 503) == detail


# --- predict ------------------------------------------------------------------------------------


def test_predict_answers_the_seed_shape(client: Client, row: dict[str, float]) -> None:
    body = client.post("/predict", json=row).json()
    assert set(body) == {
        "score", "confidence", "successProbability", "featureImportance", "modelVersion", "predictionId"
    }  # fmt: skip
    assert is_prediction_id(body["predictionId"])
    assert body["score"] == body["successProbability"]
    assert 0 <= body["score"] <= 100 and 0 <= body["confidence"] <= 100
    assert list(body["featureImportance"]) == FEATURE_NAMES
    assert math.fsum(body["featureImportance"].values()) == pytest.approx(1.0)
    assert body["modelVersion"] == RF_VERSION


def test_confidence_is_lowered_outside_the_training_range(client: Client, row: dict[str, float]) -> None:
    stats = client.get(f"/models/{RF_VERSION}").json()["trainingData"]["features"]
    inside = {n: (stats[n]["min"] + stats[n]["max"]) / 2 for n in FEATURE_NAMES}
    outside = {**inside, "brandFit": 0.0 if stats["brandFit"]["min"] > 0 else 1.0}
    assert stats["brandFit"]["min"] > 0 or stats["brandFit"]["max"] < 1, "fixture data spans [0, 1]"
    a, b = (client.post("/predict", json=r).json() for r in (inside, outside))
    for body in (a, b):
        p = body["successProbability"] / 100
        core = 100 * abs(2 * p - 1)
        expected = core if body is a else core * (1 - 1 / 19)
        assert body["confidence"] == pytest.approx(expected, rel=1e-12)


def test_batch_scores_the_same_as_row_by_row(client: Client, row: dict[str, float]) -> None:
    rows = [{**row, "brandFit": v / 10, "budgetAlignment": 1 - v / 10} for v in range(11)]
    batch = client.post("/predict/batch", json={"instances": rows}).json()
    assert batch["modelVersion"] == RF_VERSION and len(batch["predictions"]) == len(rows)
    for r, got in zip(rows, batch["predictions"], strict=True):
        one = client.post("/predict", json=r).json()
        assert got == {k: one[k] for k in ("score", "confidence", "successProbability")} | {
            "predictionId": got["predictionId"]
        }
        assert is_prediction_id(got["predictionId"]) and got["predictionId"] != one["predictionId"]
    assert batch["featureImportance"] == client.post("/predict", json=row).json()["featureImportance"]


def test_a_batch_with_units_is_scored_by_the_version_it_read_while_a_swap_lands(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A swap on another thread (an admin load, the watcher) between two of a batch's rows must not
    score the rest with a version whose features the rows were not read with."""
    service, serving = client.app.state.service, client.app.state.serving
    service.load(GB_VERSION, persist=False)
    gb = service.scorer
    service.load(RF_VERSION, persist=False)
    rf = service.scorer
    reads = iter([rf])
    monkeypatch.setattr(serving, "_control", lambda: next(reads, gb))  # swapped after the first read
    answer = client.post("/predict/batch", json={"instances": [SEED_ROW] * 3, "units": ["a", "b", "c"]})
    monkeypatch.undo()
    alone = client.post("/predict", json=SEED_ROW).json()["score"]
    assert answer.status_code == 200 and answer.json()["modelVersion"] == RF_VERSION
    assert [p["score"] for p in answer.json()["predictions"]] == [alone] * 3


def test_a_unit_key_sent_twice_is_refused_not_served_on_the_first(store: Path) -> None:
    """On a real server: the test client joins repeated headers into one (`a, b`), uvicorn does not."""
    with running_service(store) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            body = json.dumps(SEED_ROW).encode()
            conn.putrequest("POST", "/predict")
            for name, value in (("ML-Unit-Key", "brand-1"), ("ML-Unit-Key", "brand-2")):
                conn.putheader(name, value)
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            answer = conn.getresponse()
            detail = json.loads(answer.read())["detail"]
        finally:
            conn.close()
    assert (answer.status, detail) == (400, "header `ML-Unit-Key`: given 2 times, expected once")


# --- models -------------------------------------------------------------------------------------


def test_models_lists_versions_with_metrics(client: Client) -> None:
    listing = client.get("/models").json()
    assert [m["version"] for m in listing] == [RF_VERSION, GB_VERSION, OTHER_VERSION]
    assert [m["algorithm"] for m in listing] == ["random_forest", "gradient_boosting", "random_forest"]
    assert [m["active"] for m in listing] == [True, False, False]
    assert 0.5 < listing[0]["metrics"]["crossValidation"]["rocAuc"] <= 1
    assert listing[0]["timestamp"] == "2026-01-01T00:00:00Z"


def test_models_lists_a_large_store_keeping_a_bounded_number_of_sidecars(client: Client, store: Path) -> None:
    """A store gains a version at every retraining: listing them all keeps each one's summary, not
    its whole sidecar, and follows versions rewritten or removed."""
    copies = [f"20260201_{i:06d}" for i in range(SIDECARS_KEPT + 8)]
    for name in copies:
        copy_version(store, GB_VERSION, name)
    listing = client.get("/models").json()
    assert [m["version"] for m in listing] == [RF_VERSION, GB_VERSION, OTHER_VERSION, *copies]
    assert {m["algorithm"] for m in listing[3:]} == {"gradient_boosting"}
    for name in copies:  # each one read whole, as /models/{v}/files does
        client.get(f"/models/{name}/files/model.json")
    service = client.app.state.service
    assert service.versions.sidecars_kept == SIDECARS_KEPT
    sidecar = json.loads((store / copies[0] / "model.json").read_text())
    (store / copies[0] / "model.json").write_text(
        json.dumps({**sidecar, "createdAt": "2026-02-02T00:00:00Z"})
    )
    shutil.rmtree(store / copies[-1])
    again = {m["version"]: m for m in client.get("/models").json()}
    assert again[copies[0]]["timestamp"] == "2026-02-02T00:00:00Z" and copies[-1] not in again


def test_model_sidecar_is_served_as_stored(client: Client, store: Path) -> None:
    response = client.get(f"/models/{GB_VERSION}")
    assert response.content == (store / GB_VERSION / "model.json").read_bytes()
    _error(client.get("/models/20990101_000000"), 404)
    assert "not a version name" in _error(client.get("/models/..%2F..%2Fetc%2Fpasswd"), 400)


def test_load_swaps_and_persists(
    client: Client, store: Path, admin: dict[str, str], row: dict[str, float]
) -> None:
    response = client.post(f"/models/{GB_VERSION}/load", headers=admin)
    assert response.json() == {
        "status": "success",
        "version": GB_VERSION,
        "previousVersion": RF_VERSION,
        "persisted": True,
    }
    assert client.post("/predict", json=row).json()["modelVersion"] == GB_VERSION
    assert (store / "ACTIVE").read_text().strip() == GB_VERSION
    assert [m["active"] for m in client.get("/models").json()] == [False, True, False]


def test_management_needs_a_configured_token(store: Path) -> None:
    with TestClient(create_app(Settings(models_dir=store))) as c:
        detail = _error(c.post(f"/models/{GB_VERSION}/load", headers={"Authorization": "Bearer x"}), 403)
        assert "ML_SERVICE_ADMIN_TOKEN" in detail


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dGVzdA==", "test-admin-token"])
def test_wrong_or_missing_token_is_401(client: Client, header: str | None) -> None:
    response = client.post(f"/models/{GB_VERSION}/load", headers={"Authorization": header} if header else {})
    _error(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/health").json()["modelVersion"] == RF_VERSION


@pytest.mark.parametrize(
    "path", ["/models/20990101_000000/load", "/models/..%2Fstore/load", "/models/a.b/load"]
)
def test_unknown_or_malformed_versions(client: Client, admin: dict[str, str], path: str) -> None:
    status = 404 if "2099" in path else 400
    _error(client.post(path, headers=admin), status)
    assert client.get("/health").json()["modelVersion"] == RF_VERSION


@pytest.mark.parametrize(
    ("kind", "explain_load"),
    [*((k, "lazy") for k in MODEL_CORRUPTIONS), *((k, "eager") for k in EXPLAINER_CORRUPTIONS)],
)
def test_corrupt_versions_are_refused_and_the_old_model_serves(
    store: Path, admin: dict[str, str], row: dict[str, float], kind: str, explain_load: str
) -> None:
    settings = Settings(models_dir=store, admin_token=TOKEN, explain_load=explain_load)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        _corrupt_version_is_refused(client, store, admin, row, kind)


def _scored(response: Any) -> dict[str, Any]:
    """An answer without its prediction id (a new one for every request)."""
    return {k: v for k, v in response.json().items() if k != "predictionId"}


def _corrupt_version_is_refused(
    client: Client, store: Path, admin: dict[str, str], row: dict[str, float], kind: str
) -> None:
    before = _scored(client.post("/predict", json=row))
    corrupt, check = CORRUPTIONS[kind]
    corrupt(store / GB_VERSION)
    response = client.post(f"/models/{GB_VERSION}/load", headers=admin)
    assert _error(response, 422).startswith(check)
    assert response.json()["check"] == check
    assert _scored(client.post("/predict", json=row)) == before
    assert (store / "ACTIVE").read_text().strip() == RF_VERSION


# --- start-up choice ----------------------------------------------------------------------------


def test_pinned_version_wins_over_active(store: Path) -> None:
    with TestClient(create_app(Settings(models_dir=store, model_version=GB_VERSION))) as c:
        assert c.get("/health").json()["modelVersion"] == GB_VERSION


@pytest.mark.parametrize(
    ("model_type", "version"), [("random_forest", OTHER_VERSION), ("gradient_boosting", GB_VERSION)]
)
def test_without_active_the_newest_of_model_type_serves(store: Path, model_type: str, version: str) -> None:
    (store / "ACTIVE").unlink()
    with TestClient(create_app(Settings(models_dir=store, model_type=model_type))) as c:
        assert c.get("/health").json()["modelVersion"] == version


def test_a_corrupt_start_version_serves_nothing(store: Path) -> None:
    CORRUPTIONS["hash-mismatch"][0](store / RF_VERSION)
    with TestClient(create_app(Settings(models_dir=store))) as c:
        assert c.get("/health").json()["modelLoaded"] is False
        _error(c.get("/health/ready"), 503)


# --- CORS ---------------------------------------------------------------------------------------


def test_cors_allows_configured_origins_only(store: Path, row: dict[str, float]) -> None:
    settings = Settings(models_dir=store, allowed_origins=("http://localhost:3000",))
    with TestClient(create_app(settings)) as c:
        ok = c.post("/predict", json=row, headers={"Origin": "http://localhost:3000"})
        assert ok.headers["access-control-allow-origin"] == "http://localhost:3000"
        other = c.post("/predict", json=row, headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = {
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,ml-unit-key",  # a keyed request
        }
        assert c.options("/predict", headers=preflight).status_code == 204


# --- version files ------------------------------------------------------------------------------


def test_a_versions_files_can_be_downloaded_with_their_hash(client: Client, store: Path) -> None:
    sidecar = client.get(f"/models/{RF_VERSION}").json()
    onnx = client.get(f"/models/{RF_VERSION}/files/model.onnx")
    assert onnx.status_code == 200 and onnx.content == (store / RF_VERSION / "model.onnx").read_bytes()
    assert onnx.headers["content-type"] == "application/octet-stream"
    assert hashlib.sha256(onnx.content).hexdigest() == sidecar["onnx"]["sha256"]
    assert onnx.headers["etag"] == f'"{sidecar["onnx"]["sha256"]}"'
    digest = base64.b64encode(hashlib.sha256(onnx.content).digest()).decode()
    assert onnx.headers["repr-digest"] == f"sha-256=:{digest}:"
    meta = client.get(f"/models/{RF_VERSION}/files/model.json")
    assert meta.content == (store / RF_VERSION / "model.json").read_bytes()
    assert meta.headers["etag"] == f'"{hashlib.sha256(meta.content).hexdigest()}"'


def test_head_gives_a_files_headers_without_its_bytes(store: Path) -> None:
    """On one kept-alive connection to a real server: a body sent after a HEAD would be read as the
    start of the next answer."""
    paths = [f"/models/{RF_VERSION}/files/model.onnx", f"/models/{RF_VERSION}/card"]
    with running_service(store) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            for path in paths:
                conn.request("HEAD", path)
                head = conn.getresponse()
                head.read()
                conn.request("GET", path)
                got = conn.getresponse()
                body = got.read()
                assert head.status == got.status == 200
                for name in ("content-type", "content-length", "etag", "repr-digest"):
                    assert head.getheader(name) == got.getheader(name), name
                assert int(got.getheader("content-length", "-1")) == len(body) > 0
            conn.request("HEAD", f"/models/{RF_VERSION}/files/notes.txt")
            missing = conn.getresponse()
            assert missing.status == 404 and missing.read() == b""
        finally:
            conn.close()


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        (f"/models/{RF_VERSION}/files/notes.txt", 404, "file_not_found"),
        (f"/models/{RF_VERSION}/files/ACTIVE", 404, "file_not_found"),
        (f"/models/{RF_VERSION}/files/..%2F{GB_VERSION}%2Fmodel.onnx", 400, "invalid_input"),
        (f"/models/{RF_VERSION}/files/..%2F..%2F..%2Fetc%2Fpasswd", 400, "invalid_input"),
        (f"/models/{RF_VERSION}/files/%2E%2E", 400, "invalid_input"),
        (f"/models/{RF_VERSION}/files/.model.onnx", 400, "invalid_input"),
        ("/models/20990101_000000/files/model.onnx", 404, "version_not_found"),
        ("/models/..%2F..%2Fetc/files/passwd", 400, "invalid_input"),
    ],
)
def test_files_outside_the_version_are_refused(client: Client, path: str, status: int, code: str) -> None:
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code


def test_unrouted_paths_and_methods_answer_in_the_error_vocabulary(client: Client) -> None:
    missing = client.get("/predictions")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert missing.json()["detail"] == "no route for GET /predictions"
    wrong = client.get("/predict")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert "POST" in wrong.headers["allow"] and "allowed: POST" in wrong.json()["detail"]


def test_a_served_app_freezes_its_start_up_heap_and_still_frees_a_swapped_out_model(
    store: Path, admin: dict[str, str]
) -> None:
    import gc
    import weakref

    before = gc.get_freeze_count()
    with TestClient(create_app(Settings(models_dir=store))) as c:
        assert c.get("/health/ready").status_code == 200
        assert gc.get_freeze_count() == before  # a test app: its garbage cycles stay collectable
    try:
        app = create_app(Settings(models_dir=store, admin_token=TOKEN), freeze_gc=True)
        with TestClient(app) as c:
            assert gc.get_freeze_count() > before  # what a full collection no longer walks
            first = weakref.ref(app.state.service.scorer.model.session)
            assert c.post(f"/models/{GB_VERSION}/load", headers=admin).status_code == 200
            gc.collect()
            assert first() is None  # frozen, yet freed once nothing holds it: no model leaks per swap
    finally:
        gc.unfreeze()
