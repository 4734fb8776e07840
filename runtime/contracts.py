"""The language-neutral JSON Schemas in ``schemas/``, generated from the Structs that enforce them.

``python scripts/gen_schemas.py`` rewrites the files; a test fails when they drift from the code.
"""

from __future__ import annotations

from typing import Any

import msgspec

from runtime.features import default_feature_set
from runtime.scoring import BatchResponse, PredictResponse, batch_type, row_type
from runtime.settings import Settings
from runtime.sidecar import Sidecar

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _schema(title: str, struct: Any) -> dict[str, Any]:
    return {"$schema": DRAFT, "title": title, **msgspec.json.schema(struct)}


def generated_schemas() -> dict[str, dict[str, Any]]:
    """File name → schema, for every generated file in ``schemas/``."""
    row = row_type(default_feature_set())
    return {
        "model.schema.json": _schema("ml-matching sidecar (model.json)", Sidecar),
        "predict.request.schema.json": _schema("POST /predict request", row),
        "predict.response.schema.json": _schema("POST /predict response", PredictResponse),
        "predict-batch.request.schema.json": _schema(
            "POST /predict/batch request", batch_type(row, Settings().max_batch_rows)
        ),
        "predict-batch.response.schema.json": _schema("POST /predict/batch response", BatchResponse),
    }


def render(schema: dict[str, Any]) -> bytes:
    """The exact bytes committed for ``schema``."""
    return msgspec.json.format(msgspec.json.encode(schema), indent=2) + b"\n"
