"""schemas/ is the language-neutral contract: kept in sync with the code that enforces it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import jsonschema
import msgspec
import pytest

from ml_matching.contract import Sidecar, default_feature_set
from ml_matching.contract.schemas import contract_schemas, render, schema
from ml_matching.runtime.schemas import runtime_schemas
from tests.conftest import FIXTURE_STORE, GB_VERSION, RF_VERSION, SEED_ROW

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EXPECTED_ORDER = [
    "nicheAlignment", "audienceMatch", "engagementRate", "brandFit", "locationMatch", "budgetAlignment",
    "contentQuality", "responseRate", "accountAge", "activityScore", "lastActiveScore",
    "connectionAcceptance", "profileCompletion", "portfolioQuality", "networkStrength",
    "mutualConnections", "connectionDiversity", "postingConsistency", "contentEngagement",
]  # fmt: skip


def generated() -> dict[str, dict[str, object]]:
    return {**contract_schemas(), **runtime_schemas()}


@pytest.mark.parametrize("name", sorted(generated()))
def test_committed_schema_matches_the_code(name: str) -> None:
    committed = (SCHEMAS / name).read_bytes()
    assert committed == render(generated()[name]), f"run `python scripts/gen_schemas.py` ({name})"
    jsonschema.Draft202012Validator.check_schema(json.loads(committed))


class Documented(msgspec.Struct):
    """First line.

    A second paragraph,
        indented on purpose.
    """

    x: int


def test_descriptions_do_not_depend_on_how_a_library_formats_docstrings() -> None:
    # msgspec 0.23 began to dedent the docstrings it copies; older releases kept the indentation.
    # Either way the committed bytes are the same: every description is cleandoc'd.
    expected = "First line.\n\nA second paragraph,\n    indented on purpose."
    assert schema("t", Documented)["$defs"]["Documented"]["description"] == expected
    raw = "First line.\n\n    A second paragraph,\n        indented on purpose.\n    "
    as_older_msgspec = {"$defs": {"D": {"description": raw, "properties": {"x": {"description": raw}}}}}
    normalised = schema.__globals__["_normalised"](as_older_msgspec)
    assert normalised["$defs"]["D"]["description"] == expected
    assert normalised["$defs"]["D"]["properties"]["x"]["description"] == expected


def test_number_bounds_are_written_the_same_whichever_spelling_was_cached_first() -> None:
    # typing caches Annotated[float, Meta(ge=0)] and Meta(ge=0.0) as one object (they are equal),
    # so which spelling a struct gets depends on import order; the bytes must not.
    class IntBounds(msgspec.Struct):
        x: Annotated[float, msgspec.Meta(ge=0, lt=1)]

    class FloatBounds(msgspec.Struct):
        x: Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)]

    found = [schema("t", s)["$defs"][s.__name__]["properties"]["x"] for s in (IntBounds, FloatBounds)]
    assert [json.dumps(x) for x in found] == [
        '{"type": "number", "minimum": 0.0, "exclusiveMaximum": 1.0}'
    ] * 2


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
