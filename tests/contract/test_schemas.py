"""schemas/ is the language-neutral contract: kept in sync with the code that enforces it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import msgspec
import pytest

from runtime.artifact import Sidecar, default_feature_set
from runtime.contracts import generated_schemas, render
from tests.conftest import FIXTURE_STORE, GB_VERSION, RF_VERSION, SEED_ROW

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EXPECTED_ORDER = [
    "nicheAlignment", "audienceMatch", "engagementRate", "brandFit", "locationMatch", "budgetAlignment",
    "contentQuality", "responseRate", "accountAge", "activityScore", "lastActiveScore",
    "connectionAcceptance", "profileCompletion", "portfolioQuality", "networkStrength",
    "mutualConnections", "connectionDiversity", "postingConsistency", "contentEngagement",
]  # fmt: skip


@pytest.mark.parametrize("name", sorted(generated_schemas()))
def test_committed_schema_matches_the_code(name: str) -> None:
    committed = (SCHEMAS / name).read_bytes()
    assert committed == render(generated_schemas()[name]), f"run `python scripts/gen_schemas.py` ({name})"
    jsonschema.Draft202012Validator.check_schema(json.loads(committed))


def test_default_features_are_the_19_in_onnx_order() -> None:
    fs = default_feature_set()
    assert list(fs.names) == EXPECTED_ORDER
    assert all((f.min, f.max) == (0.0, 1.0) and f.group and f.description for f in fs.features)
    groups = [f.group for f in fs.features]
    assert groups == ["basic"] * 8 + ["temporal"] * 3 + ["behavioral"] * 3 + ["network"] * 3 + ["content"] * 2


@pytest.mark.parametrize("version", [RF_VERSION, GB_VERSION])
def test_fixture_sidecars_validate(version: str) -> None:
    doc = json.loads((FIXTURE_STORE / version / "model.json").read_text())
    jsonschema.validate(doc, json.loads((SCHEMAS / "model.schema.json").read_text()))


def test_sidecar_schema_requires_every_field_without_a_default() -> None:
    schema = json.loads((SCHEMAS / "model.schema.json").read_text())
    sidecar = schema["$defs"]["Sidecar"]
    fields = msgspec.structs.fields(Sidecar)
    assert set(sidecar["required"]) == {f.encode_name for f in fields if f.required}
    # Fields added later have defaults, so sidecars written before them still load.
    assert {f.encode_name for f in fields if not f.required} == {
        "warnings",
        "files",
        "gate",
        "calibration",
        "explanation",
    }


def test_the_example_is_the_seed_payload() -> None:
    assert list(SEED_ROW) == [
        "nicheAlignment",
        "audienceMatch",
        "engagementRate",
        "brandFit",
        "locationMatch",
        "budgetAlignment",
        "contentQuality",
        "responseRate",
        "accountAge",
        "activityScore",
        "networkStrength",
        "mutualConnections",
        "profileCompletion",
        "portfolioQuality",
        "postingConsistency",
        "contentEngagement",
        "connectionDiversity",
        "lastActiveScore",
        "connectionAcceptance",
    ]  # fmt: skip  (the seed's order, not the model's)
    assert SEED_ROW["nicheAlignment"] == 0.85 and SEED_ROW["connectionAcceptance"] == 0.75


def test_request_schema_accepts_the_seed_payload_and_rejects_strings() -> None:
    schema = json.loads((SCHEMAS / "predict.request.schema.json").read_text())
    jsonschema.validate(SEED_ROW, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**SEED_ROW, "brandFit": "0.8"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**SEED_ROW, "extra": 1}, schema)
