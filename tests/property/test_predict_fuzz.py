"""Invariants of the HTTP API under random input (Hypothesis)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.runtime import create_app
from ml_matching.runtime.settings import Settings
from tests.conftest import FEATURE_NAMES, FIXTURE_STORE, ROOT, SEED_ROW

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
# Rows that are mostly right: each feature is kept, dropped, or replaced by any JSON value.
near_rows = st.fixed_dictionaries(
    {},
    optional={n: st.one_of(st.floats(0, 1), json_values) for n in FEATURE_NAMES} | {"extra": json_values},
)
valid_rows = st.fixed_dictionaries({n: st.floats(0, 1) for n in FEATURE_NAMES})


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Litestar]]:
    store = tmp_path_factory.mktemp("fuzz") / "store"
    shutil.copytree(FIXTURE_STORE, store)
    with TestClient(create_app(Settings(models_dir=store, max_batch_rows=20))) as c:
        yield c


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(json_values, near_rows))
def test_random_json_never_gets_a_5xx(client: TestClient[Litestar], body: Any) -> None:
    for path in ("/predict", "/predict/batch"):
        payload = body if path == "/predict" else {"instances": body}
        response = client.post(
            path, content=json.dumps(payload), headers={"content-type": "application/json"}
        )
        assert response.status_code in (200, 400), response.text
        if response.status_code == 400:
            assert response.json()["detail"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(valid_rows, min_size=1, max_size=20))
def test_a_batch_scores_the_same_as_row_by_row(
    client: TestClient[Litestar], rows: list[dict[str, float]]
) -> None:
    batch = client.post("/predict/batch", json={"instances": rows}).json()["predictions"]
    singles = [client.post("/predict", json=r).json() for r in rows]
    scored = ("score", "confidence", "successProbability")
    assert [{k: b[k] for k in scored} for b in batch] == [{k: s[k] for k in scored} for s in singles]
    ids = [b["predictionId"] for b in batch] + [s["predictionId"] for s in singles]
    assert len(set(ids)) == len(ids) and ids[: len(rows)] == sorted(ids[: len(rows)])  # unique, time-ordered


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_random_bytes_get_a_400_naming_the_problem(client: TestClient[Litestar], raw: bytes) -> None:
    # 200 random bytes are never a row of 19 features, so every one of them is refused.
    response = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_input" and body["detail"]


def test_the_seed_row_is_valid(client: TestClient[Litestar]) -> None:
    assert client.post("/predict", json=SEED_ROW).status_code == 200


RESPONSES = {
    "/predict": json.loads((ROOT / "schemas" / "predict.response.schema.json").read_text()),
    "/predict/batch": json.loads((ROOT / "schemas" / "predict-batch.response.schema.json").read_text()),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(valid_rows, min_size=2, max_size=20), seed=st.randoms(use_true_random=False))
def test_a_batch_does_not_depend_on_the_order_of_its_rows(
    client: TestClient[Litestar], rows: list[dict[str, float]], seed: Any
) -> None:
    order = list(range(len(rows)))
    seed.shuffle(order)
    straight = client.post("/predict/batch", json={"instances": rows}).json()["predictions"]
    shuffled = client.post("/predict/batch", json={"instances": [rows[i] for i in order]}).json()[
        "predictions"
    ]

    def scored(predictions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in p.items() if k != "predictionId"} for p in predictions]

    assert scored([shuffled[order.index(i)] for i in range(len(rows))]) == scored(straight)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(valid_rows, min_size=1, max_size=5))
def test_answers_round_trip_through_the_published_response_schemas(
    client: TestClient[Litestar], rows: list[dict[str, float]]
) -> None:
    for path, body in (("/predict", rows[0]), ("/predict/batch", {"instances": rows})):
        response = client.post(path, json=body)
        text = response.text
        jsonschema.validate(json.loads(text), RESPONSES[path])
        # Encoding the decoded answer again gives the same numbers (no float lost on the wire).
        assert json.loads(json.dumps(json.loads(text))) == json.loads(text)
