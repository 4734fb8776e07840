"""The trainer's API through Litestar's TestClient: outcomes, stats, export, /train and its refusals."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.trainer import TrainerSettings, create_app
from ml_matching.training.data import load_dataset
from tests.conftest import SEED_ROW
from tests.prometheus import parse, value
from tests.trainer.conftest import ADMIN, FS, outcomes

Client = TestClient[Litestar]


def _error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["statusCode"], body["error"]) == (status, code), body
    return str(body["detail"])


def _finished(client: Client, job: str, seconds: float = 60) -> dict[str, Any]:
    """The job's view once it finished: waits on the runner's event for it, then asks the API."""
    client.app.state.trainer.runner.wait(job, seconds)
    view: dict[str, Any] = client.get(f"/train/{job}").json()
    assert view["state"] in ("succeeded", "rejected", "failed"), view
    return view


def test_one_outcome_is_stored_and_a_retry_is_not(client: Client) -> None:
    (one,) = outcomes(1, seed=1)
    first = client.post("/outcomes", json=one).json()
    assert first == {
        "stored": 1,
        "duplicates": 0,
        "total": 1,
        "untrained": 1,
        "ids": [one["id"]],
        "pending": 0,
    }
    again = client.post("/outcomes", json=one).json()
    assert (again["stored"], again["duplicates"], again["total"]) == (0, 1, 1)


def test_an_id_is_made_when_none_is_given(client: Client) -> None:
    (one,) = outcomes(1, seed=2)
    one.pop("id")
    answer = client.post("/outcomes", json=one).json()
    assert answer["stored"] == 1 and len(answer["ids"][0]) == 32


def test_the_same_id_with_other_content_is_a_conflict_and_stores_nothing(client: Client) -> None:
    a, b = outcomes(2, seed=3)
    client.post("/outcomes", json=a)
    clash = {**a, "outcome": not a["outcome"]}
    detail = _error(client.post("/outcomes", json={"outcomes": [b, clash]}), 409, "outcome_conflict")
    assert detail.startswith(f"outcome `{a['id']}` is already stored with other features or another outcome")
    assert client.get("/outcomes/stats").json()["total"] == 1, "b was not stored either"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            [],
            'expected one outcome {"features": {...}, "outcome": true} or {"outcomes": [...]}, got an array',
        ),
        ({"features": SEED_ROW}, "missing field `outcome`"),
        (
            {"features": SEED_ROW, "outcome": "yes"},
            'field `outcome`: expected true or false (or 1 or 0), got a string "yes"',
        ),
        (
            {"features": SEED_ROW, "outcome": 2},
            "field `outcome`: expected true or false (or 1 or 0), got a number",
        ),
        (
            {"predictionId": "p-1", "outcome": True},
            "field `predictionId`: expected a prediction id as the runtime",
        ),
        ({"predictionId": "0192f3a4-5b6c-7d8e-9f00-112233445566", "outcome": 1, "x": 2}, "unknown field `x`"),
        (
            {"features": SEED_ROW, "outcome": True, "score": 3},
            "unknown field `score` (an outcome has `id`, `features` and `outcome`)",
        ),
        (
            {"features": {**SEED_ROW, "brandFit": 2}, "outcome": True},
            "features: feature `brandFit`: value 2 is outside [0, 1]",
        ),
        (
            {"features": {"brandFit": 0.5}, "outcome": True},
            "features: missing features `nicheAlignment`, `audienceMatch`",
        ),
        ({"features": SEED_ROW, "outcome": True, "id": ""}, "field `id`: expected 1 to 128 letters, digits"),
        (
            {"features": SEED_ROW, "outcome": True, "id": "a b"},
            "field `id`: expected 1 to 128 letters, digits",
        ),
        ({"outcomes": []}, "`outcomes` must be a non-empty list of outcomes"),
        (
            {"outcomes": [{"features": SEED_ROW, "outcome": True}] * 301},
            "`outcomes` has 301 outcomes, more than MAX_BATCH_ROWS (300)",
        ),
        (
            {"outcomes": [{"features": SEED_ROW, "outcome": True}, {"features": SEED_ROW}]},
            "outcome 1: missing field `outcome`",
        ),
    ],
)
def test_bad_outcomes_are_refused_naming_the_field(client: Client, body: Any, detail: str) -> None:
    assert _error(client.post("/outcomes", json=body), 400, "invalid_input").startswith(detail)
    assert client.get("/outcomes/stats").json()["total"] == 0


def test_not_json_is_refused(client: Client) -> None:
    response = client.post("/outcomes", content=b"outcome=1", headers={"content-type": "text/plain"})
    _error(response, 415, "unsupported_media_type")
    detail = _error(
        client.post("/outcomes", content=b'{"features": NaN}', headers={"content-type": "application/json"}),
        400,
        "invalid_input",
    )
    assert "NaN and Infinity are not JSON numbers" in detail


def test_stats_and_export_in_fit_format(client: Client, tmp_path: Path) -> None:
    rows = outcomes(120, seed=4)
    client.post("/outcomes", json={"outcomes": rows})
    stats = client.get("/outcomes/stats").json()
    positives = sum(r["outcome"] for r in rows)
    assert (stats["total"], stats["positives"], stats["retrainEvery"]) == (120, positives, 50)
    assert 0 < stats["evaluation"] < 120 and stats["firstAt"] <= stats["lastAt"]
    exported = client.get("/outcomes/export")
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in exported.text.splitlines()]
    assert [{k: v for k, v in line.items() if k != "outcome"} for line in lines] == [
        r["features"] for r in rows
    ]
    path = tmp_path / "exported.jsonl"
    path.write_text(exported.text)
    assert load_dataset(path, FS).rows == 120, "fit --data reads the export as is"
    training = client.get("/outcomes/export?split=training").text.splitlines()
    evaluation = client.get("/outcomes/export?split=evaluation").text.splitlines()
    assert (len(training), len(evaluation)) == (120 - stats["evaluation"], stats["evaluation"])
    refused = client.get("/outcomes/export?split=other")
    assert refused.status_code == 400
    assert refused.json()["detail"].endswith(
        "Invalid enum value 'other' (expected all, training or evaluation)"
    )


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [({}, 401, "unauthorized"), ({"Authorization": "Bearer no"}, 401, "unauthorized")],
)
def test_train_needs_the_admin_token(client: Client, headers: dict[str, str], status: int, code: str) -> None:
    _error(client.post("/train", headers=headers), status, code)


def test_train_without_a_configured_token_is_disabled(settings: TrainerSettings) -> None:
    with TestClient(create_app(replace(settings, admin_token=None))) as c:
        _error(c.post("/train", headers=ADMIN), 403, "management_disabled")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"features": [SEED_ROW] * 10, "outcomes": [True] * 10},
            "request body: 10 rows; training needs at least 50",
        ),
        ({"features": [SEED_ROW] * 60, "outcomes": [True] * 60}, "request body: only one class present"),
        ({"features": [SEED_ROW], "outcomes": []}, "request body: 1 feature rows but 0 outcomes"),
        (
            {"features": [{**SEED_ROW, "brandFit": 3}] * 60, "outcomes": [True, False] * 30},
            "request body: row 1, feature `brandFit`: value 3 is outside [0, 1]",
        ),
        ({"rows": []}, 'request body: expected an object with "features" and "outcomes" lists'),
    ],
)
def test_a_train_body_that_cannot_be_trained_on_is_refused_at_once(
    client: Client, body: Any, detail: str
) -> None:
    assert _error(client.post("/train", json=body, headers=ADMIN), 400, "invalid_data").startswith(detail)


def test_an_unknown_job_is_404(client: Client) -> None:
    _error(client.get("/train/nope"), 404, "job_not_found")


def test_train_answers_at_once_when_asked_and_the_job_tells_the_rest(client: Client) -> None:
    client.post("/outcomes", json={"outcomes": outcomes(30, seed=5)})
    response = client.post("/train", headers={**ADMIN, "Prefer": "respond-async"})
    assert response.status_code == 202 and response.headers["preference-applied"] == "respond-async"
    job = response.json()["job"]
    assert response.headers["location"] == f"/train/{job}"
    view = _finished(client, job)
    assert view["state"] == "rejected" and view["kind"] == "manual" and view["source"] == "stored"
    assert view["result"] == {"status": "rejected", "job": job, "reason": view["result"]["reason"]}
    assert (
        "30 rows; training needs at least 50" in view["result"]["reason"]
        or "rows; training needs at least 50" in view["result"]["reason"]
    )
    assert client.get("/outcomes/stats").json()["untrained"] == 30, "a rejected job used nothing"
    assert "wait" in _error(client.post("/train?wait=-1", headers=ADMIN), 400, "invalid_input")
    waited = client.post("/train?wait=1", headers=ADMIN)
    assert waited.status_code == 422 and waited.json()["status"] == "rejected"
    m = parse(client.get("/metrics").text)
    assert value(m, "ml_matching_trainer_jobs_total", kind="manual", state="rejected") == 2
    assert value(m, "ml_matching_trainer_job_duration_seconds_count", state="rejected") == 2
    assert value(m, "ml_matching_trainer_untrained_outcomes") == 30
    assert not [k for k in m if k[0] == "ml_matching_trainer_gate_decisions_total"]


def test_with_no_experiment_its_gauges_read_unknown_not_zero(client: Client) -> None:
    """A restarted trainer with no experiment said `experiment_srm_p 0.0`: an alert on p < 0.001 fired."""
    response = client.get("/metrics")
    assert response.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8", "one charset"
    m = parse(response.text)
    for name in ("srm_p", "primary_estimate", "primary_lower", "primary_upper"):
        assert math.isnan(value(m, f"ml_matching_trainer_experiment_{name}")), name


def test_every_fifty_outcomes_queue_a_training_that_publishes_and_promotes(
    client: Client, trainer_store: Path
) -> None:
    answer = client.post("/outcomes", json={"outcomes": outcomes(60, seed=6)}).json()
    assert answer["job"], "60 new outcomes queue a retraining"
    view = _finished(client, answer["job"])
    assert view["state"] == "succeeded", view
    result = view["result"]
    assert result["status"] == "success" and result["promoted"] is True
    assert set(result["metrics"]) == {"accuracy", "precision", "recall", "f1_score", "cv_score", "cv_std"}
    assert result["decision"]["reason"].startswith("the first version of the store")
    assert (trainer_store / "ACTIVE").read_text().strip() == result["modelVersion"]
    sidecar = json.loads((trainer_store / result["modelVersion"] / "model.json").read_text())
    assert sidecar["gate"] == result["decision"]
    assert any(line.startswith("published ") for line in view["progress"])
    stats = client.get("/outcomes/stats").json()
    assert stats["untrained"] == 0 and stats["nextRetrainIn"] == 50
    assert client.get("/health").json()["activeVersion"] == result["modelVersion"]
    m = parse(client.get("/metrics").text)
    assert value(m, "ml_matching_trainer_outcomes_received_total", result="stored") == 60
    assert value(m, "ml_matching_trainer_outcomes") == 60
    assert value(m, "ml_matching_trainer_untrained_outcomes") == 0
    assert value(m, "ml_matching_trainer_jobs_total", kind="auto", state="succeeded") == 1
    decided = "ml_matching_trainer_gate_decisions_total"
    assert value(m, decided, decision="promoted", reason="first_version") == 1
    assert value(m, "ml_matching_trainer_active_roc_auc") == result["decision"]["candidateRocAuc"]
    requests = "ml_matching_trainer_http_requests_total"
    assert value(m, requests, route="/outcomes", method="POST", status="200") == 1


def test_the_openapi_document_has_the_outcome_fields(client: Client) -> None:
    spec = client.get("/schema/openapi.json").json()
    body = spec["paths"]["/outcomes"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    one = next(s for s in body["anyOf"] if "features" in s.get("properties", {}))
    assert list(one["properties"]["features"]["properties"]) == list(FS.names)
    assert {"/outcomes", "/outcomes/stats", "/outcomes/export", "/train", "/train/{job}"} <= set(
        spec["paths"]
    )
    assert client.get("/docs").status_code == 200


def test_every_body_the_trainer_reads_is_in_its_openapi_document_with_its_refusals(client: Client) -> None:
    """/holdouts and /train had no request body there, /train's 400 named the wrong code, and no
    route listed the 413 and 415 every body can get."""
    spec = client.get("/schema/openapi.json").json()
    for path in ("/outcomes", "/predictions", "/experiments", "/holdouts", "/train"):
        operation = spec["paths"][path]["post"]
        assert "application/json" in operation["requestBody"]["content"], path
        assert {"400", "413", "415"} <= set(operation["responses"]), path
    train = spec["paths"]["/train"]["post"]
    assert train["requestBody"]["required"] is False, "without a body it trains on the stored outcomes"
    assert "`invalid_data`" in train["responses"]["400"]["description"]
    schema = train["requestBody"]["content"]["application/json"]["schema"]
    rng = random.Random(3)
    body = {"features": [dict(SEED_ROW)] * 60, "outcomes": [rng.choice([True, 0, "yes"]) for _ in range(60)]}
    jsonschema.validate(body, schema)  # what the trainer takes, the document allows
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"features": [SEED_ROW] * 60, "outcomes": [2] * 60}, schema)


def test_docs_cdn_loads_the_trainers_docs_from_the_cdn(settings: TrainerSettings) -> None:
    """The error for missing docs files tells a user to set DOCS_CDN=true: the trainer read no such
    setting, and stayed down."""
    with TestClient(create_app(replace(settings, docs_cdn=True))) as c:
        assert "cdn.jsdelivr.net/npm/swagger-ui-dist" in c.get("/docs").text
    with TestClient(create_app(settings)) as c:
        assert "cdn.jsdelivr.net" not in c.get("/docs").text
