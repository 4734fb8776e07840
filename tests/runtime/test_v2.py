"""The Open Inference Protocol v2 paths through the TestClient: every answer and every refusal.

Real clients written by others (tritonclient, KServe) run against a real server in tests/oip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.runtime import create_app
from ml_matching.runtime.settings import Settings
from tests.conftest import FEATURE_NAMES, GB_VERSION, RF_VERSION

Client = TestClient[Litestar]
N = len(FEATURE_NAMES)
INFER = "/v2/models/ml-matching/infer"


def tensor(data: Any, shape: list[int] | None = None, **changes: Any) -> dict[str, Any]:
    rows = len(data) if data and isinstance(data[0], list) else max(len(data) // N, 1)
    return {
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": shape or [rows, N], "data": data, **changes}
        ]
    }


def protocol_error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    return str(body["error"])


def test_server_health_and_metadata(client: Client) -> None:
    assert client.get("/v2").json() == {
        "name": "ml-matching",
        "version": client.get("/v2").json()["version"],
        "extensions": [],
    }
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/ml-matching/ready").json() == {"ready": True}
    meta = client.get("/v2/models/ml-matching").json()
    assert meta["versions"] == [RF_VERSION, GB_VERSION, "20260103_000000"]
    assert meta["parameters"]["features"] == FEATURE_NAMES
    assert meta["parameters"]["classes"] == [0, 1] and meta["parameters"]["decision_threshold"] == 0.5
    one = client.get(f"/v2/models/ml-matching/versions/{GB_VERSION}").json()
    assert one["versions"] == [GB_VERSION] and one["parameters"]["version"] == GB_VERSION
    assert client.get(f"/v2/models/ml-matching/versions/{RF_VERSION}/ready").json() == {"ready": True}
    not_served = client.get(f"/v2/models/ml-matching/versions/{GB_VERSION}/ready")
    assert not_served.status_code == 503 and not_served.json() == {"ready": False}


def test_nothing_served_is_not_ready(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(models_dir=tmp_path / "empty"))) as c:
        assert c.get("/v2/health/live").json() == {"live": True}
        ready = c.get("/v2/health/ready")
        assert ready.status_code == 503 and ready.json() == {"ready": False}
        assert "no model is loaded" in protocol_error(c.get("/v2/models/ml-matching"), 503)
        assert "no model is loaded" in protocol_error(c.post(INFER, json=tensor([0.5] * N)), 503)


def test_infer_equals_predict_flat_or_nested(client: Client, row: dict[str, float]) -> None:
    values = [row[f] for f in FEATURE_NAMES]
    other = [0.25] * N
    score = [
        client.post("/predict", json=r).json()["successProbability"]
        for r in (row, dict(zip(FEATURE_NAMES, other, strict=True)))
    ]
    for data in ([*values, *other], [values, other]):
        body = client.post(INFER, json={**tensor(data, [2, N]), "id": "x-1"}).json()
        assert (
            body["model_name"] == "ml-matching"
            and body["model_version"] == RF_VERSION
            and body["id"] == "x-1"
        )
        proba, label = body["outputs"]
        assert proba["name"] == "probabilities" and proba["datatype"] == "FP32" and proba["shape"] == [2, 2]
        assert [100.0 * p for p in proba["data"][1::2]] == score
        assert label == {
            "name": "label",
            "datatype": "INT64",
            "shape": [2],
            "data": [int(p >= 0.5) for p in proba["data"][1::2]],
        }


def test_only_the_outputs_asked_for(client: Client) -> None:
    body = client.post(
        INFER,
        json={**tensor([0.5] * N), "outputs": [{"name": "label", "parameters": {"binary_data": False}}]},
    ).json()
    assert [o["name"] for o in body["outputs"]] == ["label"]


def test_infer_counts_and_feeds_the_drift_window(client: Client) -> None:
    client.post(INFER, json=tensor([[0.5] * N] * 3))
    assert client.get("/monitoring/drift").json()["rows"] == 3
    assert 'ml_matching_predictions_total{version="20260101_000000"} 3.0' in client.get("/metrics").text


def test_a_loaded_version_can_be_inferred_by_version(client: Client, admin: dict[str, str]) -> None:
    path = f"/v2/models/ml-matching/versions/{GB_VERSION}/infer"
    detail = protocol_error(client.post(path, json=tensor([0.5] * N)), 409)
    assert detail == (
        f"version {GB_VERSION} is in the store but not loaded: this service serves {RF_VERSION} "
        f"(POST /models/{GB_VERSION}/load serves it)"
    )
    client.post(f"/models/{GB_VERSION}/load", headers=admin)
    assert client.post(path, json=tensor([0.5] * N)).json()["model_version"] == GB_VERSION


BAD: list[tuple[str, Any, str]] = [
    ("not json", b"{", "malformed JSON"),
    ("no inputs", {"id": "a"}, "Object missing required field `inputs`"),
    ("unknown field", {**tensor([0.5] * N), "extra": 1}, "Object contains unknown field `extra`"),
    (
        "two inputs",
        {"inputs": tensor([0.5] * N)["inputs"] * 2},
        "`inputs` has 2 tensors: the model takes one, `input`",
    ),
    (
        "wrong name",
        tensor([0.5] * N, name="x"),
        "input `x`: the model has no such input; its one input is `input`",
    ),
    ("wrong type", tensor([0.5] * N, datatype="FP64"), "input `input`: datatype 'FP64', expected 'FP32'"),
    (
        "no data",
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, N]}]},
        "missing required field `data` - at `$.inputs[0]`",
    ),
    ("wrong width", tensor([0.5] * N, [1, N - 1]), f"shape [1, {N - 1}], expected [N, {N}]"),
    ("one dimension", tensor([0.5] * N, [N]), f"shape [{N}], expected [N, {N}]"),
    ("zero rows", tensor([0.5] * N, [0, N]), "has 0 rows, expected 1 to MAX_BATCH_ROWS (50)"),
    ("too many rows", tensor([0.5] * N * 51, [51, N]), "has 51 rows, expected 1 to MAX_BATCH_ROWS (50)"),
    (
        "too few values",
        tensor([0.5] * (N + 1), [2, N]),
        f"`data` has {N + 1} values, shape [2, {N}] needs {2 * N}",
    ),
    ("ragged", tensor([[0.5] * N, [0.5] * 3]), f"`data` row 1 has 3 values, expected {N}"),
    ("a string", tensor(["0.5"] * N), "`data` must be numbers, flat or nested"),
    ("a boolean", tensor([True] * N), "Expected `float`, got `bool`"),
    ("null", tensor([None] * N), "Expected `float`, got `null`"),
    (
        "out of range",
        tensor([0.5] * 2 + [1.5] + [0.5] * (N - 3)),
        "row 0, column 2 (feature `engagementRate`): value 1.5 is outside [0, 1]",
    ),
    (
        "overflow",
        b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,19],"data":[1e999' + b",0.5" * 18 + b"]}]}",
        "Number is not finite (out of float range)",
    ),
    ("binary", b"", "binary tensor data is not supported"),
    (
        "unknown output",
        {**tensor([0.5] * N), "outputs": [{"name": "scores"}]},
        "unknown output `scores`: the model's outputs are `probabilities`, `label`",
    ),
    (  # each was built again: a 108 KB request was answered with 19.5 MB
        "output twice",
        {**tensor([0.5] * N), "outputs": [{"name": "probabilities"}] * 3},
        "output `probabilities` asked for twice",
    ),
    (  # a 500 with a RecursionError logged
        "nested too deeply",
        b'{"parameters":{"a":' + b"[" * 1000 + b"]" * 1000 + b'},"inputs":[]}',
        "infer request: JSON nested too deeply",
    ),
]


@pytest.mark.parametrize(("body", "detail"), [(b, d) for _, b, d in BAD], ids=[i for i, _, _ in BAD])
def test_bad_infer_requests_are_400_naming_the_field(client: Client, body: Any, detail: str) -> None:
    if body == b"":  # Triton's binary extension: JSON header, then raw tensor bytes
        header = b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,19],"parameters":{"binary_data_size":76}}]}'
        response = client.post(
            INFER, content=header + bytes(76), headers={"Inference-Header-Content-Length": str(len(header))}
        )
    elif isinstance(body, bytes):
        response = client.post(INFER, content=body)
    else:
        response = client.post(INFER, json=body)
    assert detail in protocol_error(response, 400)


def test_wrong_model_name_and_unknown_versions(client: Client) -> None:
    assert "no model `resnet` here" in protocol_error(client.get("/v2/models/resnet"), 404)
    assert "no model `resnet` here" in protocol_error(
        client.post("/v2/models/resnet/infer", json=tensor([0.5] * N)), 404
    )
    assert "not found" in protocol_error(client.get("/v2/models/ml-matching/versions/20990101_000000"), 404)
    assert "is not a version name" in protocol_error(
        client.get("/v2/models/ml-matching/versions/latest/ready"), 400
    )


def test_the_body_model_version_is_the_paths(client: Client) -> None:
    """KServe's client may send it in the body too; it was ignored, whatever it named. The body's
    model_name is the caller's label (KServe's own server ignores it): the path names the model."""
    body = tensor([0.5] * N)
    assert client.post(INFER, json={**body, "model_name": "other"}).status_code == 200
    loaded = client.post(INFER, json={**body, "model_name": "ml-matching", "model_version": RF_VERSION})
    assert loaded.status_code == 200 and loaded.json()["model_version"] == RF_VERSION
    detail = protocol_error(client.post(INFER, json={**body, "model_version": GB_VERSION}), 409)
    assert f"version {GB_VERSION} is in the store but not loaded" in detail
    path = f"/v2/models/ml-matching/versions/{RF_VERSION}/infer"
    detail = protocol_error(client.post(path, json={**body, "model_version": GB_VERSION}), 400)
    assert detail == f"the body's model_version {GB_VERSION} is not the path's {RF_VERSION}"


def test_a_body_over_the_limit_is_413_stating_it(client: Client) -> None:
    detail = protocol_error(client.post(INFER, content=b" " * (64 * 1024 + 1)), 413)
    assert detail == "request body is larger than MAX_BODY_BYTES (65536 bytes)"


def test_model_name_is_a_setting(store: Path) -> None:
    with TestClient(create_app(Settings(models_dir=store, model_name="matcher"))) as c:
        assert c.get("/v2/models/matcher/ready").json() == {"ready": True}
        assert c.get("/v2").json()["name"] == "matcher"
        protocol_error(c.get("/v2/models/ml-matching"), 404)
