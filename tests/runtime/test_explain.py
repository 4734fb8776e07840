"""`?explain=true` on /predict and /predict/batch, and the model card, through the real app."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.contract import amend_version, decode_sidecar, pin
from ml_matching.runtime import create_app
from ml_matching.runtime.settings import Settings
from tests.conftest import FEATURE_NAMES, GB_VERSION, RF_VERSION
from tests.runtime.conftest import TOKEN
from tests.runtime.corrupt import CORRUPTIONS

Client = TestClient[Litestar]
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def big(store: Path) -> Iterator[Client]:
    """A client whose batch limit takes 1,000 rows."""
    settings = Settings(models_dir=store, admin_token=TOKEN, max_batch_rows=1000)
    with TestClient(create_app(settings)) as c:
        yield c


def _rows(n: int, seed: int) -> list[dict[str, float]]:
    x = np.random.default_rng(seed).uniform(size=(n, len(FEATURE_NAMES)))
    return [dict(zip(FEATURE_NAMES, map(float, r), strict=True)) for r in x]


def _output(scale: str, p: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The model's output in the explanation's scale, from the answer's probability."""
    if scale == "probability":
        return p
    assert scale == "log-odds"
    return np.log(p / (1.0 - p))


@pytest.mark.parametrize("version", [RF_VERSION, GB_VERSION])
def test_contributions_add_up_to_the_served_output(big: Client, version: str) -> None:
    assert big.post(f"/models/{version}/load", headers=ADMIN).status_code == 200
    rows = _rows(1000, seed=21)
    body = big.post("/predict/batch?explain=true", json={"instances": rows}).json()
    assert body["modelVersion"] == version and body["explanationScale"] == "log-odds"
    p = np.array([r["successProbability"] for r in body["predictions"]]) / 100.0
    c = np.array([[r["contributions"][n] for n in FEATURE_NAMES] for r in body["predictions"]])
    total = body["baseValue"] + c.sum(axis=1)
    # p arrives as float32 from onnxruntime: compare where its rounding cannot dominate (the
    # log-odds of a float32 p near 0 or 1 is only as exact as p itself).
    assert np.abs(1.0 / (1.0 + np.exp(-total)) - p).max() <= 1e-5
    assert np.abs(total - _output(body["explanationScale"], p)).max() <= 1e-4
    # The scores are the plain batch's, bit for bit.
    plain = big.post("/predict/batch", json={"instances": rows}).json()
    assert [r["score"] for r in plain["predictions"]] == [r["score"] for r in body["predictions"]]


def test_one_row_is_explained_as_in_a_batch(client: Client, row: dict[str, Any]) -> None:
    one = client.post("/predict?explain=true", json=row).json()
    batch = client.post("/predict/batch?explain=true", json={"instances": [row]}).json()
    assert one["contributions"] == batch["predictions"][0]["contributions"]
    assert (one["baseValue"], one["explanationScale"]) == (batch["baseValue"], batch["explanationScale"])
    assert list(one["contributions"]) == FEATURE_NAMES
    assert one["score"] == batch["predictions"][0]["score"]


def test_without_explain_the_answer_is_unchanged(client: Client, row: dict[str, Any]) -> None:
    plain = client.post("/predict", json=row).json()
    fields = {
        "score",
        "confidence",
        "successProbability",
        "featureImportance",
        "modelVersion",
        "predictionId",
    }
    assert set(plain) == fields
    not_explained = client.post("/predict?explain=false", json=row).json()
    assert not_explained | {"predictionId": plain["predictionId"]} == plain
    batch = client.post("/predict/batch", json={"instances": [row]}).json()
    assert set(batch) == {"predictions", "featureImportance", "modelVersion"}
    assert set(batch["predictions"][0]) == {"score", "confidence", "successProbability", "predictionId"}


def test_explain_must_be_a_boolean(client: Client, row: dict[str, Any]) -> None:
    response = client.post("/predict?explain=maybe", json=row)
    assert response.status_code == 400 and response.json()["error"] == "invalid_input"
    assert "query parameter `explain`" in response.json()["detail"]


def test_a_version_without_explainer_answers_409_and_still_scores(
    store: Path, client: Client, row: dict[str, Any]
) -> None:
    folder = store / GB_VERSION
    doc = json.loads((folder / "model.json").read_text())
    del doc["explanation"]
    (folder / "model.json").write_text(json.dumps(doc))
    assert client.post(f"/models/{GB_VERSION}/load", headers=ADMIN).status_code == 200
    refused = client.post("/predict?explain=true", json=row)
    assert refused.status_code == 409 and refused.json()["error"] == "explanation_unavailable"
    assert f"version {GB_VERSION} has no explainer" in refused.json()["detail"]
    batch = client.post("/predict/batch?explain=true", json={"instances": [row]})
    assert batch.status_code == 409
    assert client.get("/monitoring/drift").json()["rows"] == 0  # a refused row is not observed
    assert client.post("/predict", json=row).status_code == 200
    assert client.get("/monitoring/drift").json()["rows"] == 1


def test_an_explainer_tampered_after_load_is_refused_before_it_answers(
    store: Path, client: Client, row: dict[str, Any]
) -> None:
    # EXPLAIN_LOAD=lazy (the default): the version loads without its explainer, which is read and
    # checked (sha256, signature, golden contributions) at the first explanation.
    assert client.post(f"/models/{GB_VERSION}/load", headers=ADMIN).status_code == 200
    CORRUPTIONS["tampered-explainer"][0](store / GB_VERSION)
    for _ in range(2):
        refused = client.post("/predict?explain=true", json=row)
        assert refused.status_code == 409 and refused.json()["error"] == "explanation_unavailable"
        assert refused.json()["detail"].startswith(
            f"version {GB_VERSION}'s explainer failed verification (explain: explain.onnx has sha256 "
        )
    assert client.post("/predict", json=row).status_code == 200  # the version still scores
    metrics = client.get("/metrics").text
    assert 'ml_matching_model_loads_total{check="explain",result="refused"} 1.0' in metrics


def test_an_explainer_that_could_not_be_read_is_read_again_once_it_is_back(
    store: Path, client: Client, row: dict[str, Any]
) -> None:
    """A file that fails its checks is refused for good; one that could not be read (the folder was
    moved, a volume not mounted yet) was refused for good too, until the version was loaded again."""
    assert client.post(f"/models/{GB_VERSION}/load", headers=ADMIN).status_code == 200
    explainer = store / GB_VERSION / "explain.onnx"
    explainer.rename(explainer.with_suffix(".away"))
    refused = client.post("/predict?explain=true", json=row)
    assert refused.status_code == 409 and "cannot read explain.onnx" in refused.json()["detail"]
    explainer.with_suffix(".away").rename(explainer)
    answer = client.post("/predict?explain=true", json=row)
    assert answer.status_code == 200 and len(answer.json()["contributions"]) == len(row)


def test_explain_load_eager_and_off(store: Path, row: dict[str, Any]) -> None:
    eager = Settings(models_dir=store, admin_token=TOKEN, explain_load="eager")
    CORRUPTIONS["tampered-explainer"][0](store / GB_VERSION)
    with TestClient(create_app(eager)) as c:
        response = c.post(f"/models/{GB_VERSION}/load", headers=ADMIN)
        assert response.status_code == 422 and response.json()["check"] == "explain"
        assert c.post("/predict?explain=true", json=row).status_code == 200  # the old version explains
    with TestClient(create_app(Settings(models_dir=store, explain_load="off"))) as c:
        refused = c.post("/predict?explain=true", json=row)
        assert refused.status_code == 409
        assert (
            refused.json()["detail"] == f"explanations are off here (EXPLAIN_LOAD=off): version {RF_VERSION}"
        )


# --- the model card ------------------------------------------------------------------------------


def test_the_card_is_served_as_a_page_and_as_markdown(client: Client, store: Path) -> None:
    page = client.get(f"/models/{RF_VERSION}/card")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.content == (store / RF_VERSION / "card.html").read_bytes()
    assert page.text.count("data:image/svg+xml;base64,") == 5
    md = client.get(f"/models/{RF_VERSION}/card?format=markdown")
    assert md.headers["content-type"].startswith("text/markdown")
    assert md.text.startswith(f"# Model card: ml-matching {RF_VERSION}")
    sidecar = client.get(f"/models/{RF_VERSION}").json()
    assert md.headers["etag"] == f'"{sidecar["files"]["card.md"]["sha256"]}"'


def test_the_plots_are_files_of_the_version(client: Client) -> None:
    sidecar = client.get(f"/models/{RF_VERSION}").json()
    for name in ("roc.svg", "reliability.svg", "importance.svg", "folds.svg", "data.svg"):
        svg = client.get(f"/models/{RF_VERSION}/files/{name}")
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert hashlib.sha256(svg.content).hexdigest() == sidecar["files"][name]["sha256"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/models/..%2F..%2Fetc/card", 400, "invalid_input"),
        ("/models/..%2F20260102_000000/card", 400, "invalid_input"),
        (f"/models/{RF_VERSION}/files/..%2Fcard.html", 400, "invalid_input"),
        (f"/models/{RF_VERSION}/card?format=pdf", 400, "invalid_input"),
        ("/models/20990101_000000/card", 404, "version_not_found"),
    ],
)
def test_card_paths_outside_the_store_are_refused(client: Client, path: str, status: int, code: str) -> None:
    response = client.get(path)
    assert response.status_code == status and response.json()["error"] == code


def test_a_version_without_a_card_says_how_to_draw_one(client: Client, store: Path) -> None:
    folder = store / GB_VERSION
    doc = json.loads((folder / "model.json").read_text())
    doc["files"] = {k: v for k, v in doc["files"].items() if not k.startswith("card.")}
    (folder / "model.json").write_text(json.dumps(doc))
    response = client.get(f"/models/{GB_VERSION}/card")
    assert response.status_code == 404 and response.json()["error"] == "file_not_found"
    assert f"version {GB_VERSION} has no model card" in response.json()["detail"]


def test_a_redrawn_card_is_served_at_once(client: Client, store: Path) -> None:
    # `training card` rewrites card files and model.json in place; nothing may serve the old ones.
    folder = store / RF_VERSION
    before = client.get(f"/models/{RF_VERSION}/card?format=markdown")
    assert before.status_code == 200
    sidecar = decode_sidecar((folder / "model.json").read_bytes())
    text = before.content + b"\nRedrawn.\n"
    files = {**sidecar.files, "card.md": pin("card.md", text)}
    amend_version(folder, msgspec.structs.replace(sidecar, files=files), {"card.md": text})
    after = client.get(f"/models/{RF_VERSION}/card?format=markdown")
    assert after.content == text and after.headers["etag"] == f'"{files["card.md"].sha256}"'
    assert client.get(f"/models/{RF_VERSION}").json()["files"]["card.md"]["sha256"] == files["card.md"].sha256
    meta = client.get(f"/models/{RF_VERSION}/files/model.json")
    assert meta.headers["etag"] == f'"{hashlib.sha256(meta.content).hexdigest()}"'
