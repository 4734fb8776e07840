"""The OpenAPI document follows the served model; the docs pages need nothing from the internet."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from ml_matching.contract.features import FLOAT32_MAX
from ml_matching.http.openapi import ASSET_FILES, ASSETS_PATH
from ml_matching.runtime import create_app
from ml_matching.runtime.errors import RUNTIME_ERRORS
from ml_matching.runtime.settings import Settings
from tests.conftest import FEATURE_NAMES, OTHER_VERSION, RF_VERSION

Client = TestClient[Litestar]
OTHER_NAMES = ["audienceOverlap", "pastCollaborations", "priceRatio", "replyHours", "sentiment"]


def _body_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    return schema


def test_request_bodies_list_the_served_features(client: Client) -> None:
    spec = client.get("/schema/openapi.json").json()
    body = _body_schema(spec, "/predict")
    assert list(body["properties"]) == FEATURE_NAMES and body["required"] == FEATURE_NAMES
    assert body["properties"]["brandFit"]["maximum"] == 1.0 and body["additionalProperties"] is False
    batch = _body_schema(spec, "/predict/batch")
    assert list(batch["properties"]["instances"]["items"]["properties"]) == FEATURE_NAMES
    assert batch["properties"]["instances"]["maxItems"] == 50


def test_the_document_follows_a_hot_swap_to_another_feature_set(
    client: Client, admin: dict[str, str]
) -> None:
    assert client.post(f"/models/{OTHER_VERSION}/load", headers=admin).status_code == 200
    spec = client.get("/schema/openapi.json").json()
    body = _body_schema(spec, "/predict")
    assert list(body["properties"]) == OTHER_NAMES
    assert body["properties"]["pastCollaborations"]["maximum"] == 50
    # Where a feature declares no bound, the document gives float32's: the model computes in float32.
    assert body["properties"]["replyHours"]["maximum"] == FLOAT32_MAX
    assert body["properties"]["sentiment"]["minimum"] == -FLOAT32_MAX
    assert "nicheAlignment" not in str(spec["paths"]["/predict/batch"])
    # The docs pages embed the same document.
    assert (
        "pastCollaborations" in client.get("/docs").text and "nicheAlignment" not in client.get("/redoc").text
    )
    assert client.post(f"/models/{RF_VERSION}/load", headers=admin).status_code == 200
    assert (
        list(_body_schema(client.get("/schema/openapi.json").json(), "/predict")["properties"])
        == FEATURE_NAMES
    )


def test_every_answer_has_a_schema(client: Client) -> None:
    spec = client.get("/schema/openapi.json").json()
    schemas = spec["components"]["schemas"]
    ok = {
        p: spec["paths"][p]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        for p in ("/health", "/health/ready", "/models")
    }
    assert ok["/health"]["$ref"].endswith("/Health") and set(schemas["Health"]["required"]) >= {
        "status",
        "modelLoaded",
    }
    assert ok["/health/ready"]["$ref"].endswith("/Ready")
    assert ok["/models"]["items"]["$ref"].endswith("/ModelSummary")
    load = spec["paths"]["/models/{version}/load"]["post"]["responses"]["200"]["content"]["application/json"]
    assert load["schema"]["$ref"].endswith("/LoadResult")


def test_error_answers_are_documented_with_their_codes(client: Client) -> None:
    spec = client.get("/schema/openapi.json").json()
    load = spec["paths"]["/models/{version}/load"]["post"]["responses"]
    assert set(load) >= {"200", "400", "401", "403", "404", "422"}
    assert (
        "`unauthorized`" in load["401"]["description"]
        and "`management_disabled`" in load["403"]["description"]
    )
    examples = load["422"]["content"]["application/json"]["examples"]
    (example,) = examples.values()
    assert example["value"]["error"] == "artifact_corrupt" and example["value"]["check"] == "golden-rows"
    descriptions = {r["description"] for r in load.values()}
    assert len(descriptions) == len(load), "each status says what it means"
    files = spec["paths"]["/models/{version}/files/{name}"]["get"]["responses"]["404"]
    codes = [e["value"]["error"] for e in files["content"]["application/json"]["examples"].values()]
    assert codes == ["version_not_found", "file_not_found"]
    assert {e.code for e in RUNTIME_ERRORS} >= set(codes)
    for path in ("/predict", "/predict/batch"):  # every body may be too large or not JSON
        assert {"400", "409", "413", "415", "503"} <= set(spec["paths"][path]["post"]["responses"]), path


def test_docs_pages_load_only_the_services_own_assets(client: Client) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", html)
        assert urls and all(u.startswith(ASSETS_PATH) for u in urls), urls
        assert "fonts.googleapis" not in html and "cdn." not in html
        for url in urls:
            asset = client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 100, url
    assert all(client.get(f"{ASSETS_PATH}/{name}").status_code == 200 for name in ASSET_FILES)


def test_the_cdn_is_used_only_when_asked(store: Path) -> None:
    with TestClient(create_app(Settings(models_dir=store, docs_cdn=True))) as c:
        assert "cdn.jsdelivr.net/npm/swagger-ui-dist" in c.get("/docs").text
        assert c.get(f"{ASSETS_PATH}/{ASSET_FILES[0]}").status_code == 404


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/schema/openapi.json"])
def test_docs_are_served_while_no_model_is_loaded(tmp_path: Path, path: str) -> None:
    with TestClient(create_app(Settings(models_dir=tmp_path))) as c:
        response = c.get(path)
        assert response.status_code == 200 and "nicheAlignment" in response.text
